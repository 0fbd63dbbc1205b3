import Foundation
import GuestKit
import QEMULaunch
import QMP
import Testing

/// Faults an operator of many guests meets: each must end in a clear, typed error,
/// with nothing left running.
@Suite("Faults under real QEMU (slow: boots guests under TCG)", .serialized)
struct FaultTests {
    @Test("QEMU killed mid-run is reported with its signal and the console's last lines", arguments: [SIGSEGV, SIGKILL])
    func qemuKilled(signal: Int32) async throws {
        let folder = try Fixture.temporaryDirectory("qk")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("qemukill", command: ["sh", "-c", "echo started; sleep 600"])
        profile.runtimeDir = folder.path
        var options = GuestKit.Options()
        let output = Mutex<String>("")
        options.stdout = .handler { data in output.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        let run = Task { () async -> Result<GuestKit.Result, LaunchError> in
            do throws(LaunchError) { return .success(try await GuestKit.run(profile, options: options)) } catch { return .failure(error) }
        }
        // Wait until the command runs, then kill QEMU behind the launcher's back.
        for _ in 0..<1200 where !output.withLock({ $0.contains("started") }) { try await Task.sleep(for: .milliseconds(100)) }
        let qemu = try #require(Fixture.processes(mentioning: folder.path).first { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("qemu-system") == true
        })
        kill(qemu, signal)
        let result = await run.value
        guard case .failure(let error) = result else {
            Issue.record("the run succeeded after QEMU was killed")
            return
        }
        #expect(error.code == .qemuFailed)
        #expect(error.message.contains("killed by signal \(signal)"))
        #expect(error.description.contains("last console lines:"))
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).isEmpty)
    }

    @Test("a runtime dir on a read-only filesystem is a clear host problem, with nothing started",
          .enabled(if: geteuid() == 0, "mounting a tmpfs needs root"))
    func readOnlyRuntimeDir() async throws {
        let folder = try Fixture.temporaryDirectory("rofs")
        defer {
            _ = try? Fixture.run(["/bin/umount", folder.path])
            try? FileManager.default.removeItem(at: folder)
        }
        try Fixture.run(["/bin/mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", folder.path])
        var profile = try Fixture.guestProfile("rofs", command: ["true"])
        profile.runtimeDir = folder.path
        do {
            _ = try await GuestKit.run(profile)
            Issue.record("started with a read-only runtime dir")
        } catch {
            #expect(error.code == .hostProblem)
            #expect(error.message.contains("Read-only file system"))
            #expect(error.fix?.contains("read-only") == true)
        }
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("a runtime dir on a full filesystem is a clear host problem",
          .enabled(if: geteuid() == 0, "mounting a tmpfs needs root"))
    func fullRuntimeDir() async throws {
        let folder = try Fixture.temporaryDirectory("full")
        defer {
            _ = try? Fixture.run(["/bin/umount", folder.path])
            try? FileManager.default.removeItem(at: folder)
        }
        // A tmpfs with room for almost no inodes: filling them makes mkdir fail with ENOSPC.
        try Fixture.run(["/bin/mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=3", "tmpfs", folder.path])
        for index in 0..<8 { _ = FileManager.default.createFile(atPath: folder.appendingPathComponent("f\(index)").path, contents: nil) }
        var profile = try Fixture.guestProfile("fullfs", command: ["true"])
        profile.runtimeDir = folder.path
        do {
            _ = try await GuestKit.run(profile)
            Issue.record("started with a full runtime dir filesystem")
        } catch {
            #expect(error.code == .hostProblem)
            #expect(error.message.contains("No space left on device"))
            #expect(error.fix?.contains("full") == true)
        }
    }
}
