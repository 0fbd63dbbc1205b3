// A test suite runs the launcher thousands of times a day in one process: every
// way a run can end must leave the process's fds, threads and the runtime dirs as
// they were, and no QEMU or virtiofsd behind.

import Foundation
import GuestKit
import QEMULaunch
import Testing

@Suite("Nothing leaks over many runs in one process (slow: 50 guest boots per way a run ends)", .serialized)
struct LeakTests {
    enum Ending: String, CaseIterable, CustomTestStringConvertible {
        case succeeded, failed, timedOut, cancelled, panicked
        var testDescription: String { rawValue }
    }

    static let runs = 50

    /// One run that ends the given way; returns what it ended with, for the check.
    static func run(_ ending: Ending, profile: Profile) async -> String {
        var options = GuestKit.Options()
        switch ending {
        case .succeeded: options.command = ["cat", "/mnt/work/greeting.txt"]
        case .failed: options.command = ["sh", "-c", "exit 3"]
        case .timedOut:
            options.command = ["sleep", "60"]
            options.timeout = .after(.seconds(1))
        case .cancelled:
            options.command = ["sh", "-c", "echo running; sleep 60"]
        case .panicked: options.command = ["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"]
        }
        if ending == .cancelled {
            let started = StreamedText()
            options.stdout = .handler { started.append($0) }
            let task = Task { try await GuestKit.run(profile, options: options) }
            try? await started.wait(for: "running\n")
            task.cancel()
            return describe(await task.result)
        }
        let options2 = options
        return describe(await Task { try await GuestKit.run(profile, options: options2) }.result)
    }

    /// Two runs at once, as a suite on a 2-core machine would (a TCG guest keeps one
    /// core busy): half the wall time, and the runs overlap as they do in real suites.
    static func runPair(_ ending: Ending, profile: Profile) async -> [String] {
        async let first = run(ending, profile: profile)
        async let second = run(ending, profile: profile)
        return await [first, second]
    }

    static func describe(_ result: Result<GuestKit.Result, any Error>) -> String {
        switch result {
        case .success(let value): return "exit \(value.exitCode)"
        case .failure(let error as LaunchError): return "\(error.code)"
        case .failure(let error): return "\(error)"
        }
    }

    static func expected(_ ending: Ending) -> String {
        switch ending {
        case .succeeded: return "exit 0"
        case .failed: return "exit 3"
        case .timedOut: return "\(LaunchError.Code.timeout)"
        case .cancelled: return "\(LaunchError.Code.cancelled)"
        case .panicked: return "\(LaunchError.Code.guestPanic)"
        }
    }

    @Test("50 runs leave fds, threads, children and runtime dirs as they were", arguments: Ending.allCases)
    func fiftyRuns(_ ending: Ending) async throws {
        let folder = try temporaryFolder("leak")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try guestProfile("leak-\(ending.rawValue)", folder: folder)
        // One pair of runs first: caches (initramfs, vmlinux), the logging system and
        // Dispatch's own threads settle, so the baseline is the steady state.
        _ = await Self.runPair(ending, profile: profile)
        let baseline = await ProcessFootprint.settled(runtimeBase: folder, atMost: ProcessFootprint(fileDescriptors: .max, threads: .max, runtimeDirs: 0))
        var outcomes: [String: Int] = [:]
        for _ in 0..<(Self.runs / 2) {
            for outcome in await Self.runPair(ending, profile: profile) { outcomes[outcome, default: 0] += 1 }
        }
        let after = await ProcessFootprint.settled(runtimeBase: folder, atMost: baseline)
        #expect(outcomes == [Self.expected(ending): Self.runs], "every run ended as intended: \(outcomes)")
        #expect(after.fileDescriptors <= baseline.fileDescriptors, "fds: \(baseline) before, \(after) after \(Self.runs) runs")
        #expect(after.threads <= baseline.threads, "threads: \(baseline) before, \(after) after")
        #expect(after.runtimeDirs == 0)
        #expect(processes(mentioning: folder.path).isEmpty, "QEMU or virtiofsd still running")
        print("leak check \(ending): \(Self.runs) runs; before \(baseline), after \(after)")
    }
}
