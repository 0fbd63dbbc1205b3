/// What a suspended call receives when it is resumed.
enum Outcome: Sendable {
    case greeting(QMP.Greeting)
    case value(QMP.JSONValue)
    case event(QMP.Event)
    case closed(cause: String)
}

typealias WaiterContinuation = CheckedContinuation<Result<Outcome, QMP.Error>, Never>

/// One suspended call: a command awaiting its reply, a wait for an event, for the
/// greeting, or for the connection to end.
///
/// A waiter is *reserved* (entered in the table, with its deadline) before the
/// caller suspends, so a result, a deadline or a cancellation that comes first is
/// kept as `.done` and handed over when the continuation arrives.
struct Waiter {
    enum Kind {
        case greeting
        case command(String)
        case event(String?)
        case close
    }

    enum Stage {
        case reserved
        case waiting(WaiterContinuation)
        case done(Result<Outcome, QMP.Error>)
    }

    var kind: Kind
    var stage: Stage = .reserved
    var deadline: ContinuousClock.Instant?
    /// Delivered when the deadline passes.
    var timeoutError: QMP.Error

    var isCommand: Bool {
        if case .command = kind { return true }
        return false
    }
}

/// A continuation and the value to resume it with, run after the lock is released.
struct Resumption: Sendable {
    let continuation: WaiterContinuation
    let result: Result<Outcome, QMP.Error>

    func run() { continuation.resume(returning: result) }
}

/// Work collected under the lock and run after it is released: resuming tasks and
/// finishing event streams may run code (stream termination handlers) that takes
/// the lock again.
struct Teardown: Sendable {
    var resumptions: [Resumption] = []
    var finishedSubscribers: [EventSubscriber] = []

    func run() {
        for resumption in resumptions { resumption.run() }
        for subscriber in finishedSubscribers { subscriber.continuation.finish() }
    }
}

/// Why the connection ended: the error pending calls got, and the cause later
/// calls see in `.disconnected(cause:)`.
struct Closure: Sendable {
    var error: QMP.Error
    var cause: String
}

/// Everything the connection's lock guards.
struct ConnectionState: Sendable {
    static let recentEventLimit = 64

    var closure: Closure?
    var greeted = false
    /// Command ids, waiter ids and subscriber tokens; 0 is the greeting waiter.
    var nextID = 1
    var waiters: [Int: Waiter] = [:]
    /// No waiter's deadline is earlier than this (it may be stale-early after removals).
    var earliestDeadline: ContinuousClock.Instant?
    /// When the I/O thread will next wake by itself; an earlier deadline must wake it.
    var ioWakeAt: ContinuousClock.Instant = .now
    var subscribers: [Int: EventSubscriber] = [:]
    var recentEvents: [QMP.Event] = []
    /// Bytes the socket did not take yet; the I/O thread sends them on POLLOUT.
    var outbox: [UInt8] = []
    var outboxSent = 0
    /// Set by the I/O thread when it has closed the socket and the wake pair.
    var fdsClosed = false
    /// A wake-up byte is in flight: later wake-ups need no write (the I/O thread
    /// re-reads this state after draining the wake socket).
    var wakePending = false
    /// Jobs of tasks that prefer the connection's I/O thread as their executor.
    var jobs: [UnownedJob] = []
    /// False only while the I/O thread sleeps in `poll` (or is about to): a job
    /// enqueued then must wake it; otherwise it will look at `jobs` before polling.
    var ioThreadAwake = true
    /// The I/O thread is running jobs: commands they send are queued in `outbox`
    /// and leave together when the round ends.
    var runningJobs = false
    /// The I/O thread has finished: jobs go to the global executor instead.
    var ioThreadFinished = false

    mutating func allocateID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    /// Delivers `result` to waiter `id`: returns the resumption if the caller is
    /// suspended, or keeps the result for it if it has not suspended yet.
    mutating func settle(_ id: Int, _ result: Result<Outcome, QMP.Error>) -> Resumption? {
        guard var waiter = waiters[id] else { return nil }
        switch waiter.stage {
        case .waiting(let continuation):
            waiters[id] = nil
            return Resumption(continuation: continuation, result: result)
        case .reserved:
            waiter.stage = .done(result)
            waiters[id] = waiter
            return nil
        case .done:
            return nil
        }
    }

    /// Hands the continuation to reserved waiter `id`; returns a resumption when
    /// the result is already there.
    mutating func attach(_ id: Int, _ continuation: WaiterContinuation) -> Resumption? {
        guard var waiter = waiters[id] else {
            // Unreachable: only attach removes a `.done` entry.
            return Resumption(
                continuation: continuation,
                result: .failure(.disconnected(cause: "internal error: waiter \(id) vanished")))
        }
        if case .done(let result) = waiter.stage {
            waiters[id] = nil
            return Resumption(continuation: continuation, result: result)
        }
        waiter.stage = .waiting(continuation)
        waiters[id] = waiter
        return nil
    }

    mutating func appendRecent(_ event: QMP.Event) {
        if recentEvents.count == Self.recentEventLimit { recentEvents.removeFirst() }
        recentEvents.append(event)
    }
}
