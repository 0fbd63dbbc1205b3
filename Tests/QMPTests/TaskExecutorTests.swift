import Foundation
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#endif

/// The name of the thread running the caller (Linux: /proc/thread-self/comm).
private func currentThreadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

@Suite("QMP.Client.taskExecutor: tasks resumed on the connection's I/O thread")
struct TaskExecutorTests {
    @Test(
        "against real QEMU: sequential and pipelined commands and events work on the I/O thread, and code after quit runs on",
        .enabled(if: qemuBinary != nil, "qemu-system-x86_64 is not installed"))
    func realQEMUOnTheIOThread() async throws {
        let qemu = try QEMUUnderTest(binary: qemuBinary!)
        defer { qemu.stop() }
        let client = try await qemu.connect()
        defer { client.close() }

        let threadsAfterQuit = try await withTaskExecutorPreference(client.taskExecutor) {
            () async throws -> [String] in
            var namesSeen = Set<String>()
            for _ in 0..<200 {
                let status = try await client.queryStatus()
                #expect(status.status == "prelaunch")
                namesSeen.insert(currentThreadName())
            }
            // Every resumption after a reply happened on the I/O thread itself.
            #expect(namesSeen == ["qmp-io"], "resumed on \(namesSeen)")

            let pipelined = try await withThrowingTaskGroup(of: (QMP.Status, String).self) { group in
                for _ in 0..<300 { group.addTask { (try await client.queryStatus(), currentThreadName()) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(pipelined.count == 300)
            #expect(pipelined.allSatisfy { $0.0.status == "prelaunch" })
            #expect(Set(pipelined.map(\.1)) == ["qmp-io"])

            let events = client.events()
            try await client.cont()
            try await client.stop()
            var names: [String] = []
            for await event in events {
                names.append(event.name)
                if names.count == 2 { break }
            }
            #expect(names == ["RESUME", "STOP"])

            // After the connection ends the I/O thread is gone: the task must go on
            // elsewhere (the global executor), not hang.
            try await client.quit(timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(5))
            let (late, _) = await timed { () async throws(QMP.Error) in try await client.queryStatus() }
            guard case .disconnected? = late.failureValue else {
                Issue.record("a command after quit should fail with .disconnected, got \(late)")
                return []
            }
            return [currentThreadName()]
        }
        #expect(threadsAfterQuit.count == 1)
        #expect(threadsAfterQuit.first != "qmp-io")
        #expect(await qemu.waitForExit(timeout: .seconds(10)))
    }

    @Test("a peer that closes mid-command: the waiting task on the I/O thread gets .disconnected and finishes")
    func peerClosesWhileWaitingOnTheIOThread() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            try peer.reply(to: command, returning: #"{"status":"running","running":true}"#)
            _ = try peer.readCommand()
            peer.close()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (first, second) = await withTaskExecutorPreference(client.taskExecutor) {
            let (first, _) = await timed { () async throws(QMP.Error) in try await client.queryStatus() }
            let (second, _) = await timed { () async throws(QMP.Error) in
                try await client.execute("x-never-answered", timeout: .seconds(20))
            }
            return (first, second)
        }
        #expect((try? first.get())?.running == true)
        guard case .disconnected? = second.failureValue else {
            Issue.record("expected .disconnected, got \(second)")
            return
        }
        #expect(!client.isConnected)
        await server.finish()
    }

    @Test("a command's deadline fires for a task waiting on the I/O thread")
    func deadlineOnTheIOThread() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.readCommand()  // never answered
            try peer.waitForClientClose(timeout: .seconds(10))
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, elapsed) = await withTaskExecutorPreference(client.taskExecutor) {
            await timed { () async throws(QMP.Error) in
                try await client.execute("x-slow", timeout: .milliseconds(200))
            }
        }
        guard case .timeout(command: "x-slow", _)? = result.failureValue else {
            Issue.record("expected .timeout, got \(result)")
            return
        }
        #expect(elapsed >= .milliseconds(200))
        #expect(elapsed < .seconds(5))
        #expect(client.isConnected, "a timeout leaves the connection open")
        client.close()
        await server.finish()
    }
}
