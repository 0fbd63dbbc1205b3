import CLaunchShim
import Foundation
import LaunchSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The launcher's one I/O thread for every running guest in the process: it reads
/// the serial consoles, the guest kit's ports and the children's output, and reaps
/// the children (through pidfds), with one `epoll` loop — the swift-nio shape —
/// instead of a thread per fd. QMP connections keep their own I/O thread.
///
/// Handlers run on this thread, one at a time: they must not block for long (a
/// handler that writes to a full pipe holds every guest's output up until it can).
package final class IOLoop: Sendable {
    package static let shared = IOLoop()

    private enum Watch: Sendable {
        case reader(fd: Int32, onData: @Sendable (UnsafeRawBufferPointer) -> Void, onEnd: @Sendable () -> Void)
        case exit(pidfd: Int32, pid: pid_t, onExit: @Sendable (Int32) -> Void)
    }

    private let epollFd: Int32
    private let watches = Mutex<(byID: [UInt64: Watch], nextID: UInt64)>(([:], 1))

    private init() {
        epollFd = cls_epoll_create()
        precondition(epollFd >= 0, "epoll_create1 failed: \(POSIX.describe(POSIX.errno))")
        let thread = Thread { [self] in
            cls_name_this_thread("launch-io")
            run()
        }
        thread.name = "launch-io"
        thread.start()
    }

    /// Reads `fd` until EOF or an error, handing each chunk to `onData`; then calls
    /// `onEnd`, which owns closing the fd.
    package func read(_ fd: Int32, onData: @escaping @Sendable (UnsafeRawBufferPointer) -> Void,
                      onEnd: @escaping @Sendable () -> Void) {
        add(.reader(fd: fd, onData: onData, onEnd: onEnd), fd: fd)
    }

    /// Calls `onExit` with the wait status once `pid` (a child of this process) has
    /// exited and been reaped. False when this kernel has no pidfds (before 5.3).
    package func reap(_ pid: pid_t, onExit: @escaping @Sendable (Int32) -> Void) -> Bool {
        let pidfd = cls_pidfd_open(pid)
        guard pidfd >= 0 else { return false }
        add(.exit(pidfd: pidfd, pid: pid, onExit: onExit), fd: pidfd)
        return true
    }

    private func add(_ watch: Watch, fd: Int32) {
        let id = watches.withLock { w in
            defer { w.nextID += 1 }
            w.byID[w.nextID] = watch
            return w.nextID
        }
        if cls_epoll_add(epollFd, fd, id) != 0 {
            // Only for an fd that can't be polled (a regular file): end it at once.
            let reason = errno
            _ = watches.withLock { $0.byID.removeValue(forKey: id) }
            switch watch {
            case .reader(_, _, let onEnd): onEnd()
            case .exit: preconditionFailure("epoll refused a pidfd: \(POSIX.describe(reason))")
            }
        }
    }

    private func remove(_ id: UInt64, fd: Int32) {
        _ = cls_epoll_remove(epollFd, fd)
        _ = watches.withLock { $0.byID.removeValue(forKey: id) }
    }

    private func run() {
        var ready = [UInt64](repeating: 0, count: 64)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = cls_epoll_wait(epollFd, &ready, Int32(ready.count), -1)
            if count < 0 {
                if errno == EINTR { continue }
                preconditionFailure("epoll_wait failed: \(POSIX.describe(POSIX.errno))")
            }
            for index in 0..<Int(count) {
                let id = ready[index]
                guard let watch = watches.withLock({ $0.byID[id] }) else { continue }
                switch watch {
                case .reader(let fd, let onData, let onEnd):
                    // Level-triggered: one read per wake-up never blocks; more data wakes us again.
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    if n > 0 {
                        buffer.withUnsafeBytes { onData(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    } else {
                        remove(id, fd: fd)
                        onEnd()
                    }
                case .exit(let pidfd, let pid, let onExit):
                    var status: Int32 = 0
                    let reaped = waitpid(pid, &status, WNOHANG)
                    if reaped == 0 || (reaped < 0 && errno == EINTR) { continue }
                    remove(id, fd: pidfd)
                    close(pidfd)
                    onExit(reaped == pid ? status : 0)
                }
            }
        }
    }
}
