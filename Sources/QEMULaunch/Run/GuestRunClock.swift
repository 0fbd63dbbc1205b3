import Synchronization

/// How long a guest's vCPUs have run, from QMP's `RESUME` and `STOP` events.
///
/// The boot and command deadlines count guest running time, not wall time: a guest
/// held by a debugger (`-S` until gdb continues, a breakpoint, gdb's Ctrl-C), stopped
/// with QMP `stop` by another tool, or stopped for a memory dump makes no progress,
/// so it must not time out meanwhile. QEMU starts with `-S`, so the clock starts stopped.
public final class GuestRunClock: Sendable {
    private struct State {
        var accumulated: Duration = .zero
        var runningSince: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// How often a sleeper looks again while the guest is stopped, and at most how late
    /// it wakes after its time is up.
    static let pollInterval: Duration = .milliseconds(200)

    package init() {}

    /// The vCPUs run from now (QMP `RESUME`).
    package func resumed(at instant: ContinuousClock.Instant = .now) {
        state.withLock { s in
            if s.runningSince == nil { s.runningSince = instant }
        }
    }

    /// The vCPUs are stopped from now (QMP `STOP`).
    package func stopped(at instant: ContinuousClock.Instant = .now) {
        state.withLock { s in
            if let since = s.runningSince {
                s.accumulated += since.duration(to: instant)
                s.runningSince = nil
            }
        }
    }

    /// Whether the vCPUs run, as far as the events said.
    public var isRunning: Bool { state.withLock { $0.runningSince != nil } }

    /// The guest's running time so far.
    public var elapsed: Duration {
        state.withLock { s in s.accumulated + (s.runningSince.map { $0.duration(to: .now) } ?? .zero) }
    }

    /// Returns once the guest has run for `duration` more than it had when called;
    /// time with its vCPUs stopped does not count. Throws `CancellationError` when the
    /// calling task is cancelled.
    public func sleep(running duration: Duration) async throws {
        let target = elapsed + duration
        while true {
            let (left, running) = state.withLock { s in
                (target - (s.accumulated + (s.runningSince.map { $0.duration(to: .now) } ?? .zero)), s.runningSince != nil)
            }
            if left <= .zero { return }
            // Running: sleep until the time is up (or a stop could have come: look again).
            try await Task.sleep(for: running ? min(left, .seconds(1)) : Self.pollInterval)
        }
    }
}
