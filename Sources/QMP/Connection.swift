#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import LaunchSupport
import Synchronization

/// The machinery behind `QMP.Client`: one socket, one I/O thread, one lock.
///
/// - The I/O thread owns reading: it blocks in `poll(2)` on the socket and a wake
///   socket pair, reads into a `LineBuffer`, parses each line and resumes the
///   waiter it answers. It also fires deadlines (the poll timeout is the earliest
///   one) and sends whatever the socket did not take at once. It alone closes the
///   file descriptors, so they are never reused under a concurrent call.
/// - Callers send their command themselves, under the lock, with a non-blocking
///   `send(2)`: the common case costs no thread hop. A partial send leaves the rest
///   in `outbox` for the I/O thread.
/// - No task is spawned per command: a waiter table maps ids to continuations.
final class Connection: Sendable {
    /// The I/O thread wakes at least this often with nothing to do; a deadline
    /// later than its next wake-up needs no wake-up write.
    static let idleTick: Duration = .seconds(1)

    let endpoint: String
    let logger: Logger
    let maxLineBytes: Int
    private let fd: Int32
    private let wakeReceiver: Int32
    private let wakeSender: Int32
    private let connectPath: String?
    private let connectTimeout: Duration
    private let state = Mutex(ConnectionState())

    /// Takes ownership of `fd` (closed on failure here, otherwise by the I/O thread).
    init(
        fd: Int32, connectPath: String?, endpoint: String, connectTimeout: Duration,
        maxLineBytes: Int, logger: Logger
    ) throws(QMP.Error) {
        switch POSIX.makeSocketPair() {
        case .success(let (receiver, sender)):
            wakeReceiver = receiver
            wakeSender = sender
        case .failure(let failure):
            Glibc_or_Darwin_close(fd)
            throw .connectFailed(path: endpoint, errno: failure.code)
        }
        self.fd = fd
        self.connectPath = connectPath
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.maxLineBytes = min(max(1, maxLineBytes), Int.max / 4)
        var logger = logger
        logger[metadataKey: "qmp.endpoint"] = "\(endpoint)"
        self.logger = logger
    }

    /// `now + timeout`, with the timeout clamped so that absurd values (`.seconds(.max)`)
    /// can't overflow the clock.
    static func deadline(after timeout: Duration) -> ContinuousClock.Instant {
        ContinuousClock.now + min(max(timeout, .zero), .seconds(100 * 365 * 24 * 3600))
    }

    // MARK: - Calls

