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

    @Test("every error's description names what happened", arguments: [
        QMP.Error.connectFailed(path: "/tmp/x", errno: ECONNREFUSED),
        .socketPathTooLong(path: "/long", limit: 107),
        .greetingTimeout(.seconds(10)),
        .negotiationFailed(reason: "nope"),
        .commandFailed(command: "cont", errorClass: "GenericError", description: "boom"),
        .timeout(command: "query-status", after: .seconds(30)),
        .eventTimeout(name: "SHUTDOWN", after: .seconds(5)),
        .eventTimeout(name: nil, after: .seconds(5)),
        .disconnected(cause: "the peer closed the connection"),
        .malformedMessage(reason: "expected a JSON object", excerpt: "[1]"),
        .lineTooLong(limit: 1024),
        .cancelled(operation: "stop"),
    ])
    func descriptions(error: QMP.Error) {
        #expect(error.description.count > 30)
        #expect(!error.description.contains("QMP.Error"))
    }
}
