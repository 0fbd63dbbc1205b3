import Foundation
import QEMULaunch
import Synchronization
import Testing

/// `launch plan` and `launch run` prepare and plan through the same code; this boots one guest.
@Suite("launch plan prints the QEMU argv launch run starts (slow: boots a guest under TCG)", .serialized)
struct PlanRunParityTests {
    /// QEMU's argv as the kernel has it, from /proc.
    static func commandLine(of pid: Int32) -> [String] {
        let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
        return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("the running QEMU's argv is the one `launch plan --json` printed, but for the runtime dir's name and run's own QMP fd; Ctrl-C then exits 130")
    func planEqualsRun() async throws {
        let folder = try Fixture.temporaryDirectory("par")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("parity", command: ["sh", "-c", "echo launch-ready; sleep 600"])
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(2))
        let profileURL = folder.appendingPathComponent("parity.json")
        try JSONEncoder().encode(profile).write(to: profileURL)

        let planned = try CLITests.launch(["plan", profileURL.path, "--json"])
        try #require(planned.status == 0, "\(planned.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(planned.stdout.utf8)) as? [String: Any])
        let planArgv = try #require(object["qemu"] as? [String])
        let planRuntimeDir = try #require(object["runtimeDir"] as? String)
        #expect(planRuntimeDir.hasPrefix(folder.path + "/launch-"))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = ["run", profileURL.path]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = Mutex("")
        let reader = Thread { while case let data = out.fileHandleForReading.availableData, !data.isEmpty { output.withLock { $0 += String(decoding: data, as: UTF8.self) } } }
        reader.start()
        // Hang guard, not a measurement: a TCG boot on a loaded host takes seconds.
        for _ in 0..<1800 where !output.withLock({ $0.contains("launch-ready") }) && process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(output.withLock { $0.contains("launch-ready") })

        let qemu = Fixture.processes(mentioning: folder.path).map(Self.commandLine).first { $0.first?.contains("qemu-system") == true }
        var runArgv = try #require(qemu)
        // The one difference `launch plan` states: run hands QEMU its own QMP connection as fd 3.
        let control = ["-chardev", "socket,id=control,fd=3", "-mon", "chardev=control,mode=control"]
        let at = try #require(runArgv.indices.first { Array(runArgv[$0...].prefix(4)) == control })
        runArgv.removeSubrange(at..<(at + 4))
        // A QEMU that is a wrapper script (Scripts/fetch-qemu-backports puts one first on PATH)
        // execs the real binary with its data folders (-L DIR, twice) before the plan's
        // arguments: /proc shows that exec, so the wrapper's own words are taken off.
        if runArgv.first != planArgv.first,
           let script = try? String(contentsOfFile: planArgv[0], encoding: .utf8), script.hasPrefix("#!") {
            var rest = Array(runArgv.dropFirst())
            while rest.count >= 2, rest[0] == "-L" { rest.removeFirst(2) }
            runArgv = [planArgv[0]] + rest
        }
        // Each run gets a fresh runtime dir name (launch-XXXXXX): compare with the plan's.
        let prefix = folder.path + "/launch-"
        func runtimeDirectory(in word: String) -> String? {
            guard let range = word.range(of: prefix) else { return nil }
            return String(word[range.lowerBound...].prefix(prefix.count + 6))
        }
        let runDirectory = try #require(runArgv.compactMap(runtimeDirectory).first)
        #expect(runDirectory != planRuntimeDir)
        #expect(runArgv.map { $0.replacingOccurrences(of: runDirectory, with: planRuntimeDir) } == planArgv)

        kill(process.processIdentifier, SIGINT)
        for _ in 0..<600 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(stderr)")
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("a profile whose qemu.binary doesn't exist: plan and run both exit 69")
    func missingProgram() throws {
        let folder = try Fixture.temporaryDirectory("mp")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("missing", command: ["true"])
        profile.qemu.binary = folder.path + "/no-such-qemu"
        let profileURL = folder.appendingPathComponent("missing.json")
        try JSONEncoder().encode(profile).write(to: profileURL)
        for subcommand in ["plan", "run"] {
            let outcome = try CLITests.launch([subcommand, profileURL.path])
            #expect(outcome.status == 69, "\(subcommand): \(outcome.stderr)")
            #expect(outcome.stderr.contains("qemu.binary \(folder.path)/no-such-qemu was not found"), "\(subcommand): \(outcome.stderr)")
        }
    }
}
