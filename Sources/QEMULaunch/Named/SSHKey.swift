import Foundation
import LaunchSupport

/// The per-VM ssh key `launch up` makes for a profile with `ssh` and no key of its own,
/// and how QEMU hands its public half to systemd in the guest.
package enum SSHKey {
    /// The private key's path in a record folder (the public one is beside it, `.pub`).
    package static func privateKeyPath(in folder: String) -> String { folder + "/ssh/id_ed25519" }
    /// The VM's own known_hosts file in a record folder.
    package static func knownHostsPath(in folder: String) -> String { folder + "/ssh/known_hosts" }

    /// The VM's key pair in `folder` (see ``privateKeyPath(in:)``): the one made there by an
    /// earlier `up` when both halves exist, else a new one (``generate(in:comment:)``); returns
    /// the public key's line and whether it was made now. Kept in the VM's state folder, the
    /// same key serves every `up` of that VM: a guest on a persistent disk that wrote the first
    /// key into authorized_keys (systemd's tmpfiles only write the file when it is missing)
    /// still lets the next `up` in.
    package static func existingOrNew(in folder: String, comment: String) async throws(LaunchError) -> (publicKey: String, made: Bool) {
        let path = privateKeyPath(in: folder)
        if FileManager.default.fileExists(atPath: path),
           let publicKey = try? String(contentsOfFile: path + ".pub", encoding: .utf8) {
            return (publicKey.trimmingCharacters(in: .whitespacesAndNewlines), false)
        }
        return (try await generate(in: folder, comment: comment), true)
    }

    /// Makes an ed25519 key pair (no passphrase) at ``privateKeyPath(in:)``, mode 0600, in a
    /// 0700 `ssh` folder; returns the public key's line.
    package static func generate(in folder: String, comment: String) async throws(LaunchError) -> String {
        guard let keygen = ["/usr/bin/ssh-keygen", "/bin/ssh-keygen", "/usr/local/bin/ssh-keygen"].first(where: FileManager.default.isExecutableFile) else {
            throw LaunchError.missing("ssh-keygen", package: "openssh-client", purpose: "to make the VM's ssh key (the profile has \"ssh\")")
        }
        let path = privateKeyPath(in: folder)
        do {
            try FileManager.default.createDirectory(atPath: folder + "/ssh", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw LaunchError(.hostProblem, "cannot create \(folder)/ssh", cause: error)
        }
        try await runToCompletion([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], environment: childEnvironment())
        // ssh-keygen writes the private key 0600 already; say so rather than trust the umask.
        chmod(path, 0o600)
        chmod(path + ".pub", 0o600)
        guard let publicKey = try? String(contentsOfFile: path + ".pub", encoding: .utf8) else {
            throw LaunchError(.internalError, "ssh-keygen made no \(path).pub")
        }
        return publicKey.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// QEMU arguments that give the guest's systemd (v252+) `publicKey` as root's
    /// authorized key: an SMBIOS type 11 OEM string `io.systemd.credential.binary:
    /// ssh.authorized_keys.root=BASE64`, which systemd imports as a credential and its
    /// tmpfiles write to /root/.ssh/authorized_keys. x86 q35/pc only (they carry SMBIOS).
    package static func credentialArguments(publicKey: String) -> [String] {
        // Base64 has no commas, so the option value needs no QEMU comma doubling.
        let encoded = Data((publicKey + "\n").utf8).base64EncodedString()
        return ["-smbios", "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root=\(encoded)"]
    }

    /// `profile` with `publicKey` injected for root (``credentialArguments(publicKey:)``
    /// appended to its QEMU arguments), as the supervisor starts it.
    package static func injecting(publicKey: String, into profile: Profile) -> Profile {
        var profile = profile
        profile.qemu.extraArgs += credentialArguments(publicKey: publicKey)
        return profile
    }

    /// The ssh argv that logs into the VM of `access` (then runs `command`, if any).
    package static func sshArguments(_ access: VMRecord.SSH, command: [String]) -> [String] {
        ["ssh", "-i", access.identityFile, "-p", String(access.hostPort),
         "-o", "IdentitiesOnly=yes",
         // The VM's own known_hosts: its host key is learnt on first contact and checked after.
         "-o", "UserKnownHostsFile=\(access.knownHostsFile)", "-o", "StrictHostKeyChecking=accept-new",
         "-o", "LogLevel=ERROR", "--",
         "\(access.user)@\(access.address == "0.0.0.0" ? "127.0.0.1" : access.address)"] + command
    }
}