    /// Starts the I/O thread and waits for the greeting until `timeout`.
    func awaitGreeting(timeout: Duration) async -> Result<QMP.Greeting, QMP.Error> {
        state.withLock { state in
            let deadline = Self.deadline(after: timeout)
            state.waiters[0] = Waiter(kind: .greeting, deadline: deadline, timeoutError: .greetingTimeout(timeout))
            state.earliestDeadline = deadline
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: WaiterContinuation) in
                state.withLock { $0.attach(0, continuation) }?.run()
                if !startDetachedThread(name: "qmp-io", { self.run() }) {
                    closeFileDescriptors()
                    self.close(
                        error: .connectFailed(path: endpoint, errno: EAGAIN), cause: "no thread could be started")
                }
            }
        } onCancel: {
            self.close(error: .cancelled(operation: "connect"), cause: "connecting was cancelled")
        }
        return result.flatMap { outcome in
            guard case .greeting(let greeting) = outcome else { return .failure(.unexpected(outcome)) }
            return .success(greeting)
        }
    }

    /// Sends `command` and waits for its reply until `timeout`.
    func execute(_ command: String, arguments: [String: QMP.JSONValue]?, timeout: Duration) async -> Result<
        QMP.JSONValue, QMP.Error
    > {
        let deadline = Self.deadline(after: timeout)
        let reserved = reserve(
            .command(command), deadline: deadline, timeoutError: .timeout(command: command, after: timeout))
        guard case .success(let id) = reserved else {
            return .failure(reserved.failureValue!)
        }
        var line: [UInt8] = []
        line.reserveCapacity(64 + command.utf8.count)
        line.append(contentsOf: #"{"execute":"#.utf8)
        QMP.JSONValue.writeString(command, to: &line)
        if let arguments {
            line.append(contentsOf: #","arguments":"#.utf8)
            QMP.JSONValue.object(arguments).write(to: &line)
        }
        line.append(contentsOf: #","id":"#.utf8)
        line.append(contentsOf: String(id).utf8)
        line.append(contentsOf: "}\n".utf8)
        logger.trace("qmp send", metadata: ["qmp.command": "\(command)", "qmp.id": "\(id)"])

        let result = await suspend(id, operation: command) { state in
            self.enqueue(line, &state)
        }
        return result.flatMap { outcome in
            guard case .value(let value) = outcome else { return .failure(.unexpected(outcome)) }
            return .success(value)
        }
    }

    /// Waits for the next event named `name` (any event when nil) until `timeout`.
    func nextEvent(named name: String?, timeout: Duration) async -> Result<QMP.Event, QMP.Error> {
        let deadline = Self.deadline(after: timeout)
        let reserved = reserve(
            .event(name), deadline: deadline, timeoutError: .eventTimeout(name: name, after: timeout))
        guard case .success(let id) = reserved else { return .failure(reserved.failureValue!) }
        let result = await suspend(id, operation: "the event \(name ?? "(any)")") { _ in Teardown() }
        return result.flatMap { outcome in
            guard case .event(let event) = outcome else { return .failure(.unexpected(outcome)) }
            return .success(event)
        }
    }

    /// Waits until the connection ends and returns its cause; `.failure` only for
    /// the deadline (`timeoutError`) or cancellation.
    func waitForClose(deadline: ContinuousClock.Instant?, timeoutError: QMP.Error) async -> Result<String, QMP.Error> {
        let reserved = reserve(.close, deadline: deadline, timeoutError: timeoutError)
        let id: Int
        switch reserved {
        case .success(let reservedID): id = reservedID
        case .failure(.disconnected(let cause)): return .success(cause)
        case .failure(let error): return .failure(error)
        }
        let result = await suspend(id, operation: "the end of the connection") { _ in Teardown() }
        return result.flatMap { outcome in
            guard case .closed(let cause) = outcome else { return .failure(.unexpected(outcome)) }
            return .success(cause)
        }
    }

    /// A new bounded event stream; finished at once when the connection has ended.
    func events(bufferingNewest capacity: Int) -> AsyncStream<QMP.Event> {
        let capacity = max(1, capacity)
        let (stream, continuation) = AsyncStream.makeStream(
            of: QMP.Event.self, bufferingPolicy: .bufferingNewest(capacity))
        let subscriber = EventSubscriber(continuation: continuation, capacity: capacity)
        let token: Int? = state.withLock { state in
            guard state.closure == nil else { return nil }
            let token = state.allocateID()
            state.subscribers[token] = subscriber
            return token
        }
        guard let token else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: token) }
        }
        return stream
    }

    var recentEvents: [QMP.Event] { state.withLock { $0.recentEvents } }

    var isConnected: Bool { state.withLock { $0.closure == nil && $0.greeted } }

    var closeCause: String? { state.withLock { $0.closure?.cause } }

    /// Calls in flight (commands, event and close waits); for tests.
    var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Ends the connection: every waiting call gets `error`, later calls
    /// `.disconnected(cause:)`. Idempotent: the first cause wins.
    func close(error: QMP.Error, cause: String) {
        state.withLock { closeLocked(&$0, error: error, cause: cause) }.run()
    }

    // MARK: - Waiter plumbing

    private func reserve(_ kind: Waiter.Kind, deadline: ContinuousClock.Instant?, timeoutError: QMP.Error)
        -> Result<Int, QMP.Error>
    {
        state.withLock { state in
            if let closure = state.closure {
                return .failure(.disconnected(cause: closure.cause))
            }
            let id = state.allocateID()
            state.waiters[id] = Waiter(kind: kind, deadline: deadline, timeoutError: timeoutError)
            if let deadline { noteDeadline(deadline, &state) }
            return .success(id)
        }
    }

    /// Suspends on reserved waiter `id`. `afterAttach` runs under the lock once the
    /// continuation is in the table and no result is there yet (a command is sent
    /// then, so its reply always finds the continuation or keeps its result).
    private func suspend(
        _ id: Int, operation: String, afterAttach: (inout ConnectionState) -> Teardown
    ) async -> Result<Outcome, QMP.Error> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: WaiterContinuation) in
                let (resumption, teardown) = state.withLock { state -> (Resumption?, Teardown) in
                    if let resumption = state.attach(id, continuation) { return (resumption, Teardown()) }
                    return (nil, afterAttach(&state))
                }
                resumption?.run()
                teardown.run()
            }
        } onCancel: {
            state.withLock { $0.settle(id, .failure(.cancelled(operation: operation))) }?.run()
        }
    }

    private func noteDeadline(_ deadline: ContinuousClock.Instant, _ state: inout ConnectionState) {
        if state.earliestDeadline.map({ deadline < $0 }) ?? true {
            state.earliestDeadline = deadline
        }
        if deadline < state.ioWakeAt {
            state.ioWakeAt = deadline
            wakeLocked(&state)
        }
    }

    private func wakeLocked(_ state: inout ConnectionState) {
        guard !state.fdsClosed, !state.wakePending else { return }
        state.wakePending = true
        var byte: UInt8 = 1
        // A full wake socket already holds a pending wake-up: EAGAIN is fine.
        _ = send(wakeSender, &byte, 1, POSIX.sendFlags)
    }

    /// Sends `bytes` now if the socket takes them; queues the rest for the I/O thread.
    private func enqueue(_ bytes: [UInt8], _ state: inout ConnectionState) -> Teardown {
        guard state.closure == nil, !state.fdsClosed else { return Teardown() }
        if !state.outbox.isEmpty || state.runningJobs {
            // Behind queued bytes; or while the I/O thread runs jobs, which flushes the
            // outbox right after: the commands of one round of jobs leave in one
            // send(2) instead of one each.
            state.outbox.append(contentsOf: bytes)
            return Teardown()
        }
        switch bytes.withUnsafeBytes({ POSIX.sendNow(fd, $0) }) {
        case .success(let sent) where sent == bytes.count:
            return Teardown()
        case .success(let sent):
            state.outbox = Array(bytes[sent...])
            state.outboxSent = 0
            wakeLocked(&state)
            return Teardown()
        case .failure(let failure):
            // The caller's own waiter is in the table: it gets the error with the rest.
            let cause = "writing to the peer failed: \(failure.text)"
            return closeLocked(&state, error: .disconnected(cause: cause), cause: cause)
        }
    }

    private func closeLocked(_ state: inout ConnectionState, error: QMP.Error, cause: String) -> Teardown {
        var teardown = Teardown()
        guard state.closure == nil else { return teardown }
        state.closure = Closure(error: error, cause: cause)
        for (id, waiter) in state.waiters {
            let result: Result<Outcome, QMP.Error>
            if case .close = waiter.kind {
                result = .success(.closed(cause: cause))
            } else {
                result = .failure(error)
            }
            if let resumption = state.settle(id, result) { teardown.resumptions.append(resumption) }
        }
        teardown.finishedSubscribers = Array(state.subscribers.values)
        state.subscribers = [:]
        state.outbox = []
        state.outboxSent = 0
        wakeLocked(&state)
        logger.debug("qmp connection closed", metadata: ["qmp.cause": "\(cause)"])
        return teardown
    }

    // MARK: - I/O thread

    private func run() {
        if let connectPath {
            if let failure = POSIX.connect(fd, path: connectPath, timeout: connectTimeout) {
                close(
                    error: .connectFailed(path: connectPath, errno: failure.code),
                    cause: "connecting to \(connectPath) failed: \(failure.text)")
            } else {
                logger.trace("qmp socket connected")
            }
        }
        var reader = LineBuffer(maxLineBytes: maxLineBytes)
        var descriptors = [
            pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeReceiver, events: Int16(POLLIN), revents: 0),
        ]
        while let plan = planNextWait() {
            descriptors[0].events = Int16(POLLIN) | (plan.wantsWrite ? Int16(POLLOUT) : 0)
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, plan.timeoutMilliseconds)
            state.withLock { $0.ioThreadAwake = true }
            if ready < 0 {
                let code = POSIX.errno
                if code == EINTR { continue }
                fail("poll failed: \(POSIX.Errno(code).text)")
                break
            }
            if ready > 0 {
                if descriptors[1].revents != 0 { drainWakeSocket() }
                let events = Int32(descriptors[0].revents)
                if events & Int32(POLLNVAL) != 0 {
                    fail("the socket's file descriptor is not open")
                    break
                }
                if events & Int32(POLLOUT) != 0 { flushOutbox() }
                if events & Int32(POLLIN | POLLHUP | POLLERR) != 0 {
                    if !readAndDispatch(&reader) { break }
                }
            }
            runJobs()
            flushOutbox()
        }
        closeFileDescriptors()
        finishExecutor()
        logger.trace("qmp I/O thread finished")
    }

    private func closeFileDescriptors() {
        state.withLock { state in
            guard !state.fdsClosed else { return }
            state.fdsClosed = true
            Glibc_or_Darwin_close(fd)
            Glibc_or_Darwin_close(wakeReceiver)
            Glibc_or_Darwin_close(wakeSender)
        }
    }

    /// Fires due deadlines and decides how to wait next; nil when the connection has ended.
    private func planNextWait() -> (wantsWrite: Bool, timeoutMilliseconds: Int32)? {
        let now = ContinuousClock.now
        var teardown = Teardown()
        let plan = state.withLock { state -> (Bool, Int32)? in
            guard state.closure == nil else { return nil }
            if let earliest = state.earliestDeadline, earliest <= now {
                teardown = expireLocked(&state, now: now)
                guard state.closure == nil else { return nil }
            }
            if !state.jobs.isEmpty {
                // Jobs waiting: look at the socket without sleeping, then run them.
                return (!state.outbox.isEmpty, 0)
            }
            var wakeAt = now + Self.idleTick
            if let earliest = state.earliestDeadline, earliest < wakeAt { wakeAt = earliest }
            state.ioWakeAt = wakeAt
            state.ioThreadAwake = false
            return (!state.outbox.isEmpty, Self.milliseconds(until: wakeAt, from: now))
        }
        teardown.run()
        return plan.map { (wantsWrite: $0.0, timeoutMilliseconds: $0.1) }
    }

    private func expireLocked(_ state: inout ConnectionState, now: ContinuousClock.Instant) -> Teardown {
        var teardown = Teardown()
        var next: ContinuousClock.Instant?
        var expired: [(Int, Waiter)] = []
        for (id, waiter) in state.waiters {
            guard let deadline = waiter.deadline else { continue }
            if case .done = waiter.stage { continue }
            if deadline <= now {
                expired.append((id, waiter))
            } else if next.map({ deadline < $0 }) ?? true {
                next = deadline
            }
        }
        state.earliestDeadline = next
        for (id, waiter) in expired {
            if case .greeting = waiter.kind {
                // No greeting: the connection is useless; end it for everyone.
                var closing = closeLocked(&state, error: waiter.timeoutError, cause: "the peer sent no QMP greeting")
                closing.resumptions += teardown.resumptions
                return closing
            }
            if case .command(let command) = waiter.kind {
                logger.debug("qmp command timed out", metadata: ["qmp.command": "\(command)", "qmp.id": "\(id)"])
            }
            if let resumption = state.settle(id, .failure(waiter.timeoutError)) {
                teardown.resumptions.append(resumption)
            }
        }
        return teardown
    }

    static func milliseconds(until deadline: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        let (seconds, attoseconds) = (deadline - now).components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        // Round up so the thread never wakes just before a deadline and spins.
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(min(milliseconds, Int64(Int32.max)))
    }

    /// Runs the jobs queued so far (not those they enqueue: those wait for the next
    /// turn of the loop, after the socket has been looked at again).
    private func runJobs() {
        let jobs = state.withLock { state -> [UnownedJob] in
            let jobs = state.jobs
            state.jobs = []
            state.runningJobs = !jobs.isEmpty
            return jobs
        }
        guard !jobs.isEmpty else { return }
        let executor = asUnownedTaskExecutor()
        for job in jobs { job.runSynchronously(on: executor) }
        state.withLock { $0.runningJobs = false }
    }

    /// After the I/O thread's loop: later jobs go to the global executor, and so do
    /// the ones still queued, so no task that prefers this executor is stranded.
    private func finishExecutor() {
        let stranded = state.withLock { state -> [UnownedJob] in
            state.ioThreadFinished = true
            let jobs = state.jobs
            state.jobs = []
            return jobs
        }
        for job in stranded { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    private func drainWakeSocket() {
        // Cleared before draining: a wake-up written after this point is either
        // drained below or seen by the next poll; state changed before it is seen by
        // the next `planNextWait`, which always runs before the thread sleeps again.
        state.withLock { $0.wakePending = false }
        var scratch = [UInt8](repeating: 0, count: 64)
        while recv(wakeReceiver, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
    }

    private func flushOutbox() {
        state.withLock { state -> Teardown in
            guard state.closure == nil, !state.outbox.isEmpty else { return Teardown() }
            let sent = state.outbox.withUnsafeBytes { raw in
                POSIX.sendNow(fd, UnsafeRawBufferPointer(rebasing: raw[state.outboxSent...]))
            }
            switch sent {
            case .success(let count):
                state.outboxSent += count
                if state.outboxSent == state.outbox.count {
                    state.outbox = []
                    state.outboxSent = 0
                }
                return Teardown()
            case .failure(let failure):
                let cause = "writing to the peer failed: \(failure.text)"
                return closeLocked(&state, error: .disconnected(cause: cause), cause: cause)
            }
        }.run()
    }

    private func fail(_ cause: String) {
        close(error: .disconnected(cause: cause), cause: cause)
    }

    /// Reads once and handles every complete line; false when the connection ended.
    private func readAndDispatch(_ reader: inout LineBuffer) -> Bool {
        let count = reader.fill { buffer in
            read(fd, buffer.baseAddress, buffer.count)
        }
        if count == 0 {
            let unfinished = reader.pendingByteCount
            fail(
                unfinished == 0
                    ? "the peer closed the connection"
                    : "the peer closed the connection in the middle of a message (\(unfinished) bytes unfinished)")
            return false
        }
        if count < 0 {
            let code = POSIX.errno
            if code == EINTR || code == EAGAIN || code == EWOULDBLOCK { return true }
            fail(code == ECONNRESET ? "the peer reset the connection" : "reading failed: \(POSIX.Errno(code).text)")
            return false
        }
        while true {
            let range: Range<Int>?
            do {
                range = try reader.nextLine()
            } catch {
                close(
                    error: .lineTooLong(limit: maxLineBytes),
                    cause: "the peer sent a line longer than \(maxLineBytes) bytes")
                return false
            }
            guard let range else { return true }
            if range.isEmpty { continue }
            let parsed = reader.withBytes(in: range) { bytes -> Result<QMP.JSONValue, QMP.Error> in
                switch JSONParser.parse(bytes) {
                case .success(let value):
                    if case .object = value { return .success(value) }
                    return .failure(.malformedMessage(reason: "expected a JSON object", excerpt: excerpt(of: bytes)))
                case .failure(let failure):
                    return .failure(.malformedMessage(reason: "not JSON: \(failure)", excerpt: excerpt(of: bytes)))
                }
            }
            switch parsed {
            case .success(let message):
                if !dispatch(message) { return false }
            case .failure(let error):
                // A peer that sends garbage can't be trusted to frame the next reply
                // correctly either: fail everything and close rather than guess.
                close(error: error, cause: "the peer sent a malformed message")
                return false
            }
        }
    }

    /// Routes one message; false when it ended the connection.
    private func dispatch(_ message: QMP.JSONValue) -> Bool {
        if message["return"] != nil || message["error"] != nil {
            dispatchReply(message)
            return true
        }
        if message["event"] != nil {
            guard let event = QMP.Event(message: message) else {
                logger.debug("qmp ignoring an event without a name", metadata: ["qmp.message": "\(message)"])
                return true
            }
            dispatchEvent(event)
            return true
        }
        if message["QMP"] != nil {
            return dispatchGreeting(message)
        }
        if !state.withLock({ $0.greeted }) {
            close(
                error: .negotiationFailed(
                    reason: "the first message is not a QMP greeting: \(excerpt(of: Array(message.jsonText.utf8)))"),
                cause: "the peer did not greet")
            return false
        }
        logger.debug("qmp ignoring a message of unknown kind", metadata: ["qmp.message": "\(message)"])
        return true
    }

    private func dispatchGreeting(_ message: QMP.JSONValue) -> Bool {
        guard let greeting = QMP.Greeting(message: message) else {
            let reason = "the greeting has no version: \(excerpt(of: Array(message.jsonText.utf8)))"
            close(error: .negotiationFailed(reason: reason), cause: "the peer's greeting was not understood")
            return false
        }
        let resumption = state.withLock { state -> Resumption? in
            if state.greeted { return nil }
            state.greeted = true
            return state.settle(0, .success(.greeting(greeting)))
        }
        logger.debug(
            "qmp greeting",
            metadata: ["qmp.version": "\(greeting.version)", "qmp.capabilities": "\(greeting.capabilities)"])
        resumption?.run()
        return true
    }

    private func dispatchReply(_ message: QMP.JSONValue) {
        let id = message["id"]?.intValue
        let resumption = state.withLock { state -> Resumption? in
            var target = id
            if target == nil {
                // QEMU omits the id only when it could not read the command; with a
                // single command in flight the reply can only be for that one.
                let commands = state.waiters.filter { $0.value.isCommand }
                if commands.count == 1 { target = commands.first!.key }
            }
            guard let target, let waiter = state.waiters[target], case .command(let command) = waiter.kind else {
                return nil
            }
            if let value = message["return"] {
                return state.settle(target, .success(.value(value)))
            }
            let error = message["error"] ?? .null
            let errorClass = error["class"]?.stringValue ?? "(no class)"
            let description = error["desc"]?.stringValue ?? error.jsonText
            return state.settle(
                target, .failure(.commandFailed(command: command, errorClass: errorClass, description: description)))
        }
        if let resumption {
            logger.trace("qmp reply", metadata: ["qmp.id": "\(id.map(String.init) ?? "none")"])
            resumption.run()
        } else {
            logger.debug(
                "qmp ignoring a reply nobody waits for (timed out or cancelled)",
                metadata: ["qmp.id": "\(id.map(String.init) ?? "none")"])
        }
    }

    private func dispatchEvent(_ event: QMP.Event) {
        let (resumptions, subscribers) = state.withLock { state -> ([Resumption], [EventSubscriber]) in
            state.appendRecent(event)
            var matching: [Int] = []
            for (id, waiter) in state.waiters {
                if case .event(let name) = waiter.kind, name == nil || name == event.name {
                    matching.append(id)
                }
            }
            var resumptions: [Resumption] = []
            for id in matching {
                if let resumption = state.settle(id, .success(.event(event))) { resumptions.append(resumption) }
            }
            return (resumptions, Array(state.subscribers.values))
        }
        logger.debug("qmp event", metadata: ["qmp.event": "\(event.name)"])
        for resumption in resumptions { resumption.run() }
        for subscriber in subscribers { subscriber.deliver(event, logger: logger) }
    }
}

/// The connection's I/O thread as a task executor: a task that prefers it
/// (`withTaskExecutorPreference(client.taskExecutor)`) is resumed by the thread that
/// read its reply, in the same turn, instead of waking a thread of the global pool;
/// and the commands it sends from there are coalesced into one `send(2)`.
extension Connection: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        let unownedJob = UnownedJob(job)
        let queued = state.withLock { state -> Bool in
            guard !state.ioThreadFinished else { return false }
            state.jobs.append(unownedJob)
            if !state.ioThreadAwake { wakeLocked(&state) }
            return true
        }
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(unownedJob)) }
    }
}

extension QMP.Error {
    /// A waiter resumed with the wrong kind of outcome: unreachable by construction,
    /// reported as an error rather than a trap.
    static func unexpected(_ outcome: Outcome) -> QMP.Error {
        .disconnected(cause: "internal error: a waiter received \(outcome)")
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}

@inline(__always)
private func Glibc_or_Darwin_close(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Musl)
    _ = Musl.close(fd)
    #else
    _ = Darwin.close(fd)
    #endif
}
