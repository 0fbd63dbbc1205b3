import Foundation
import QEMULaunch
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ladder's last steps, reached honestly: a real QEMU that stops answering. SIGSTOP
/// freezes QEMU whole, so the ACPI button and QMP `quit` go unanswered; SIGTERM stays
/// pending on a stopped process, and SIGKILL ends it anyway.
@Suite("The shutdown ladder's SIGTERM and SIGKILL steps, with a real QEMU that stops answering (slow: boots a guest under TCG)", .serialized)
struct ShutdownLadderTests {
    func startedMachine(_ name: String, folder: URL) async throws -> Machine {
        var profile = Profile(name: name)
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try Fixture.kernel
        profile.initrd = try Fixture.initramfs(script: "mount -t proc proc /proc; echo guest-ready; exec sleep 600", in: folder)
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.shutdown = TimeLimit(.seconds(2))
        let machine = try await Machine.start(profile)
        try await machine.resume()
        // Hang guard, not a timing claim: the guest is up once its init has printed.
        for _ in 0..<1200 where !machine.console.tail.lines().contains(where: { $0.contains("guest-ready") }) {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(machine.console.tail.lines().contains { $0.contains("guest-ready") }, "the guest never came up")
        return machine
    }

    /// Whether `signal` is pending on process `pid` (its shared pending set in /proc).
    func isPending(_ sig: Int32, pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("ShdPnd:") }),
              let mask = UInt64(line.dropFirst("ShdPnd:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << UInt64(sig - 1)) != 0
    }

    func expectNothingLeft(_ folder: URL) {
        #expect(Fixture.processes(mentioning: folder.path).isEmpty, "QEMU still running")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }.isEmpty)
    }

    @Test("a QEMU frozen by SIGSTOP answers neither the ACPI button nor QMP quit, ignores SIGTERM while stopped, and the SIGKILL step ends it")
    func frozenQEMUEndsAtSigkill() async throws {
        let folder = try Fixture.temporaryDirectory("lk")
        defer { try? FileManager.default.removeItem(at: folder) }
        let machine = try await startedMachine("ladderkill", folder: folder)
        kill(machine.qemu.pid, SIGSTOP)
        let outcome = await machine.shutdown(stepTimeout: .seconds(2))
        #expect(outcome.step == .sigkill, "\(outcome)")
        #expect(outcome.qemuExit == .signalled(SIGKILL))
        expectNothingLeft(folder)
    }

    @Test("a QEMU that stops answering and resumes only once SIGTERM is pending is ended by the SIGTERM step")
    func resumedOnSigtermEndsAtSigterm() async throws {
        let folder = try Fixture.temporaryDirectory("lt")
        defer { try? FileManager.default.removeItem(at: folder) }
        let machine = try await startedMachine("ladderterm", folder: folder)
        let pid = machine.qemu.pid
        kill(pid, SIGSTOP)
        let ladder = Task { await machine.shutdown(stepTimeout: .seconds(5)) }
        // The ACPI and quit steps time out (2 x 5 s); then the launcher sends SIGTERM, which
        // waits as pending on the stopped QEMU. Resume it then: it acts on SIGTERM at once.
        var sawSigterm = false
        for _ in 0..<1200 {
            if isPending(SIGTERM, pid: pid) {
                sawSigterm = true
                kill(pid, SIGCONT)
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(sawSigterm, "the launcher never sent SIGTERM")
        if !sawSigterm { kill(pid, SIGCONT) }
        let outcome = await ladder.value
        #expect(outcome.step == .sigterm, "\(outcome)")
        expectNothingLeft(folder)
    }
}
