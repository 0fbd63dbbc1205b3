import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `lock` file of a named VM's record folder, flock'ed by its supervisor for its whole
/// life: a lock that can be taken means the supervisor is gone. The kernel drops a flock when
/// the last fd of its open file goes, whatever killed the process (SIGKILL included), so
/// the lock can't go stale the way a pid file does.
package struct VMLock: Sendable {
    /// The open, locked file; handed to the supervisor as an inherited fd.
    package let fileDescriptor: Int32

    /// Creates and locks `folder/lock` (exclusive); nil when someone else holds it.
    package static func take(in folder: String) throws(LaunchError) -> VMLock? {
        let path = folder + "/" + VMRegistry.lockFile
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw LaunchError(.hostProblem, "cannot open \(path): \(POSIX.describe(errno))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        return VMLock(fileDescriptor: fd)
    }

    /// Whether a process holds the lock in `folder` (a shared probe, released at once,
    /// so two probes never see each other). No lock file = no holder.
    package static func isHeld(in folder: String) -> Bool {
        let fd = open(folder + "/" + VMRegistry.lockFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    /// Closes this process's fd of the lock (the supervisor's inherited copy keeps it held).
    package func release() {
        close(fileDescriptor)
    }
}
