import Foundation
import LaunchSupport
import Logging
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Serves a ``GuestSession`` on a Unix socket (`exec.sock`), so other processes run
/// commands in the guest: `launch exec NAME`, or ``RemoteSession`` from Swift.
///
/// Each connection is one command: its argv, environment, working directory and whether it
/// reads stdin, and the client's own stdin, stdout and stderr fds, passed over the socket.
/// The command's output goes straight to those fds, split as in the guest; the reply is its
/// exit code, or a `LaunchError`'s code, message and fix. A client that hangs up cancels its
/// command: it is killed in the guest and the session goes on. Commands from several clients
/// run at once, up to the session's ``GuestSession/concurrency``; more wait for a slot.
///
/// The server ignores SIGPIPE for the whole process: a client's stdout may be a pipe whose
/// reader left, and that must fail that command's output, not kill the process serving it.
/// Output is written to the client's fds on the launcher's I/O thread: a client whose stdout
/// is not read holds the guest's output up until it is.
public final class ExecServer: Sendable {
    /// The socket clients connect to.
    public let socketPath: String
    private let session: GuestSession
    private let listener: Int32
    private let wake: (read: Int32, write: Int32)
    private let logger: Logger
    private let connections = Mutex<(tasks: [Int: Task<Void, Never>], nextID: Int)>(([:], 0))
    private let stopping = Atomic<Bool>(false)
    private let acceptEnded = OneShot<Void>()

    private init(session: GuestSession, socketPath: String, listener: Int32, wake: (Int32, Int32), logger: Logger) {
        self.session = session
        self.socketPath = socketPath
        self.listener = listener
        self.wake = wake
        self.logger = logger
    }

    /// Starts serving `session` at `socketPath` (a Unix socket, mode 0600; a stale socket
    /// file nobody answers on is replaced) until ``stop()``. Throws `.hostProblem` when the
    /// socket can't be made (path too long, served already, folder missing).
    public static func serve(session: GuestSession, socketPath: String,
                             logger: Logger = Logger(label: "guestkit.exec")) throws(LaunchError) -> ExecServer {
        let listener: Int32
        switch POSIX.listeningSocket(path: socketPath) {
        case .success(let fd): listener = fd
        case .failure(let error):
            throw LaunchError(.hostProblem, "cannot serve commands at \(socketPath): \(error.text)",
                              fix: error.code == EADDRINUSE ? "another process serves this VM's commands already: stop it first"
                                  : error.code == ENAMETOOLONG ? "use a shorter folder: Unix socket paths hold at most \(POSIX.unixPathLimit) bytes"
                                  : "check that the folder exists and is writable")
        }
        guard case .success(let pair) = POSIX.makeSocketPair() else {
            POSIX.closeFD(listener)
            unlink(socketPath)
            throw LaunchError(.internalError, "cannot make the exec server's wake channel: \(POSIX.Errno(POSIX.errno).text)")
        }
        // A client's stdout may be a pipe nobody reads any more: writing to it must fail
        // that command's output (EPIPE), not kill the supervisor.
        signal(SIGPIPE, SIG_IGN)
        let server = ExecServer(session: session, socketPath: socketPath, listener: listener, wake: pair, logger: logger)
        guard startDetachedThread(name: "exec-server", { server.acceptLoop() }) else {
            server.cleanUp()
            throw LaunchError(.internalError, "cannot start the exec server's thread: \(POSIX.Errno(POSIX.errno).text)")
        }
        return server
    }

    /// Stops serving: no new connections; every running command is cancelled (killed in the
    /// guest, its client told so) and awaited; the socket file is removed. Safe to call more
    /// than once.
    public func stop() async {
        if !stopping.exchange(true, ordering: .sequentiallyConsistent) {
            var byte: UInt8 = 1
            _ = Glibc.send(wake.write, &byte, 1, POSIX.sendFlags)
        }
        _ = await acceptEnded.waitThroughCancellation()
        let tasks = connections.withLock { Array($0.tasks.values) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// How many commands clients are running now (or sending).
    public var activeCount: Int { connections.withLock { $0.tasks.count } }

    private func acceptLoop() {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("the exec server stopped accepting: poll failed: \(POSIX.Errno(POSIX.errno).text)")
                break
            }
            if fds[1].revents != 0 { continue }
            guard fds[0].revents & Int16(POLLIN) != 0, let fd = POSIX.accept(listener, nonBlocking: false) else { continue }
            connections.withLock { c in
                let id = c.nextID
                c.nextID += 1
                c.tasks[id] = Task { [self] in
                    await serve(fd)
                    connections.withLock { _ = $0.tasks.removeValue(forKey: id) }
                }
            }
        }
        cleanUp()
        acceptEnded.resolve(())
    }

    private func cleanUp() {
        POSIX.closeFD(listener)
        unlink(socketPath)
        POSIX.closeFD(wake.read)
        POSIX.closeFD(wake.write)
    }

    private enum Outcome: Sendable {
        case finished(Result<Int32, LaunchError>)
        case hungUp
    }

