import Synchronization

/// Runs every racer and returns the first result. The others keep running to
/// their own end (they must be harmless waits), so a slow racer never holds the
/// winner up, unlike a task group, which waits for all its children.
public func firstOf<T: Sendable>(_ racers: [@Sendable () async -> T]) async -> T {
    let slot = Slot<T>()
    return await withCheckedContinuation { continuation in
        slot.state.withLock { $0 = continuation }
        for racer in racers {
            Task {
                let value = await racer()
                let winner = slot.state.withLock { s in
                    defer { s = nil }
                    return s
                }
                winner?.resume(returning: value)
            }
        }
    }
}

private final class Slot<T: Sendable>: Sendable {
    let state = Mutex<CheckedContinuation<T, Never>?>(nil)
}

/// A one-shot flag a signal handler sets and async code waits for (Ctrl-C).
public final class Interrupt: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    public func trigger() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    public var fired: Bool { state.withLock { $0.fired } }

    public func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
