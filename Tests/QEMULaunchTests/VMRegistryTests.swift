import Foundation
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

@Suite("Named VMs' record folders: private, one per name, found by name")
struct VMRegistryTests {
    /// A registry under a fresh folder (as `$XDG_RUNTIME_DIR/qemu-launch/vms` would be).
    private func registry() throws -> (VMRegistry, String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("vmreg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        return (VMRegistry(root: base + "/qemu-launch/vms"), base)
    }

    @Test("a claimed name gets a 0700 folder with its lock held; a second claim is refused while it is held; a finished record is replaced")
    func claim() throws {
        let (registry, base) = try registry()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (folder, lock) = try registry.claim("dev")
        var info = stat()
        #expect(lstat(folder, &info) == 0 && (info.st_mode & 0o777) == 0o700)
        #expect(lstat(registry.root, &info) == 0 && (info.st_mode & 0o777) == 0o700)
        #expect(VMLock.isHeld(in: folder))
        #expect(throws: LaunchError.self) { try registry.claim("dev") }
        #expect(registry.all().map(\.name) == ["dev"])

        // The supervisor wrote that it stopped, then exited (its lock went with it).
        var record = VMRecord(name: "dev", profile: "/p.json", supervisorPid: 1, startedAt: Date(), memoryMiB: 256,
                              forwards: [], stateFolder: nil, ssh: nil, shutdownStepSeconds: 10)
        record.state = .stopped
        try record.jsonData().write(to: URL(fileURLWithPath: folder + "/record.json"))
        lock.release()
        #expect(try registry.find("dev").status == .stopped)
        let (again, secondLock) = try registry.claim("dev")
        defer { secondLock.release() }
        #expect(again == folder)
        #expect(!FileManager.default.fileExists(atPath: folder + "/record.json"))
    }

    @Test("a records folder another user could read is refused, and an unknown name lists the names there are")
    func privateAndFound() throws {
        let (registry, base) = try registry()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try registry.makeRoot()
        chmod(registry.root, 0o755)
        #expect(throws: LaunchError.self) { try registry.claim("dev") }
        chmod(registry.root, 0o700)
        let (_, lock) = try registry.claim("dev")
        defer { lock.release() }
        do {
            _ = try registry.find("other")
            Issue.record("found a VM that doesn't exist")
        } catch {
            #expect(error.code == .noSuchVM)
            #expect(error.fix?.contains("dev") == true)
        }
        #expect(throws: LaunchError.self) { try registry.find("../etc") }
    }
}
