
/// Runs the racers as child tasks and returns the first result. The others are
/// then cancelled and awaited, so none outlives the call: every racer must return
/// promptly once cancelled (`Task.sleep`, `OneShot.wait`, `Interrupt.wait` and the
/// QMP client's waits do).
package func race<T: Sendable>(_ racers: [@Sendable () async -> T]) async -> T {
    await withTaskGroup(of: T.self) { group in
        for racer in racers { group.addTask(operation: racer) }
        let first = await group.next()!
        group.cancelAll()
        return first
    }
}

/// A one-shot flag a signal handler sets and async code waits for (Ctrl-C).
package final class Interrupt: Sendable {
    private let flag = OneShot<Void>()

    package init() {}

    /// Fires the interrupt; every waiter wakes. Later calls do nothing.
    package func trigger() { flag.resolve(()) }

    /// Whether it has fired.
    package var fired: Bool { flag.current != nil }

    /// Returns once the interrupt fires, or at once when the calling task is cancelled.
    package func wait() async { _ = await flag.wait() }
}
