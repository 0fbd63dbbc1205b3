import Foundation
import Synchronization
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scripted QMP peer listening on a real Unix socket in a fresh `/tmp/qmpt-XXXXXX`
/// directory. It accepts one connection on a background thread and runs `script`
/// with it; `finish()` waits for the script and removes the socket and directory
/// (as does `deinit`, for tests that fail before reaching `finish()`).
final class FakeQMPServer: Sendable {
    let directory: String
    let path: String
    private let listener: Int32
    private let outcome = Shared()

    private final class Shared: Sendable {
        let value = Mutex<Outcome>(.running)
        func withLock<R: Sendable>(_ body: (inout Outcome) -> R) -> R { value.withLock { body(&$0) } }
    }

    enum Outcome: Sendable {
        case running
        case finished
        case failed(String)
    }

    init(_ script: @escaping @Sendable (FakePeer) throws -> Void) throws {
        var template = Array("/tmp/qmpt-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ScriptError("mkdtemp failed: errno \(errno)") }
        directory = String(cString: made)
        path = directory + "/s"
        listener = try Self.listen(at: path)
        let listener = self.listener
        let outcome = self.outcome
        Thread.detachNewThread {
            let result: Outcome
            do {
                let fd = try Self.accept(listener, timeout: 10)
                let peer = FakePeer(fd: fd)
                defer { peer.close() }
                try script(peer)
                result = .finished
            } catch {
                result = .failed("\(error)")
            }
            outcome.withLock { $0 = result }
        }
    }

    /// Waits (without blocking the cooperative pool) for the script to end, then
    /// removes the socket and its directory. Records the script's failure as an issue.
    func finish(timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation) async {
        let deadline = ContinuousClock.now + timeout
        while case .running = outcome.withLock({ $0 }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
        }
        switch outcome.withLock({ $0 }) {
        case .running: Issue.record("the fake server's script did not finish in \(timeout)", sourceLocation: sourceLocation)
        case .failed(let message): Issue.record("the fake server's script failed: \(message)", sourceLocation: sourceLocation)
        case .finished: break
        }
        cleanUp()
    }

    /// Removes the socket and directory; idempotent. Also runs from `deinit`, so a
    /// test that throws before `finish()` still leaves nothing behind.
    func cleanUp() {
        guard cleaned.withLock({ done in defer { done = true }; return !done }) else { return }
        TestPOSIX.close(listener)
        unlink(path)
        rmdir(directory)
    }

    deinit { cleanUp() }

    private let cleaned = Mutex(false)

    private static func listen(at path: String) throws -> Int32 {
        let fd = TestPOSIX.unixSocket()
        guard fd >= 0 else { throw ScriptError("socket failed: errno \(errno)") }
        guard TestPOSIX.bind(fd, path: path) == 0, TestPOSIX.listen(fd) == 0 else {
            TestPOSIX.close(fd)
            throw ScriptError("bind/listen failed: errno \(errno)")
        }
        return fd
    }

    private static func accept(_ listener: Int32, timeout seconds: Int32) throws -> Int32 {
        var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, seconds * 1000) == 1 else { throw ScriptError("no client connected") }
        let fd = TestPOSIX.accept(listener)
        guard fd >= 0 else { throw ScriptError("accept failed: errno \(errno)") }
        return fd
    }
}

struct ScriptError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The server's side of one connection, used from the script's thread.
final class FakePeer: @unchecked Sendable {
    static let greeting =
        #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u7"}, "capabilities": ["oob"]}}"#

    private(set) var fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    /// Writes all of `bytes` (MSG_NOSIGNAL: a gone client must not kill the test run).
    func send(bytes: some Collection<UInt8>) throws {
        let bytes = Array(bytes)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                TestPOSIX.send(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw ScriptError("send failed: errno \(errno)")
            }
            offset += sent
        }
    }

    /// Sends `text` followed by QEMU's `\r\n`.
    func sendLine(_ text: String) throws { try send(bytes: Array((text + "\r\n").utf8)) }

    /// Sends `bytes` as two writes split at `offset`, pausing between them so the
    /// client sees two reads.
    func sendSplit(_ bytes: [UInt8], at offset: Int, pause: Duration = .microseconds(300)) throws {
        let offset = min(max(offset, 0), bytes.count)
        try send(bytes: bytes[..<offset])
        sleep(pause)
        try send(bytes: bytes[offset...])
    }

    func greet() throws { try sendLine(Self.greeting) }

    /// Reads one `\n`-terminated line, waiting at most `timeout`.
    func readLine(timeout: Duration = .seconds(5)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw ScriptError("no line from the client within \(timeout)") }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Int32(left.components.seconds * 1000 + 1))
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if count == 0 { throw ScriptError("the client closed the connection") }
            if count > 0 { buffer += chunk[..<count] }
        }
    }

    /// Reads one command line and parses it.
    func readCommand(timeout: Duration = .seconds(5)) throws -> QMP.JSONValue {
        let line = try readLine(timeout: timeout)
        return try QMP.JSONValue(parsing: line)
    }

    /// Reads a command and checks its name.
    @discardableResult
    func expectCommand(_ name: String, timeout: Duration = .seconds(5)) throws -> QMP.JSONValue {
        let command = try readCommand(timeout: timeout)
        guard command["execute"]?.stringValue == name else {
            throw ScriptError("expected \(name), got \(command)")
        }
        return command
    }

    /// Greets and answers `qmp_capabilities`.
    func negotiate() throws {
        try greet()
        try reply(to: try expectCommand("qmp_capabilities"))
    }

    /// The reply line to `command` (with its id) carrying `returnJSON`.
    func replyLine(to command: QMP.JSONValue, returning returnJSON: String = "{}") -> String {
        let id = command["id"].map(\.jsonText) ?? "null"
        return #"{"return": \#(returnJSON), "id": \#(id)}"#
    }

    func reply(to command: QMP.JSONValue, returning returnJSON: String = "{}") throws {
        try sendLine(replyLine(to: command, returning: returnJSON))
    }

    func replyError(to command: QMP.JSONValue, errorClass: String, description: String) throws {
        let id = command["id"].map(\.jsonText) ?? "null"
        try sendLine(#"{"error": {"class": "\#(errorClass)", "desc": "\#(description)"}, "id": \#(id)}"#)
    }

    static func eventLine(_ name: String, data: String? = nil, seconds: Int = 1_700_000_000, microseconds: Int = 250_000)
        -> String
    {
        let dataPart = data.map { #", "data": \#($0)"# } ?? ""
        return #"{"timestamp": {"seconds": \#(seconds), "microseconds": \#(microseconds)}, "event": "\#(name)"\#(dataPart)}"#
    }

    func sendEvent(_ name: String, data: String? = nil) throws {
        try sendLine(Self.eventLine(name, data: data))
    }

    /// Reads and discards until the client closes, at most `timeout`.
    func waitForClientClose(timeout: Duration = .seconds(5)) throws {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 20) == 1 else { continue }
            let count = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { return }
        }
        throw ScriptError("the client did not close the connection within \(timeout)")
    }

    func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    func close() {
        if fd >= 0 {
            TestPOSIX.close(fd)
            fd = -1
        }
    }
}

/// Waits for `condition`, polling, at most `timeout`.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return true
}

/// Runs `body` and returns its typed result together with the elapsed time.
func timed<T>(_ body: () async throws(QMP.Error) -> T) async -> (Result<T, QMP.Error>, Duration) {
    let start = ContinuousClock.now
    do {
        let value = try await body()
        return (.success(value), ContinuousClock.now - start)
    } catch {
        return (.failure(error), ContinuousClock.now - start)
    }
}
