import Foundation
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#endif

/// `qemu-system-x86_64` from PATH, if installed.
let qemuBinary: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/qemu-system-x86_64"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}()

/// A `qemu-system-x86_64 -M none -S` with a QMP socket in a fresh /tmp/qmpt-XXXXXX;
/// `stop()` kills and reaps it and removes the directory, whatever state it is in.
final class QEMUUnderTest: Sendable {
    let process: Process
    let directory: String
    let socketPath: String
    let stderrPath: String

    init(binary: String) throws {
        var template = Array("/tmp/qmpt-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ScriptError("mkdtemp failed") }
        directory = String(cString: made)
        socketPath = directory + "/qmp"
        stderrPath = directory + "/stderr"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "-M", "none", "-S", "-nodefaults", "-no-user-config", "-display", "none",
            "-qmp", "unix:\(socketPath),server=on,wait=off",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        self.process = process
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Connects once QEMU has created its socket (it does so before its main loop).
    func connect() async throws -> QMP.Client {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try await QMP.Client.connect(unixPath: socketPath, timeout: .seconds(10))
            } catch let error {
                guard case .connectFailed = error, ContinuousClock.now < deadline, process.isRunning else {
                    throw ScriptError("\(error); QEMU stderr: \(stderrTail())")
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Waits (polling, off the pool) for QEMU to exit; true when it did.
    func waitForExit(timeout: Duration) async -> Bool {
        await eventually(timeout: timeout) { !process.isRunning }
    }

    func stderrTail() -> String {
        (try? String(contentsOfFile: stderrPath, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite(
    "QMP.Client against a real qemu-system-x86_64 (spawns QEMU -M none -S)",
    .enabled(if: qemuBinary != nil, "qemu-system-x86_64 is not installed"))
struct RealQEMUTests {
    @Test("greets with version 7 or later, reports prelaunch, pipelines 100 query-status, and quits")
    func lifecycle() async throws {
        let qemu = try QEMUUnderTest(binary: qemuBinary!)
        defer { qemu.stop() }
        let client = try await qemu.connect()
        defer { client.close() }

        #expect(client.greeting.version.major >= 7)
        #expect(try await client.queryVersion().major == client.greeting.version.major)

        let status = try await client.queryStatus()
        #expect(status.status == "prelaunch" || status.status == "paused")
        #expect(!status.running)

        let statuses = try await withThrowingTaskGroup(of: QMP.Status.self) { group in
            for _ in 0..<100 { group.addTask { try await client.queryStatus() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.count == 100)
        #expect(statuses.allSatisfy { $0 == status })

        let info = try await client.humanMonitorCommand("info version")
        #expect(info.hasPrefix("\(client.greeting.version.major)."))

        let (missing, _) = await timed { () async throws(QMP.Error) in try await client.execute("x-no-such-command") }
        guard case .commandFailed(_, "CommandNotFound", _)? = missing.failureValue else {
            Issue.record("expected CommandNotFound, got \(missing)")
            return
        }

        try await client.quit(timeout: .seconds(10))
        #expect(!client.isConnected)
        #expect(await qemu.waitForExit(timeout: .seconds(10)), "QEMU did not exit after quit")
        #expect(qemu.process.terminationStatus == 0)
    }

    @Test("cont and stop on a -S machine emit RESUME and STOP to subscribers")
    func contAndStopEmitEvents() async throws {
        let qemu = try QEMUUnderTest(binary: qemuBinary!)
        defer { qemu.stop() }
        let client = try await qemu.connect()
        defer { client.close() }

        let events = client.events()
        try await client.cont()
        #expect(try await client.queryStatus().running)
        try await client.stop()
        #expect(try await client.queryStatus() == QMP.Status(status: "paused", running: false))
        // Events come before the replies that follow them, so both are in by now.
        #expect(client.recentEvents.map(\.name) == ["RESUME", "STOP"])
        let stop = client.recentEvents.last
        #expect(stop?.timestamp.map { abs($0 - Date().timeIntervalSince1970) < 60 } == true)
        try await client.quit()
        #expect(await qemu.waitForExit(timeout: .seconds(10)))
        // The stream got the same events (and QEMU's SHUTDOWN for the quit, if it was
        // read before the connection closed) and finished with the connection.
        let streamed = await events.reduce(into: []) { $0.append($1.name) }
        #expect(Array(streamed.prefix(2)) == ["RESUME", "STOP"])
        print("events streamed from QEMU: \(streamed)")
    }

    @Test("round trips are fast: sequential and pipelined query-status (prints the numbers)")
    func roundTripSpeed() async throws {
        let qemu = try QEMUUnderTest(binary: qemuBinary!)
        defer { qemu.stop() }
        let client = try await qemu.connect()
        defer { client.close() }
        for _ in 0..<50 { _ = try await client.queryStatus() }  // warm up

        let sequentialCount = 500
        let sequentialStart = ContinuousClock.now
        for _ in 0..<sequentialCount { _ = try await client.queryStatus() }
        let sequential = (ContinuousClock.now - sequentialStart) / sequentialCount

        let pipelinedCount = 2000
        let pipelinedStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<pipelinedCount { group.addTask { _ = try await client.queryStatus() } }
            try await group.waitForAll()
        }
        let pipelined = (ContinuousClock.now - pipelinedStart) / pipelinedCount

        print("QMP query-status round trip: sequential \(sequential), pipelined \(pipelined) per command")
        // Generous bounds (debug builds, a busy 2-core CI): they catch a lost wake-up, not a slow day.
        #expect(sequential < .milliseconds(20))
        #expect(pipelined < .milliseconds(10))
        try await client.quit()
    }
}
