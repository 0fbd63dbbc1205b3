import Foundation
import Synchronization
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#endif

@Suite("QMP.Client against a scripted peer on a real Unix socket")
struct ClientTests {
    @Test("connect reads the greeting, keeps version and capabilities, and sends qmp_capabilities first")
    func greetingAndNegotiation() async throws {
        let firstCommand = Mutex<String?>(nil)
        let server = try FakeQMPServer { peer in
            try peer.greet()
            let command = try peer.readCommand()
            firstCommand.withLock { $0 = command["execute"]?.stringValue }
            try peer.reply(to: command)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        #expect(client.greeting.version == .init(major: 7, minor: 2, micro: 0, package: "Debian 1:7.2+dfsg-7+deb12u7"))
        #expect(client.greeting.capabilities == ["oob"])
        #expect(client.greeting.version.isAtLeast(7, 2))
        #expect(!client.greeting.version.isAtLeast(7, 3))
        #expect(client.isConnected)
        #expect(firstCommand.withLock { $0 } == "qmp_capabilities")
        client.close()
        #expect(!client.isConnected)
        await server.finish()
    }

    @Test("commands carry arguments and unique ids, and the return value comes back")
    func commandWithArguments() async throws {
        let seen = Mutex<[QMP.JSONValue]>([])
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            for _ in 0..<2 {
                let command = try peer.readCommand()
                seen.withLock { $0.append(command) }
                try peer.reply(to: command, returning: #"{"echo": \#(command["arguments"]?.jsonText ?? "null")}"#)
            }
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let first = try await client.execute("x-echo", arguments: ["path": "/machine", "n": 3, "on": true])
        let second = try await client.execute("x-echo")
        #expect(first["echo"] == ["path": "/machine", "n": 3, "on": true])
        #expect(second["echo"] == .null)
        let commands = seen.withLock { $0 }
        #expect(commands.count == 2)
        #expect(commands[0]["id"] != commands[1]["id"])
        #expect(commands[1]["arguments"] == nil)
        client.close()
        await server.finish()
    }

    @Test("a greeting repeated on the same connection (seen from QEMU 7.2 under load) is ignored, not taken for a reply")
    func repeatedGreeting() async throws {
        let server = try FakeQMPServer { peer in
            try peer.greet()
            let negotiation = try peer.expectCommand("qmp_capabilities")
            try peer.greet()
            try peer.reply(to: negotiation)
            let command = try peer.readCommand()
            try peer.greet()
            try peer.reply(to: command, returning: #"{"status":"prelaunch","running":false}"#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        #expect(try await client.queryStatus() == QMP.Status(status: "prelaunch", running: false))
        #expect(client.isConnected)
        client.close()
        await server.finish()
    }

    @Test("replies are matched by id when two commands are in flight and answered out of order")
    func outOfOrderReplies() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let a = try peer.readCommand()
            let b = try peer.readCommand()
            // Answer the second first.
            try peer.reply(to: b, returning: #""\#(b["execute"]!.stringValue!)""#)
            try peer.reply(to: a, returning: #""\#(a["execute"]!.stringValue!)""#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        async let first = client.execute("command-a")
        async let second = client.execute("command-b")
        let (a, b) = try await (first, second)
        #expect(a == "command-a")
        #expect(b == "command-b")
        client.close()
        await server.finish()
    }

    @Test("events interleaved before a reply reach subscribers and recentEvents, in order, before the reply")
    func eventsBeforeReply() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.expectCommand("query-status")
            try peer.sendEvent("STOP")
            try peer.sendEvent("BLOCK_JOB_READY", data: #"{"device": "drive0", "len": 5}"#)
            try peer.sendEvent("RESUME")
            try peer.reply(to: command, returning: #"{"status": "running", "singlestep": false, "running": true}"#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let stream = client.events()
        let status = try await client.queryStatus()
        #expect(status == QMP.Status(status: "running", running: true))
        // The events were yielded before the reply resumed us: they are all buffered.
        client.close()
        var names: [String] = []
        var ready: QMP.Event?
        for await event in stream {
            names.append(event.name)
            if event.name == "BLOCK_JOB_READY" { ready = event }
        }
        #expect(names == ["STOP", "BLOCK_JOB_READY", "RESUME"])
        #expect(ready?.data["device"] == "drive0")
        #expect(ready?.timestamp == 1_700_000_000.25)
        #expect(client.recentEvents.map(\.name) == ["STOP", "BLOCK_JOB_READY", "RESUME"])
        #expect(client.recentEvents.first?.data == .null)
        await server.finish()
    }

    @Test("every subscriber gets its own stream of the same events")
    func twoSubscribers() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            try peer.sendEvent("STOP")
            try peer.reply(to: command)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let one = client.events()
        let two = client.events()
        _ = try await client.execute("stop")
        client.close()
        #expect(await one.reduce(into: []) { $0.append($1.name) } == ["STOP"])
        #expect(await two.reduce(into: []) { $0.append($1.name) } == ["STOP"])
        await server.finish()
    }

    @Test("a full event stream drops the oldest events and keeps the newest")
    func eventOverflowDropsOldest() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            for index in 1...5 { try peer.sendEvent("E\(index)") }
            try peer.reply(to: command)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let stream = client.events(bufferingNewest: 2)
        _ = try await client.execute("sync")
        client.close()
        #expect(await stream.reduce(into: []) { $0.append($1.name) } == ["E4", "E5"])
        #expect(client.recentEvents.map(\.name) == ["E1", "E2", "E3", "E4", "E5"])
        await server.finish()
    }

    @Test("recentEvents keeps only the last 64 events")
    func recentEventsBounded() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            for index in 1...100 { try peer.sendEvent("E\(index)") }
            try peer.reply(to: command)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        _ = try await client.execute("sync")
        let recent = client.recentEvents.map(\.name)
        #expect(recent.count == 64)
        #expect(recent.first == "E37")
        #expect(recent.last == "E100")
        client.close()
        await server.finish()
    }

    @Test("nextEvent returns the next matching event and skips others")
    func nextEventMatchesName() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            try peer.reply(to: command)
            try peer.sendEvent("STOP")
            try peer.sendEvent("SHUTDOWN", data: #"{"guest": true, "reason": "guest-shutdown"}"#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        async let shutdown = client.nextEvent(named: "SHUTDOWN", timeout: .seconds(5))
        async let any = client.nextEvent(named: nil, timeout: .seconds(5))
        // Both waits must be registered before the peer is told to go on.
        #expect(await eventually { client.connection.waiterCount == 2 })
        _ = try await client.execute("go")
        let (event, first) = try await (shutdown, any)
        #expect(event.name == "SHUTDOWN")
        #expect(event.data["reason"] == "guest-shutdown")
        #expect(first.name == "STOP")
        client.close()
        await server.finish()
    }

    @Test("nextEvent fails with eventTimeout when no matching event arrives in time")
    func nextEventTimeout() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            try peer.sendEvent("STOP")
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, elapsed) = await timed { () async throws(QMP.Error) in
            try await client.nextEvent(named: "NEVER", timeout: .milliseconds(150))
        }
        #expect(result.failureValue == .eventTimeout(name: "NEVER", after: .milliseconds(150)))
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(3))
        #expect(client.isConnected)
        client.close()
        await server.finish()
    }

