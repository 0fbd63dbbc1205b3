import Foundation
import Testing

@testable import QEMULaunch

/// A q35 profile (the golden fixture files) with an sshd forward and `ssh`.
private func sshProfile(machine: Profile.MachineKind = .q35) -> Profile {
    var p = Profile(name: "sshvm")
    p.machine = machine
    p.kernel = GoldenFiles.root + "/vmlinuz"
    p.network = Profile.Network(mode: .user, forwards: [Profile.Forward(host: 2222, guest: 22)])
    p.ssh = Profile.SSHAccess()
    return p
}

@Suite("ssh access to a named VM: the per-VM key, its SMBIOS credential, the ssh argv, the profile's checks")
struct SSHAccessTests {
    @Test("the per-VM key's public half reaches QEMU's argv as systemd's ssh.authorized_keys.root SMBIOS credential")
    func credentialInThePlan() throws {
        try #require(GoldenFiles.ready)
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnlyForThisTest launch-sshvm"
        let profile = SSHKey.injecting(publicKey: key, into: sshProfile())
        let plan = try Planner.plan(profile, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        let index = try #require(plan.qemu.firstIndex(of: "-smbios"))
        let value = plan.qemu[index + 1]
        let prefix = "type=11,value=io.systemd.credential.binary:ssh.authorized_keys.root="
        #expect(value.hasPrefix(prefix))
        let decoded = Data(base64Encoded: String(value.dropFirst(prefix.count))).map { String(decoding: $0, as: UTF8.self) }
        #expect(decoded == key + "\n")
    }

    @Test("ssh-keygen makes the VM's key pair with mode 0600 in a 0700 folder")
    func keyFiles() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sshkey-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let publicKey = try await SSHKey.generate(in: folder, comment: "launch-test")
        #expect(publicKey.hasPrefix("ssh-ed25519 "))
        #expect(publicKey.hasSuffix(" launch-test"))
        func mode(_ path: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        }
        #expect(try mode(SSHKey.privateKeyPath(in: folder)) == 0o600)
        #expect(try mode(SSHKey.privateKeyPath(in: folder) + ".pub") == 0o600)
        #expect(try mode(folder + "/ssh") == 0o700)
    }

    @Test("launch ssh runs ssh with the VM's key, port, own known_hosts and user, then the command")
    func sshArgv() {
        let access = VMRecord.SSH(hostPort: 2222, address: "0.0.0.0", user: "root", identityFile: "/r/ssh/id_ed25519", knownHostsFile: "/r/ssh/known_hosts")
        #expect(SSHKey.sshArguments(access, command: ["uname", "-r"]) == [
            "ssh", "-i", "/r/ssh/id_ed25519", "-p", "2222", "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=/r/ssh/known_hosts", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "LogLevel=ERROR", "--", "root@127.0.0.1", "uname", "-r",
        ])
    }

    @Test("the profile's ssh and ready are checked: a forward to the port, a machine with SMBIOS for the launcher's key, one readiness")
    func profileChecks() {
        #expect(ProfileValidator.hostProblems(sshProfile(), host: Hosts.x86TCG).isEmpty)
        let microvm = ProfileValidator.hostProblems(sshProfile(machine: .microvm), host: Hosts.x86TCG)
        #expect(microvm.map(\.path) == ["ssh"])
        var noForward = sshProfile()
        noForward.network.forwards = []
        noForward.ready = Profile.Readiness(consoleText: "login:", port: 80)
        #expect(Set(ProfileValidator.hostProblems(noForward, host: Hosts.x86TCG).map(\.path)) == ["ready", "ready.port", "ssh.port"])
    }
}
