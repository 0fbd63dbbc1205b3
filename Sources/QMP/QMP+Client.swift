#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import LaunchSupport

extension QMP {
    /// A QMP connection: greeting and capability negotiation, id-correlated
    /// commands with deadlines, and events.
    ///
    /// Any number of tasks may call it at once: every command carries a unique `id`,
    /// replies are matched by it (QEMU may answer out of order), and events that
    /// arrive between replies go to subscribers. Every wait has a deadline.
    ///
    /// A dedicated I/O thread per connection does the blocking reads, so no call
    /// blocks the Swift concurrency pool. The connection ends when the peer closes
    /// it, on a read or write error, on a malformed line, or on `close()`; then
    /// every waiting call fails and later calls get `.disconnected(cause:)`.
    public final class Client: Sendable {
        let connection: Connection

        /// The server's greeting: QEMU's version and the capabilities it offered.
        public let greeting: Greeting

        init(connection: Connection, greeting: Greeting) {
            self.connection = connection
            self.greeting = greeting
        }

        deinit {
            connection.close(
                error: .disconnected(cause: "the QMP.Client was released"), cause: "the QMP.Client was released")
        }

        // MARK: - Connecting

        /// Connects to a QMP monitor listening on a Unix socket (QEMU's
        /// `-qmp unix:PATH,server=on,wait=off`), reads the greeting and negotiates
        /// capabilities (`qmp_capabilities`, no optional capability enabled).
        ///
        /// - Parameters:
        ///   - unixPath: the monitor's socket, at most 107 bytes on Linux (103 on macOS).
        ///   - timeout: for the whole handshake: connect, greeting and negotiation.
        ///   - maxLineBytes: the longest message accepted; a longer one fails with
        ///     `.lineTooLong` and closes the connection. The default (64 MiB) takes
        ///     any reply QEMU sends in practice.
        ///   - logger: used at debug and trace level, with `qmp.*` metadata keys.
        /// - Throws: `.socketPathTooLong`, `.connectFailed`, `.greetingTimeout`,
        ///   `.negotiationFailed`, or whatever ended the connection meanwhile.
        public static func connect(
            unixPath: String,
            timeout: Duration = .seconds(10),
            maxLineBytes: Int = 64 << 20,
            logger: Logger = Logger(label: "qmp")
        ) async throws(QMP.Error) -> Client {
            guard unixPath.utf8.count <= POSIX.unixPathLimit else {
                throw .socketPathTooLong(path: unixPath, limit: POSIX.unixPathLimit)
            }
            guard !unixPath.isEmpty, !unixPath.utf8.contains(0) else {
                throw .connectFailed(path: unixPath, errno: ENOENT)
            }
            let fd: Int32
            switch POSIX.makeStreamSocket() {
            case .success(let socket): fd = socket
            case .failure(let failure): throw .connectFailed(path: unixPath, errno: failure.code)
            }
            let connection = try Connection(
                fd: fd, connectPath: unixPath, endpoint: unixPath, connectTimeout: timeout,
                maxLineBytes: maxLineBytes, logger: logger)
            return try await handshake(connection, timeout: timeout)
        }

        /// Speaks QMP over an already connected stream socket, such as one end of a
        /// `socketpair(2)` whose other end QEMU got as `-chardev socket,fd=N`.
        ///
        /// Takes ownership of `fileDescriptor`: the client closes it when the
        /// connection ends, and marks it close-on-exec so later children don't
        /// inherit it. Same options and errors as `connect(unixPath:)`.
        public static func connect(
            fileDescriptor: Int32,
            timeout: Duration = .seconds(10),
            maxLineBytes: Int = 64 << 20,
            logger: Logger = Logger(label: "qmp")
        ) async throws(QMP.Error) -> Client {
            let endpoint = "file descriptor \(fileDescriptor)"
            guard fileDescriptor >= 0, POSIX.isOpen(fileDescriptor) else {
                throw .connectFailed(path: endpoint, errno: EBADF)
            }
            POSIX.prepare(fileDescriptor)
            let connection = try Connection(
                fd: fileDescriptor, connectPath: nil, endpoint: endpoint, connectTimeout: timeout,
                maxLineBytes: maxLineBytes, logger: logger)
            return try await handshake(connection, timeout: timeout)
        }

