import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Debian bookworm systemd disk image Scripts/build-debian-image makes (mmdebstrap, a GPT
/// disk with an ESP holding systemd-boot and an x86-64 root partition, sshd).
///
/// Without it these tests are skipped, visibly; Scripts/test sets
/// `LAUNCH_REQUIRE_DEBIAN_IMAGE=1`, which makes a missing image a failure.
enum DebianImage {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$LAUNCH_DEBIAN_IMAGE_DIR`, as the script takes it, else `.cache/debian-image`.
    static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["LAUNCH_DEBIAN_IMAGE_DIR"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return root.appendingPathComponent(".cache/debian-image")
    }()

    /// True when the script has finished a build (it moves the files in last).
    static let built = ["debian.img", "vmlinuz", "initrd.img", "key"].allSatisfy {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path)
    }

    /// Set by Scripts/test: then a missing image fails these tests instead of skipping them.
    static let required = ProcessInfo.processInfo.environment["LAUNCH_REQUIRE_DEBIAN_IMAGE"] == "1"

    /// One of Examples/profiles/debian-*.json as it is, with its image paths pointed at
    /// `directory`, a free host port for the forward to sshd and the runtime dir under `folder`.
    static func profile(_ name: String, sshPort: UInt16, folder: URL) throws -> URL {
        try #require(built, "no Debian image in \(directory.path): run Scripts/build-debian-image")
        let example = root.appendingPathComponent("Examples/profiles/\(name)")
        var profile = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: example)) as? [String: Any])
        let image = { (path: String) in directory.appendingPathComponent(URL(fileURLWithPath: path).lastPathComponent).path }
        for key in ["kernel", "initrd"] { if let path = profile[key] as? String { profile[key] = image(path) } }
        var disks = try #require(profile["disks"] as? [[String: Any]])
        disks[0]["path"] = image(try #require(disks[0]["path"] as? String))
        profile["disks"] = disks
        var network = try #require(profile["network"] as? [String: Any])
        var forwards = try #require(network["forwards"] as? [[String: Any]])
        try #require(forwards.first?["guest"] as? Int == 22, "the example forwards no port to the guest's sshd")
        forwards[0]["host"] = Int(sshPort)
        network["forwards"] = forwards
        profile["network"] = network
        profile["runtimeDir"] = folder.path
        let url = folder.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: profile, options: [.prettyPrinted]).write(to: url)
        return url
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick for port 0).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound, "bind 127.0.0.1:0: errno \(errno)")
        return UInt16(bigEndian: address.sin_port)
    }
}

/// A real Debian systemd guest from its own disk, as a user keeps one: `launch up` boots it by
/// direct kernel boot (host kernel and initrd, root by PARTUUID), then the same VM (same name,
/// same persistent overlay) by UEFI (systemd-boot on the ESP, no kernel given), each time
/// returning once sshd answers; `launch ssh` logs in with the per-VM key the launcher injected
/// (systemd's SMBIOS credential ssh.authorized_keys.root), the same key on the second boot (it
/// is kept in the VM's state folder); `launch down` stops it cleanly at the ladder's ACPI step.
@Suite("A Debian systemd disk image: launch up, ssh, down, by direct kernel boot and by UEFI (slow: boots systemd under TCG)",
       .serialized, .enabled(if: DebianImage.built || DebianImage.required, "no Debian image: run Scripts/build-debian-image"))
struct DebianImageTests {
    @Test("one Debian VM booted by direct kernel boot, then by UEFI with no kernel: each launch up returns once sshd answers, launch ssh NAME -- systemctl is-system-running says running (multi-user, no unit failed) as root with the VM's own key (kept in its state folder), launch down ends it at the ACPI step; the image is never written")
    func directThenUEFI() throws {
        try #require(DebianImage.built, "no Debian image in \(DebianImage.directory.path): run Scripts/build-debian-image")
        let folder = try Fixture.temporaryDirectory("deb")
        defer { try? FileManager.default.removeItem(at: folder) }
        let environment = ["XDG_RUNTIME_DIR": folder.path, "XDG_STATE_HOME": folder.appendingPathComponent("state").path]
        let launch = { (arguments: [String]) in try CLITests.launch(arguments, environment: environment) }
        let image = DebianImage.directory.appendingPathComponent("debian.img").path
        let imageBefore = try FileManager.default.attributesOfItem(atPath: image)[.modificationDate] as? Date
        defer { _ = try? launch(["down", "deb", "--force"]) }

        var keys: [String] = []
        for profileName in ["debian-direct.json", "debian-uefi.json"] {
            let profile = try DebianImage.profile(profileName, sshPort: try DebianImage.freePort(), folder: folder)
            // Returns once sshd sends its banner through the forward (25-100 s under TCG here).
            let up = try launch(["up", profile.path, "--name", "deb", "--accel", "tcg"])
            try #require(up.status == 0, "\(profileName): \(up.stderr)")

            let state = try launch(["ssh", "deb", "--", "systemctl", "is-system-running", "--wait"])
            if state.stdout != "running\n" {
                let failed = try launch(["ssh", "deb", "--", "systemctl --failed --no-legend; journalctl -b -p err --no-pager | tail -n 20"])
                Issue.record("\(profileName): systemd is \(state.stdout) (ssh exited \(state.status): \(state.stderr)), not running: \(failed.stdout) \(failed.stderr)")
            }
            // Root logged in with this boot's per-VM key: the one the credential put in authorized_keys.
            let publicKey = try String(contentsOfFile: folder.path + "/state/qemu-launch/deb/ssh/id_ed25519.pub", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            keys.append(publicKey)
            let authorized = try launch(["ssh", "deb", "--", "cat", "/root/.ssh/authorized_keys"])
            #expect(authorized.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == publicKey, "\(profileName): \(authorized.stdout) \(authorized.stderr)")

            let down = try launch(["down", "deb"])
            #expect(down.status == 0, "\(profileName): \(down.stderr)")
            #expect(down.stdout.contains("acpi-powerdown"), "\(profileName): \(down.stdout) \(down.stderr)")
            #expect(Fixture.processes(mentioning: folder.path).isEmpty, "\(profileName): QEMU or the supervisor still running")
        }
        #expect(keys.count == 2 && keys[0] == keys[1], "the second up should log in with the key the VM's state folder keeps")
        let imageAfter = try FileManager.default.attributesOfItem(atPath: image)[.modificationDate] as? Date
        #expect(imageAfter == imageBefore, "the base image was written")
    }
}