    /// One connection: read the request and its fds, run the command, reply, close.
    private func serve(_ fd: Int32) async {
        defer { POSIX.closeFD(fd) }
        let received = await onOwnThread("exec-request") { Self.readRequest(fd) }
        let request: RemoteExecProtocol.Request
        let streams: [Int32]
        switch received {
        case .failure(let error):
            logger.debug("refused an exec request: \(error.message)")
            writeAll(fd, RemoteExecProtocol.line(RemoteExecProtocol.Reply(error)))
            return
        case .success(let got):
            (request, streams) = got
        }
        defer { for stream in streams { POSIX.closeFD(stream) } }

        // The client hanging up (Ctrl-C, killed) is EOF on the connection: watched on a
        // duplicate, so the reply can still go out on the original.
        let hangup = OneShot<Void>()
        let watch = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if watch >= 0 {
            IOLoop.shared.read(watch, onData: { _ in }, onEnd: {
                POSIX.closeFD(watch)
                hangup.resolve(())
            })
        }
        let options = GuestSession.CommandOptions(
            stdin: request.stdin ? .fileDescriptor(streams[0]) : .none,
            stdout: .fileDescriptor(streams[1]), stderr: .fileDescriptor(streams[2]),
            environment: request.environment, workingDirectory: request.workingDirectory,
            timeout: request.timeoutSeconds.map { .after(.milliseconds(Int64($0 * 1000))) } ?? .unlimited)
        let shown = QEMUSyntax.shellLine(request.argv)
        logger.debug("exec: \(shown)")
        let session = self.session
        let argv = request.argv
        let outcome = await race([
            { @Sendable () async -> Outcome in
                do throws(LaunchError) {
                    return .finished(.success(try await session.run(argv, options: options).exitCode))
                } catch {
                    return .finished(.failure(error))
                }
            },
            { @Sendable () async -> Outcome in
                // Also returns when the server stops (cancellation): told apart below.
                await hangup.wait()
                return .hungUp
            },
        ])
        let reply: RemoteExecProtocol.Reply
        switch outcome {
        case .hungUp:
            if Task.isCancelled {
                reply = RemoteExecProtocol.Reply(LaunchError.cancelled("running \(shown): the VM's exec server stopped (the VM is going down); the command was killed in the guest"))
            } else {
                logger.debug("exec: the client of \(shown) hung up; the command was killed in the guest")
                shutdown(fd, Int32(SHUT_RDWR))
                return
            }
        case .finished(.success(let code)):
            reply = RemoteExecProtocol.Reply(exitCode: code)
        case .finished(.failure(let error)):
            if Task.isCancelled {
                reply = RemoteExecProtocol.Reply(LaunchError.cancelled("running \(shown): the VM's exec server stopped (the VM is going down); the command was killed in the guest"))
            } else {
                reply = RemoteExecProtocol.Reply(error)
            }
        }
        writeAll(fd, RemoteExecProtocol.line(reply))
        // Ends the duplicate's watch too (shutdown acts on the socket, not on one fd).
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads one request line and the fds sent with it (blocking, within 10 s).
    private static func readRequest(_ fd: Int32) -> Result<(RemoteExecProtocol.Request, [Int32]), LaunchError> {
        var limit = timeval(.seconds(10))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var fds: [Int32] = []
        func fail(_ message: String) -> Result<(RemoteExecProtocol.Request, [Int32]), LaunchError> {
            for fd in fds { POSIX.closeFD(fd) }
            return .failure(LaunchError(.internalError, "a bad exec request: \(message)",
                                        fix: "send one JSON request line with the stdin, stdout and stderr fds attached (GuestKit's RemoteSession does)"))
        }
        while !bytes.contains(UInt8(ascii: "\n")) {
            guard bytes.count < RemoteExecProtocol.maxRequestBytes else { return fail("longer than \(RemoteExecProtocol.maxRequestBytes) bytes") }
            switch POSIX.receivePassedFDs(fd, maxBytes: 65536, maxFDs: RemoteExecProtocol.passedFDCount) {
            case .failure(let error):
                return fail(error.code == EAGAIN ? "none came within 10 s" : error.text)
            case .success(let got):
                if got.bytes.isEmpty { return fail("the client hung up before sending it") }
                bytes += got.bytes
                fds += got.fds
            }
        }
        var none = timeval()
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        guard fds.count == RemoteExecProtocol.passedFDCount else {
            return fail("it came with \(fds.count) fds, not \(RemoteExecProtocol.passedFDCount) (stdin, stdout, stderr)")
        }
        let line = bytes.prefix { $0 != UInt8(ascii: "\n") }
        guard let request = try? JSONDecoder().decode(RemoteExecProtocol.Request.self, from: Data(line)) else {
            return fail("not a request in JSON")
        }
        guard !request.argv.isEmpty else { return fail("an empty argv") }
        return .success((request, fds))
    }
}

/// Runs `body` (which blocks) on a thread of its own and returns its result, keeping
/// blocking syscalls off the cooperative pool.
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        if !startDetachedThread(name: name, { continuation.resume(returning: body()) }) {
            continuation.resume(returning: body())
        }
    }
}
