import Synchronization


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

/// Ctrl-C and SIGTERM as the CLI counts them: the first fires the interrupt (waiters stop
/// their VMs through the shutdown ladder); a second hurries every attached VM's ladder to
/// its next step; a third sends every attached VM's QEMU straight to SIGKILL.
package final class Interrupt: Sendable {
    /// What one more signal did.
    package enum Escalation: Sendable, Equatable {
        /// The first: the interrupt fired.
        case stop
        /// A second: each attached VM's ladder skips to the step named (one per VM that was still running).
        case hurried([ShutdownStep])
        /// A third or later: each attached VM's QEMU gets SIGKILL at once.
        case killed([ShutdownStep])
    }

    /// A machine to hurry, held weakly: the interrupt must not keep a VM alive.
    private struct Attached: Sendable {
        weak var machine: Machine?
    }

    private let flag = OneShot<Void>()
    private let state = Mutex<(count: Int, machines: [ObjectIdentifier: Attached])>((0, [:]))

    package init() {}

    /// Counts one more signal and acts on it (see ``Escalation``).
    @discardableResult
    package func trigger() -> Escalation {
        let (count, machines) = state.withLock { s in
            s.count += 1
            return (s.count, s.machines.values.compactMap(\.machine))
        }
        switch count {
        case 1:
            flag.resolve(())
            return .stop
        case 2:
            return .hurried(machines.compactMap { $0.hurryShutdown() })
        default:
            return .killed(machines.compactMap { $0.hurryShutdown(toKill: true) })
        }
    }

    /// Whether it has fired.
    package var fired: Bool { flag.current != nil }

    /// Returns once the interrupt fires, or at once when the calling task is cancelled.
    package func wait() async { _ = await flag.wait() }

    /// Lets later signals hurry `machine`'s ladder; signals that came before it started
    /// apply at once (a second signal during the boot skips the ladder's ACPI step).
    package func attach(_ machine: Machine) {
        let count = state.withLock { s in
            s.machines[ObjectIdentifier(machine)] = Attached(machine: machine)
            return s.count
        }
        if count >= 3 {
            machine.hurryShutdown(toKill: true)
        } else if count == 2 {
            machine.hurryShutdown()
        }
    }

    /// Stops hurrying `machine` (it ended).
    package func detach(_ machine: Machine) {
        _ = state.withLock { $0.machines.removeValue(forKey: ObjectIdentifier(machine)) }
    }
}