    @Test("an error reply becomes commandFailed with QEMU's class and description")
    func errorReply() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            try peer.replyError(
                to: command, errorClass: "CommandNotFound", description: "The command x-nope has not been found")
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, _) = await timed { () async throws(QMP.Error) in try await client.execute("x-nope") }
        let error = try #require(result.failureValue)
        #expect(
            error
                == .commandFailed(
                    command: "x-nope", errorClass: "CommandNotFound", description: "The command x-nope has not been found"))
        #expect(error.description.contains("query-commands"))
        #expect(client.isConnected)
        client.close()
        await server.finish()
    }

    @Test("a command without a reply fails with timeout, the connection stays open and the late reply is ignored")
    func commandTimeout() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let slow = try peer.expectCommand("slow")
            peer.sleep(.milliseconds(300))
            try peer.reply(to: slow, returning: #""late""#)
            let next = try peer.expectCommand("fast")
            try peer.reply(to: next, returning: #""on time""#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, elapsed) = await timed { () async throws(QMP.Error) in
            try await client.execute("slow", timeout: .milliseconds(100))
        }
        #expect(result.failureValue == .timeout(command: "slow", after: .milliseconds(100)))
        #expect(elapsed >= .milliseconds(100) && elapsed < .seconds(2))
        #expect(try await client.execute("fast") == "on time")
        client.close()
        await server.finish()
    }

    @Test("cancelling the waiting task fails the command with cancelled and leaves the connection usable")
    func cancellation() async throws {
        let received = Mutex(false)
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.expectCommand("never-answered")
            received.withLock { $0 = true }
            let next = try peer.expectCommand("after")
            try peer.reply(to: next)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let task = Task { () async throws(QMP.Error) -> QMP.JSONValue in
            try await client.execute("never-answered", timeout: .seconds(30))
        }
        #expect(await eventually { received.withLock { $0 } })
        task.cancel()
        let result = await task.result
        #expect((result.failureValue as? QMP.Error) == .cancelled(operation: "never-answered"))
        #expect(try await client.execute("after") == [:])
        client.close()
        await server.finish()
    }

    @Test("a peer that closes mid-command fails every pending command with disconnected")
    func peerClosesMidCommand() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.readCommand()
            _ = try peer.readCommand()
            peer.close()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        async let first = timed { () async throws(QMP.Error) in try await client.execute("one") }
        async let second = timed { () async throws(QMP.Error) in try await client.execute("two") }
        let results = await [first.0, second.0]
        for result in results {
            guard case .disconnected(let cause)? = result.failureValue else {
                Issue.record("expected disconnected, got \(result)")
                continue
            }
            #expect(cause.contains("closed") || cause.contains("reset") || cause.contains("writing"))
        }
        #expect(!client.isConnected)
        let (later, _) = await timed { () async throws(QMP.Error) in try await client.execute("three") }
        guard case .disconnected? = later.failureValue else {
            Issue.record("a command after the end should fail with disconnected, got \(later)")
            return
        }
        await server.finish()
    }

    @Test("disconnected() returns the cause once the peer closes")
    func disconnectedReturnsCause() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            peer.sleep(.milliseconds(50))
            peer.close()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let stream = client.events()
        let cause = await client.disconnected()
        #expect(cause == "the peer closed the connection")
        #expect(!client.isConnected)
        // Streams finish when the connection ends.
        #expect(await stream.reduce(0) { count, _ in count + 1 } == 0)
        // Asking again returns at once.
        #expect(await client.disconnected() == cause)
        await server.finish()
    }

    @Test("a peer that never greets fails connect with greetingTimeout at the deadline")
    func neverGreets() async throws {
        let server = try FakeQMPServer { peer in
            try peer.waitForClientClose()
        }
        let (result, elapsed) = await timed { () async throws(QMP.Error) in
            try await QMP.Client.connect(unixPath: server.path, timeout: .milliseconds(200))
        }
        #expect(result.failureValue == .greetingTimeout(.milliseconds(200)))
        #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(3))
        await server.finish()
    }

    @Test("a first message that is not a QMP greeting fails connect with negotiationFailed")
    func notAGreeting() async throws {
        let server = try FakeQMPServer { peer in
            try peer.sendLine(#"{"hello": "world"}"#)
            try peer.waitForClientClose()
        }
        let (result, _) = await timed { () async throws(QMP.Error) in
            try await QMP.Client.connect(unixPath: server.path, timeout: .seconds(5))
        }
        guard case .negotiationFailed(let reason)? = result.failureValue else {
            Issue.record("expected negotiationFailed, got \(result)")
            return
        }
        #expect(reason.contains("hello"))
        await server.finish()
    }

    @Test("a rejected qmp_capabilities fails connect with negotiationFailed")
    func capabilitiesRejected() async throws {
        let server = try FakeQMPServer { peer in
            try peer.greet()
            let command = try peer.expectCommand("qmp_capabilities")
            try peer.replyError(to: command, errorClass: "GenericError", description: "no")
            try peer.waitForClientClose()
        }
        let (result, _) = await timed { () async throws(QMP.Error) in
            try await QMP.Client.connect(unixPath: server.path, timeout: .seconds(5))
        }
        #expect(result.failureValue == .negotiationFailed(reason: "QEMU rejected qmp_capabilities: GenericError: no"))
        await server.finish()
    }

    @Test(
        "a garbage line fails pending commands with malformedMessage and closes the connection",
        arguments: [
            Array("hello, world".utf8),
            Array("[1, 2, 3]".utf8),
            Array("42".utf8),
            Array(#""just a string""#.utf8),
            Array(#"{"return": "#.utf8),
            Array(#"{"return": {}} trailing"#.utf8),
            Array(#"{"return": "\x"}"#.utf8),
            [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D],  // {"\xFF\xFE":1}: invalid UTF-8
            Array(repeating: UInt8(ascii: "["), count: 100_000),  // nesting deeper than any stack
        ])
    func garbageLine(line: [UInt8]) async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.readCommand()
            try peer.send(bytes: line + Array("\r\n".utf8))
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, _) = await timed { () async throws(QMP.Error) in try await client.execute("query-status") }
        guard case .malformedMessage(let reason, let excerpt)? = result.failureValue else {
            Issue.record("expected malformedMessage, got \(result)")
            client.close()
            await server.finish()
            return
        }
        #expect(!reason.isEmpty)
        #expect(excerpt.count <= 160)
        #expect(!client.isConnected)
        let (later, _) = await timed { () async throws(QMP.Error) in try await client.execute("query-status") }
        guard case .disconnected(let cause)? = later.failureValue else {
            Issue.record("expected disconnected after the garbage, got \(later)")
            await server.finish()
            return
        }
        #expect(cause.contains("malformed"))
        await server.finish()
    }

    @Test("a 16 MiB reply is accepted with the default line limit")
    func sixteenMiBReply() async throws {
        let payload = String(repeating: "a", count: 16 << 20)
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            try peer.sendLine(peer.replyLine(to: command, returning: "\"\(payload)\""))
            // Generous: a debug build on a loaded machine takes a while to read 16 MiB.
            let next = try peer.readCommand(timeout: .seconds(60))
            try peer.reply(to: next, returning: #""small""#)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let big = try await client.execute("x-big", timeout: .seconds(60))
        #expect(big.stringValue?.utf8.count == 16 << 20)
        #expect(big.stringValue == payload)
        #expect(try await client.execute("x-small") == "small")
        client.close()
        await server.finish(timeout: .seconds(60))
    }

    @Test("a line longer than maxLineBytes fails with lineTooLong and closes the connection", arguments: [true, false])
    func lineTooLong(terminated: Bool) async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let command = try peer.readCommand()
            let padding = String(repeating: "x", count: 4000)
            let line = peer.replyLine(to: command, returning: #""\#(padding)""#)
            try peer.send(bytes: Array((terminated ? line + "\r\n" : line).utf8))
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path, maxLineBytes: 1024)
        let (result, _) = await timed { () async throws(QMP.Error) in try await client.execute("x-big") }
        #expect(result.failureValue == .lineTooLong(limit: 1024))
        #expect(!client.isConnected)
        await server.finish()
    }

    @Test("every message split at every byte boundary is reassembled")
    func splitAtEveryBoundary() async throws {
        let statusReply = #"{"status": "prelaunch", "singlestep": false, "running": false}"#
        let longest = [
            FakePeer.greeting.utf8.count, FakePeer.eventLine("STOP").utf8.count,
            statusReply.utf8.count + 20,
        ].max()! + 2
        for offset in 1...longest {
            let server = try FakeQMPServer { peer in
                try peer.sendSplit(Array((FakePeer.greeting + "\r\n").utf8), at: offset)
                let negotiation = try peer.expectCommand("qmp_capabilities")
                try peer.sendSplit(Array((peer.replyLine(to: negotiation) + "\r\n").utf8), at: offset)
                let command = try peer.expectCommand("query-status")
                try peer.sendSplit(Array((FakePeer.eventLine("STOP") + "\r\n").utf8), at: offset)
                try peer.sendSplit(Array((peer.replyLine(to: command, returning: statusReply) + "\r\n").utf8), at: offset)
                try peer.waitForClientClose()
            }
            let client = try await QMP.Client.connect(unixPath: server.path)
            let stream = client.events()
            let status = try await client.queryStatus()
            #expect(status == QMP.Status(status: "prelaunch", running: false), "split at \(offset)")
            client.close()
            #expect(await stream.reduce(into: []) { $0.append($1.name) } == ["STOP"], "split at \(offset)")
            await server.finish()
        }
    }

    @Test("a peer that writes one byte at a time is understood, with \\n or \\r\\n line ends")
    func byteAtATime() async throws {
        for ending in ["\r\n", "\n"] {
            let server = try FakeQMPServer { peer in
                func trickle(_ line: String) throws {
                    for byte in (line + ending).utf8 {
                        try peer.send(bytes: [byte])
                        peer.sleep(.microseconds(20))
                    }
                }
                try trickle(FakePeer.greeting)
                try trickle(peer.replyLine(to: try peer.expectCommand("qmp_capabilities")))
                let command = try peer.expectCommand("query-status")
                try trickle(FakePeer.eventLine("RESUME"))
                try trickle(peer.replyLine(to: command, returning: #"{"status": "running", "running": true}"#))
                try peer.waitForClientClose()
            }
            let client = try await QMP.Client.connect(unixPath: server.path)
            let stream = client.events()
            #expect(try await client.queryStatus().running)
            client.close()
            #expect(await stream.reduce(into: []) { $0.append($1.name) } == ["RESUME"])
            await server.finish()
        }
    }

    @Test("many commands in flight at once each get their own reply")
    func manyInFlight() async throws {
        let count = 200
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            var commands: [QMP.JSONValue] = []
            for _ in 0..<count { commands.append(try peer.readCommand()) }
            // Answer in reverse order, with events in between.
            for (index, command) in commands.reversed().enumerated() {
                if index % 10 == 0 { try peer.sendEvent("TICK") }
                try peer.reply(to: command, returning: command["arguments"]!["n"]!.jsonText)
            }
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let results = try await withThrowingTaskGroup(of: (Int, QMP.JSONValue).self) { group in
            for n in 0..<count {
                group.addTask { (n, try await client.execute("echo", arguments: ["n": .int(n)])) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == count)
        #expect(results.allSatisfy { $0.value == .int($0.key) })
        client.close()
        await server.finish()
    }

    @Test("quit succeeds when the peer answers and closes, or closes without answering")
    func quitSucceeds() async throws {
        for answers in [true, false] {
            let server = try FakeQMPServer { peer in
                try peer.negotiate()
                let quit = try peer.expectCommand("quit")
                if answers { try peer.reply(to: quit) }
                peer.close()
            }
            let client = try await QMP.Client.connect(unixPath: server.path)
            try await client.quit(timeout: .seconds(5))
            #expect(!client.isConnected)
            await server.finish()
        }
    }

    @Test("quit succeeds when the peer resets the connection (ECONNRESET)")
    func quitWithReset() async throws {
        let received = Mutex(false)
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.expectCommand("quit")
            received.withLock { $0 = true }
            // Closing with unread bytes in the receive queue makes Linux reset the
            // connection: the client's next read fails with ECONNRESET, as after QEMU's quit.
            peer.sleep(.milliseconds(50))
            peer.close()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        // An untyped closure: Swift 6.3.1 crashes (LifetimeDependenceDiagnostics) on the
        // thunk for a Void-returning `throws(QMP.Error)` closure passed to Task.
        let quit = Task { try await client.quit(timeout: .seconds(5)) }
        #expect(await eventually { received.withLock { $0 } })
        // Sent after quit, left unread by the peer.
        let extra = Task { () async throws(QMP.Error) -> QMP.JSONValue in try await client.execute("query-status") }
        let result = await quit.result
        #expect((try? result.get()) != nil, "quit failed: \(result)")
        #expect(!client.isConnected)
        _ = await extra.result
        await server.finish()
    }

    @Test("quit fails with timeout when the peer keeps the connection open")
    func quitTimeout() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            let quit = try peer.expectCommand("quit")
            try peer.reply(to: quit)
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let (result, elapsed) = await timed { () async throws(QMP.Error) in try await client.quit(timeout: .milliseconds(150)) }
        #expect(result.failureValue == .timeout(command: "quit", after: .milliseconds(150)))
        #expect(elapsed < .seconds(3))
        client.close()
        await server.finish()
    }

    @Test("close fails pending commands with disconnected, finishes streams and is idempotent")
    func closeFailsPending() async throws {
        let received = Mutex(false)
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            _ = try peer.readCommand()
            received.withLock { $0 = true }
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let stream = client.events()
        let pending = Task { () async throws(QMP.Error) -> QMP.JSONValue in try await client.execute("hang") }
        #expect(await eventually { received.withLock { $0 } })
        client.close()
        client.close()
        #expect((await pending.result.failureValue as? QMP.Error) == .disconnected(cause: "the client closed the connection"))
        #expect(await stream.reduce(0) { count, _ in count + 1 } == 0)
        #expect(!client.isConnected)
        let (later, _) = await timed { () async throws(QMP.Error) in try await client.execute("after") }
        #expect(later.failureValue == .disconnected(cause: "the client closed the connection"))
        #expect(await client.disconnected() == "the client closed the connection")
        await server.finish()
    }

    @Test("sending to a peer that is gone raises no SIGPIPE and fails with disconnected")
    func noSigpipe() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            peer.close()
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        await server.finish()
        for _ in 0..<50 {
            let (result, _) = await timed { () async throws(QMP.Error) in try await client.execute("query-status") }
            guard case .disconnected? = result.failureValue else {
                Issue.record("expected disconnected, got \(result)")
                return
            }
        }
    }

    @Test("absurd timeouts and line limits are clamped instead of trapping")
    func absurdValues() async throws {
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            try peer.reply(to: try peer.readCommand(), returning: "1")
            // "b" has a zero timeout: it may expire before it is even sent; never answered.
            try peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(unixPath: server.path, timeout: .seconds(Int64.max), maxLineBytes: .max)
        #expect(try await client.execute("a", timeout: .seconds(Int64.max)) == 1)
        let (result, elapsed) = await timed { () async throws(QMP.Error) in try await client.execute("b", timeout: .zero) }
        #expect(result.failureValue == .timeout(command: "b", after: .zero))
        #expect(elapsed < .seconds(2))
        client.close()
        await server.finish()

        let silent = try FakeQMPServer { peer in try peer.waitForClientClose() }
        let (greeting, _) = await timed { () async throws(QMP.Error) in
            try await QMP.Client.connect(unixPath: silent.path, timeout: .zero, maxLineBytes: -5)
        }
        #expect(greeting.failureValue == .greetingTimeout(.zero))
        await silent.finish()
    }

    @Test("connect(fileDescriptor:) speaks QMP over one end of a socketpair")
    func socketPair() async throws {
        let (mine, theirs) = try #require(TestPOSIX.socketPair())
        let peer = FakePeer(fd: theirs)
        let done = Mutex(false)
        Thread.detachNewThread {
            defer {
                peer.close()
                done.withLock { $0 = true }
            }
            try? peer.negotiate()
            if let command = try? peer.readCommand() {
                try? peer.reply(to: command, returning: #"{"status": "paused", "running": false}"#)
            }
            try? peer.waitForClientClose()
        }
        let client = try await QMP.Client.connect(fileDescriptor: mine)
        #expect(try await client.queryStatus(timeout: .seconds(10)) == QMP.Status(status: "paused", running: false))
        client.close()
        #expect(await eventually { done.withLock { $0 } })
    }

    @Test("connect(fileDescriptor:) rejects a descriptor that is not open")
    func badDescriptor() async {
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(fileDescriptor: -1) }
        #expect(result.failureValue == .connectFailed(path: "file descriptor -1", errno: EBADF))
    }
}
