import Foundation
import GuestKit
import QEMULaunch
import Testing

@Suite("A VM's state folder with real QEMU (slow: boots the host kernel under TCG, twice)", .serialized)
struct StateFolderTests {
    /// The first 4 MiB base image: every byte a function of its offset.
    static func baseBytes() -> Data {
        Data((0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 % 251) })
    }

    /// Runs `script` in a microvm guest with `base` as /dev/vda behind a persistent overlay,
    /// and returns the result and the `-uuid` of the QEMU that ran (read from its argv).
    func run(_ script: String, base: String, stateRoot: String) async throws -> (GuestKit.Result, uuid: String?) {
        // Wait for the disk's device node: virtio_blk is loaded by the setup script.
        let waitForDisk = "for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done; "
        var profile = try Fixture.guestProfile("statefolder", command: ["sh", "-c", waitForDisk + script])
        profile.disks = [Profile.Disk(path: base, overlay: .persistent)]
        var options = GuestKit.Options()
        options.stateRoot = stateRoot
        // microvm has no SMBIOS (no /sys/class/dmi in the guest): read the UUID from QEMU's own argv.
        let watcher = Task { () -> String? in
            while !Task.isCancelled {
                for pid in Fixture.processes(mentioning: stateRoot) {
                    let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
                    let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                    if let index = argv.firstIndex(of: "-uuid"), index + 1 < argv.count { return argv[index + 1] }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }
        let result: GuestKit.Result
        do {
            result = try await GuestKit.run(profile, options: options)
        } catch {
            watcher.cancel()
            throw error
        }
        watcher.cancel()
        return (result, await watcher.value)
    }

    @Test("a persistent overlay keeps the guest's writes across runs, the base is never written, and the identity is the same both times")
    func writesPersist() async throws {
        let folder = try Fixture.temporaryDirectory("sf")
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = folder.appendingPathComponent("base.img")
        try Self.baseBytes().write(to: base)
        let baseModified = try FileManager.default.attributesOfItem(atPath: base.path)[.modificationDate] as? Date
        let stateRoot = folder.appendingPathComponent("state").path
        let token = "persisted-\(UUID().uuidString)"

        // Run 1: write the token at sector 8 of /dev/vda, and flush it.
        let (first, firstUUID) = try await run(
            "printf '%s' \(token) | dd of=/dev/vda bs=512 seek=8 conv=notrunc 2>/dev/null && sync && echo written",
            base: base.path, stateRoot: stateRoot)
        #expect(first.exitCode == 0, "stderr: \(first.stderrText)")
        #expect(first.stdoutText == "written\n")

        let state = try VMStateFolder(vmName: "statefolder", root: stateRoot)
        #expect(state.files().map(\.name) == ["disk0.base.json", "disk0.qcow2", "identity.json"])
        let identity = try #require(try state.storedIdentity())
        #expect(firstUUID == identity.uuid, "QEMU ran with the stored identity's -uuid")

        // Run 2: the token is still there; a sector the guest never wrote still reads as the base.
        let (second, secondUUID) = try await run(
            "dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c \(token.utf8.count); echo; dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | md5sum",
            base: base.path, stateRoot: stateRoot)
        #expect(second.exitCode == 0, "stderr: \(second.stderrText)")
        let lines = second.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == token, "the guest's write from the first run is gone")
        let sector100 = Self.baseBytes().subdata(in: 51_200..<51_712)
        #expect(lines.last?.hasPrefix(try md5(sector100)) == true)
        #expect(secondUUID == identity.uuid, "the second run has the same identity")
        #expect(try state.storedIdentity() == identity)

        // The base image itself was never written.
        #expect(try Data(contentsOf: base) == Self.baseBytes())
        #expect(try FileManager.default.attributesOfItem(atPath: base.path)[.modificationDate] as? Date == baseModified)

        // Reset: the next run starts from the base again, with a new identity.
        #expect(try state.reset().map(\.name) == ["disk0.base.json", "disk0.qcow2", "identity.json"])
        let (third, thirdUUID) = try await run(
            "dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c \(token.utf8.count) | md5sum",
            base: base.path, stateRoot: stateRoot)
        let sector8 = Self.baseBytes().subdata(in: 4096..<(4096 + token.utf8.count))
        #expect(third.stdoutText.hasPrefix(try md5(sector8)), "after a reset the guest sees the base again")
        #expect(thirdUUID != nil && thirdUUID != identity.uuid)
    }

    func md5(_ data: Data) throws -> String {
        let file = try Fixture.temporaryDirectory("md5").appendingPathComponent("d")
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        try data.write(to: file)
        return String(try Fixture.run(["/usr/bin/md5sum", file.path]).prefix(32))
    }
}