        private static func handshake(_ connection: Connection, timeout: Duration) async throws(QMP.Error) -> Client {
            let deadline = Connection.deadline(after: timeout)
            let greeting = try await connection.awaitGreeting(timeout: timeout).get()
            // The rest of the budget, but never zero: a fast peer still gets its reply read.
            let remaining = max(deadline - ContinuousClock.now, .milliseconds(1))
            switch await connection.execute("qmp_capabilities", arguments: nil, timeout: remaining) {
            case .success:
                break
            case .failure(.commandFailed(_, let errorClass, let description)):
                let reason = "QEMU rejected qmp_capabilities: \(errorClass): \(description)"
                connection.close(error: .negotiationFailed(reason: reason), cause: "negotiation failed")
                throw .negotiationFailed(reason: reason)
            case .failure(let error):
                connection.close(error: error, cause: "negotiation failed: \(error)")
                throw error
            }
            connection.logger.debug(
                "qmp connected",
                metadata: [
                    "qmp.version": "\(greeting.version)", "qmp.capabilities": "\(greeting.capabilities)",
                ])
            return Client(connection: connection, greeting: greeting)
        }

        // MARK: - Commands

        /// Runs a QMP command and returns its `return` value.
        ///
        /// - Throws: `.commandFailed` for QEMU's error reply, `.timeout` when no
        ///   reply came in time (the connection stays open; a late reply is dropped),
        ///   `.cancelled` when the calling task is cancelled, or the error that
        ///   ended the connection.
        public func execute(
            _ command: String, arguments: [String: JSONValue]? = nil, timeout: Duration = .seconds(30)
        ) async throws(QMP.Error) -> JSONValue {
            try await connection.execute(command, arguments: arguments, timeout: timeout).get()
        }

        /// `query-status`: QEMU's run state.
        public func queryStatus(timeout: Duration = .seconds(30)) async throws(QMP.Error) -> Status {
            let reply = try await execute("query-status", timeout: timeout)
            guard let status = reply["status"]?.stringValue, let running = reply["running"]?.boolValue else {
                throw .malformedMessage(
                    reason: "query-status returned no status/running", excerpt: excerpt(of: Array(reply.jsonText.utf8)))
            }
            return Status(status: status, running: running)
        }

        /// `query-version`: the running QEMU's version.
        public func queryVersion(timeout: Duration = .seconds(30)) async throws(QMP.Error) -> Greeting.Version {
            let reply = try await execute("query-version", timeout: timeout)
            guard let version = Greeting.Version(json: reply) else {
                throw .malformedMessage(
                    reason: "query-version returned no qemu.major/minor/micro",
                    excerpt: excerpt(of: Array(reply.jsonText.utf8)))
            }
            return version
        }

        /// `stop`: pauses the guest's vCPUs (QEMU emits `STOP`).
        public func stop(timeout: Duration = .seconds(30)) async throws(QMP.Error) {
            _ = try await execute("stop", timeout: timeout)
        }

        /// `cont`: resumes the guest, or starts it when QEMU was started with `-S`
        /// (QEMU emits `RESUME`).
        public func cont(timeout: Duration = .seconds(30)) async throws(QMP.Error) {
            _ = try await execute("cont", timeout: timeout)
        }

        /// `system_powerdown`: presses the ACPI power button. The guest decides what
        /// to do; a guest without ACPI support ignores it.
        public func systemPowerdown(timeout: Duration = .seconds(30)) async throws(QMP.Error) {
            _ = try await execute("system_powerdown", timeout: timeout)
        }

        /// `system_reset`: resets the machine like the reset button.
        public func systemReset(timeout: Duration = .seconds(30)) async throws(QMP.Error) {
            _ = try await execute("system_reset", timeout: timeout)
        }

