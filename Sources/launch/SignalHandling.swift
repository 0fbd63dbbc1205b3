import Foundation
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the pipe the signal handler writes each signal number to.
private nonisolated(unsafe) var signalPipeWriteEnd: Int32 = -1

/// SIGINT and SIGTERM count on `interrupt` instead of killing the launcher: the first
/// stops the VM through the ladder, a second skips the ladder to its next step, a third
/// kills QEMU; each later one is said on stderr in one line.
///
/// Why not a `DispatchSource` signal source with `SIG_IGN`: libdispatch on Linux blocks
/// every signal in its worker threads (the cooperative pool included), and the old
/// handler's `raise()` for a second signal ran on such a worker, so the signal stayed
/// pending on a thread that blocks it (`SigPnd` in /proc/PID/task/*/status) and nothing
/// happened. A real `sigaction` handler runs on whichever thread has the signal
/// unblocked (the main thread, parked in `sigsuspend` by `dispatch_main`), only writes
/// the signal number to a pipe (async-signal-safe), and a thread of its own reads it.
/// Children don't inherit the handler: the spawn shim resets every disposition.
final class SignalHandling: Sendable {
    private let readEnd: Int32

    init(_ interrupt: Interrupt, signals: [Int32] = [SIGINT, SIGTERM]) {
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe failed: \(String(cString: strerror(errno)))")
        // Close-on-exec: no child (QEMU, virtiofsd) may hold either end.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        readEnd = fds[0]
        signalPipeWriteEnd = fds[1]
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            let saved = errno
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(signalPipeWriteEnd, &byte, 1)
            errno = saved
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        for sig in signals { sigaction(sig, &action, nil) }
        let readEnd = self.readEnd
        let thread = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let said = Self.words(for: interrupt.trigger(), signal: Int32(byte))
                if let said { FileHandle.standardError.write(Data((said + "\n").utf8)) }
            }
        }
        thread.name = "signals"
        thread.start()
    }

    /// The line a signal gets on the terminal; nil for the first (the caller says it stops the VM).
    static func words(for escalation: Interrupt.Escalation, signal: Int32) -> String? {
        let name = signal == SIGTERM ? "SIGTERM" : "interrupt"
        switch escalation {
        case .stop:
            return nil
        case .hurried(let steps):
            let targets = Set(steps.map(\.rawValue)).sorted()
            if targets.isEmpty { return "launch: second \(name): no VM is running yet; it is stopped as it starts (a third \(name) kills it)" }
            return "launch: second \(name): skipping to \(targets.joined(separator: " / "))\(steps.count > 1 ? " for \(steps.count) VMs" : "") (a third \(name) kills QEMU)"
        case .killed(let steps):
            if steps.isEmpty { return "launch: another \(name): no VM is running; any that starts is killed" }
            return "launch: \(name) again: killing QEMU (SIGKILL)\(steps.count > 1 ? " for \(steps.count) VMs" : "")"
        }
    }
}
