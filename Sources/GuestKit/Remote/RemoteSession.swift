import Foundation
import LaunchSupport
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs commands in a guest that another process keeps running, through its ``ExecServer``
/// socket (a named VM's `exec.sock`).
///
/// The command's stdout and stderr go straight to the fds you name (this process's own by
/// default), split as in the guest, and its stdin comes from the fd you name; ``run(_:options:)``
/// returns its exit code. Cancelling the calling task hangs up, which kills the command in
/// the guest.
///
/// ```swift
/// let guest = RemoteSession(socketPath: folder + "/exec.sock")
/// let status = try await guest.run(["uname", "-r"])
/// ```
public struct RemoteSession: Sendable {
    /// The exec server's socket.
    public let socketPath: String

    /// A session served at `socketPath`; nothing is connected until a command runs.
    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// One remote command's streams and surroundings.
    public struct CommandOptions: Sendable {
        /// The fd the command reads as stdin (not closed); nil: it reads EOF at once.
        public var stdin: Int32?
        /// The fd its stdout is written to (not closed).
        public var stdout: Int32
        /// The fd its stderr is written to (not closed).
        public var stderr: Int32
        /// Added to the guest's environment.
        public var environment: [String: String]
        /// Where the command runs in the guest; nil = the session's default.
        public var workingDirectory: String?
        /// Its time limit in the guest; nil = none (cancelling the call still ends it).
        public var timeout: Duration?

        /// Options for one command; every parameter has the default described on its property.
        public init(stdin: Int32? = nil, stdout: Int32 = STDOUT_FILENO, stderr: Int32 = STDERR_FILENO,
                    environment: [String: String] = [:], workingDirectory: String? = nil, timeout: Duration? = nil) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.environment = environment
            self.workingDirectory = workingDirectory
            self.timeout = timeout
        }
    }

    /// Runs `command` (an argv, looked up in the guest's PATH) and returns its exit status
    /// (128 + N when signal N ended it; 127 when it was not found) once all of its output
    /// is written.
    ///
    /// Throws `LaunchError`: `.hostProblem` when nothing serves the socket (the VM is not
    /// running, or the process serving it is gone); what the server's session threw
    /// (`.timeout`, `.qemuFailed` when the VM ended under the command, ...); `.cancelled`
    /// when the calling task is cancelled (the command is killed in the guest).
    public func run(_ command: [String], options: CommandOptions = CommandOptions()) async throws(LaunchError) -> Int32 {
        guard !command.isEmpty else {
            throw LaunchError(.invalidProfile, "an empty command", fix: "give an argv like [\"uname\", \"-r\"]")
        }
        let request = RemoteExecProtocol.Request(
            argv: command, environment: options.environment, workingDirectory: options.workingDirectory,
            stdin: options.stdin != nil,
            timeoutSeconds: options.timeout.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 })
        let connection = Connection()
        let path = socketPath
        let result = await withTaskCancellationHandler {
            await onOwnThread("exec-client") {
                Self.exchange(request, options: options, path: path, connection: connection)
            }
        } onCancel: {
            // Wakes the blocked read; the server sees the hang-up and kills the command.
            connection.state.withLock { c in
                c.cancelled = true
                if let fd = c.fd { shutdown(fd, Int32(SHUT_RDWR)) }
            }
        }
        if connection.state.withLock({ $0.cancelled }) {
            throw LaunchError.cancelled("running \(QEMUSyntax.shellLine(command)) in the guest at \(socketPath); it was killed there")
        }
        return try result.get()
    }

    /// Runs `script` with the guest's `sh -c`.
    public func run(shell script: String, options: CommandOptions = CommandOptions()) async throws(LaunchError) -> Int32 {
        try await run(["sh", "-c", script], options: options)
    }

    /// The socket of a running exchange, for the cancellation handler to shut down.
    private final class Connection: Sendable {
        let state = Mutex<(fd: Int32?, cancelled: Bool)>((nil, false))
    }

    /// Connects, sends the request with the three fds, and reads the reply (blocking).
    private static func exchange(_ request: RemoteExecProtocol.Request, options: CommandOptions, path: String,
                                 connection: Connection) -> Result<Int32, LaunchError> {
        let fd: Int32
        switch POSIX.connectedSocket(path: path) {
        case .success(let connected): fd = connected
        case .failure(let error): return .failure(.notServed(path, what: "exec server", error: error))
        }
        let proceed = connection.state.withLock { c -> Bool in
            if c.cancelled { return false }
            c.fd = fd
            return true
        }
        defer {
            connection.state.withLock { $0.fd = nil }
            POSIX.closeFD(fd)
        }
        guard proceed else { return .failure(.cancelled("connecting to \(path)")) }
        var stdin = options.stdin ?? -1
        var devNull: Int32 = -1
        if stdin < 0 {
            // Three fds always: the request says the command reads none of this one.
            devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
            stdin = devNull
        }
        defer { if devNull >= 0 { POSIX.closeFD(devNull) } }
        if let error = POSIX.sendPassingFDs(fd, RemoteExecProtocol.line(request), fds: [stdin, options.stdout, options.stderr]) {
            return .failure(LaunchError(.hostProblem, "cannot send the command to the exec server at \(path): \(error.text)",
                                        fix: error.code == EBADF ? "the stdin, stdout and stderr fds must be open" : nil))
        }
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !line.contains(UInt8(ascii: "\n")) {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            line += buffer[0..<n]
        }
        let text = line.prefix { $0 != UInt8(ascii: "\n") }
        guard !text.isEmpty, let reply = try? JSONDecoder().decode(RemoteExecProtocol.Reply.self, from: Data(text)) else {
            return .failure(LaunchError(.qemuFailed, "the exec server at \(path) closed the connection without a result: the VM (or the process serving it) ended while the command ran",
                                        fix: "launch list shows what happened to the VM"))
        }
        if let error = reply.launchError { return .failure(error) }
        return .success(reply.exitCode ?? 0)
    }
}