        /// `quit`: asks QEMU to exit, then waits until it has closed the connection.
        ///
        /// QEMU may answer and then close, or close (even reset, ECONNRESET) before
        /// its answer is read: both are success. Fails with `.timeout(command: "quit")`
        /// when the connection is still open at the deadline, or `.disconnected`
        /// when it had already ended before the call.
        public func quit(timeout: Duration = .seconds(10)) async throws(QMP.Error) {
            let deadline = Connection.deadline(after: timeout)
            if let cause = connection.closeCause { throw .disconnected(cause: cause) }
            switch await connection.execute("quit", arguments: nil, timeout: timeout) {
            case .success, .failure(.disconnected):
                break
            case .failure(let error):
                throw error
            }
            let cause = try await connection.waitForClose(
                deadline: deadline, timeoutError: .timeout(command: "quit", after: timeout)
            ).get()
            connection.logger.debug("qmp quit", metadata: ["qmp.cause": "\(cause)"])
        }

        /// `human-monitor-command`: runs an HMP command line (`info mtree`, ...) and
        /// returns its text output. HMP output is for people: don't parse it when a
        /// QMP command gives the same facts.
        public func humanMonitorCommand(_ line: String, timeout: Duration = .seconds(30)) async throws(QMP.Error)
            -> String
        {
            let reply = try await execute(
                "human-monitor-command", arguments: ["command-line": .string(line)], timeout: timeout)
            guard let output = reply.stringValue else {
                throw .malformedMessage(
                    reason: "human-monitor-command returned a non-string",
                    excerpt: excerpt(of: Array(reply.jsonText.utf8)))
            }
            return output
        }

        // MARK: - Events

        /// A new stream of the events that arrive from now on; one stream per
        /// subscriber, each with its own buffer.
        ///
        /// The buffer holds `bufferingNewest` events. When the consumer falls behind
        /// and the buffer is full, the OLDEST buffered event is dropped to make room;
        /// drops are counted and logged at warning level (on the 1st, 2nd, 4th, ...
        /// drop). The stream finishes when the connection ends. Events that arrived
        /// before the call are in `recentEvents`.
        public func events(bufferingNewest: Int = 1024) -> AsyncStream<Event> {
            connection.events(bufferingNewest: bufferingNewest)
        }

        /// Waits for the next event named `named` (any event when nil) that arrives
        /// after this call begins.
        ///
        /// The wait begins when the call starts running, so an event caused by an
        /// action started *before* the call may already have passed: to wait for
        /// the effect of your own action without a race, subscribe with `events()`
        /// first, then act, then read the stream; or check `recentEvents`.
        public func nextEvent(named: String?, timeout: Duration) async throws(QMP.Error) -> Event {
            try await connection.nextEvent(named: named, timeout: timeout).get()
        }

        /// The last 64 events, oldest first, whether or not anyone subscribed.
        public var recentEvents: [Event] { connection.recentEvents }

        // MARK: - Executor

        /// The connection's I/O thread as a `TaskExecutor`, for code that sends many
        /// commands and wants the shortest round trips:
        ///
        /// ```swift
        /// try await withTaskExecutorPreference(qmp.taskExecutor) {
        ///     for _ in 0..<1000 { _ = try await qmp.queryStatus() }
        /// }
        /// ```
        ///
        /// Inside, the thread that reads a reply resumes the waiting task itself
        /// instead of waking a thread of the global pool (one context switch per
        /// command instead of two), and commands sent by tasks resumed together leave
        /// in one `send(2)`. The code runs on the I/O thread, so it must not block:
        /// while it runs, no reply is read. After the connection ends, such tasks
        /// run on the global executor. Without the preference nothing changes.
        public var taskExecutor: any TaskExecutor { connection }

        // MARK: - Lifetime

        /// Whether the connection is open.
        public var isConnected: Bool { connection.isConnected }

        /// Suspends until the connection ends and returns its cause. Returns at once
        /// when it has already ended, or when the calling task is cancelled (the
        /// returned text then says so).
        public func disconnected() async -> String {
            switch await connection.waitForClose(deadline: nil, timeoutError: .cancelled(operation: "disconnected()")) {
            case .success(let cause): return cause
            case .failure(let error): return "still connected (\(error))"
            }
        }

        /// Closes the connection. Every waiting call fails with `.disconnected`, every
        /// event stream finishes. Idempotent.
        public func close() {
            let cause = "the client closed the connection"
            connection.close(error: .disconnected(cause: cause), cause: cause)
        }
    }
}
