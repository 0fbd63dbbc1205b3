import Foundation
import LaunchSupport
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#endif

@Suite("QMP.Client.connect failures")
struct ConnectErrorTests {
    @Test("a socket path longer than the platform limit is rejected with socketPathTooLong before any syscall")
    func pathTooLong() async {
        #if os(Linux)
        #expect(POSIX.unixPathLimit == 107)
        #else
        #expect(POSIX.unixPathLimit == 103)
        #endif
        let path = "/tmp/" + String(repeating: "d", count: POSIX.unixPathLimit - 4)
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(unixPath: path) }
        #expect(result.failureValue == .socketPathTooLong(path: path, limit: POSIX.unixPathLimit))
        #expect(result.failureValue?.description.contains("\(POSIX.unixPathLimit) bytes") == true)
    }

    @Test("a path of exactly the limit is accepted as a path (and fails only because nothing is there)")
    func pathAtLimit() async {
        let path = "/tmp/" + String(repeating: "d", count: POSIX.unixPathLimit - 5)
        #expect(path.utf8.count == POSIX.unixPathLimit)
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(unixPath: path) }
        #expect(result.failureValue == .connectFailed(path: path, errno: ENOENT))
    }

    @Test("connecting where no socket exists fails with connectFailed and ENOENT, saying why")
    func noSuchSocket() async {
        let path = "/tmp/qmpt-does-not-exist-\(getpid())"
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(unixPath: path) }
        let error = result.failureValue
        #expect(error == .connectFailed(path: path, errno: ENOENT))
        #expect(error?.description.contains("does not exist") == true)
    }

    @Test("connecting to a socket nobody listens on fails with connectFailed and ECONNREFUSED")
    func nothingListening() async throws {
        var template = Array("/tmp/qmpt-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let path = directory + "/s"
        defer {
            unlink(path)
            rmdir(directory)
        }
        // Bound but never listening: what a crashed QEMU leaves behind looks the same.
        let fd = TestPOSIX.unixSocket()
        defer { TestPOSIX.close(fd) }
        #expect(TestPOSIX.bind(fd, path: path) == 0)
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(unixPath: path) }
        #expect(result.failureValue == .connectFailed(path: path, errno: ECONNREFUSED))
    }

    @Test("an empty path fails with connectFailed")
    func emptyPath() async {
        let (result, _) = await timed { () async throws(QMP.Error) in try await QMP.Client.connect(unixPath: "") }
        #expect(result.failureValue == .connectFailed(path: "", errno: ENOENT))
    }

    @Test("cancelling connect while waiting for the greeting fails with cancelled")
    func cancelConnect() async throws {
        let server = try FakeQMPServer { peer in
            try peer.waitForClientClose()
        }
        let task = Task { () async throws(QMP.Error) -> QMP.Client in
            try await QMP.Client.connect(unixPath: server.path, timeout: .seconds(30))
        }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect((await task.result.failureValue as? QMP.Error) == .cancelled(operation: "connect"))
        await server.finish()
    }

    @Test("every error's description names what happened, with its values, in a sentence", arguments: [
        (QMP.Error.connectFailed(path: "/tmp/x", errno: ECONNREFUSED), "Could not connect to the QMP socket /tmp/x: "),
        (.socketPathTooLong(path: "/long", limit: 107), "The QMP socket path is 5 bytes but Unix socket paths are limited to 107 bytes"),
        (.greetingTimeout(.seconds(10)), "sent no greeting within 10 s. "),
        (.negotiationFailed(reason: "nope"), "QMP negotiation failed: nope. "),
        (.commandFailed(command: "cont", errorClass: "GenericError", description: "boom"), "QEMU rejected cont: GenericError: boom"),
        (.timeout(command: "query-status", after: .seconds(4.991634049)), "No reply to query-status within 4.99 s. "),
        (.eventTimeout(name: "SHUTDOWN", after: .milliseconds(500)), "No event SHUTDOWN arrived within 500 ms. "),
        (.eventTimeout(name: nil, after: .seconds(5)), "No any event arrived within 5 s. "),
        (.disconnected(cause: "the peer closed the connection"), "The QMP connection is closed: the peer closed the connection."),
        (.malformedMessage(reason: "expected a JSON object", excerpt: "[1]"), "The QMP peer sent a malformed message (expected a JSON object): [1]. "),
        (.lineTooLong(limit: 1024), "The QMP peer sent a line longer than 1024 bytes"),
        (.cancelled(operation: "stop"), "The task waiting for stop was cancelled; the connection stays open."),
    ])
    func descriptions(error: QMP.Error, expected: String) {
        #expect(error.description.hasPrefix(expected) || error.description.contains(expected), "\(error.description)")
        #expect(!error.description.contains("QMP.Error"))
        #expect(!error.description.contains("seconds"), "durations read as \"5 s\", not Duration's own text")
    }
}
