import Synchronization

/// A value that is set once and awaited by any number of tasks. The first
/// `resolve` wins. A waiting task that is cancelled stops waiting at once and gets
/// nil, so a race built on it (a task group whose losers are cancelled) never
/// leaves a task behind.
package final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    package init() {}

    /// Sets the value and wakes every waiter; false when it was already set.
    @discardableResult
    package func resolve(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock { s in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// The value, if set.
    package var current: Value? { state.withLock { $0.value } }

    /// The value once set; nil as soon as the calling task is cancelled.
    package func wait() async -> Value? {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: Value?? = state.withLock { s in
                    if let value = s.value { return .some(value) }
                    // Cancelled before we registered: the handler found nothing to resume.
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = continuation
                    return .none
                }
                if case .some(let value) = ready { continuation.resume(returning: value) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }

    /// The value once set, whatever happens to the calling task (for teardown paths
    /// that must see the end through).
    package func waitThroughCancellation() async -> Value {
        if let value = await Task(operation: { await self.wait() }).value { return value }
        // Only a cancelled task gets nil, and the task above is never cancelled.
        preconditionFailure("OneShot.wait returned nil outside a cancelled task")
    }

    /// The value, or nil when `timeout` passes first; waits whatever happens to the
    /// calling task (teardown paths that need a bounded wait).
    package func waitThroughCancellation(timeout: Duration) async -> Value? {
        let waiter = Task { [self] () -> Value? in
            await race([
                { @Sendable in await self.wait() },
                { @Sendable in
                    try? await Task.sleep(for: timeout)
                    return nil
                },
            ])
        }
        return await waiter.value
    }
}
