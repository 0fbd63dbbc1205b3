import Foundation
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The host end of `launch.ctl`: sends requests, and a reader thread hands each
/// report to whoever waits for it. When QEMU closes the port (the VM ended), every
/// waiter, present or future, hears `.closed`.
final class ControlChannel: Sendable {
    enum Event: Sendable, Hashable {
        case message(SessionProtocol.GuestMessage)
        case closed
    }

    private struct State {
        var ready = OneShot<Event>()
        var bootError = OneShot<Event>()
        var slots: [Int: OneShot<Event>] = [:]
        var isClosed = false
    }
    private let state = Mutex(State())
    private let fd: Int32
    /// Set when the reader has closed the fd.
    let closed = OneShot<Void>()
    private let writeLock = Mutex(())

    init(fd: Int32) {
        self.fd = fd
        // The thread holds this channel (not the session): it ends when QEMU closes the port.
        let thread = Thread { [self] in
            nameThisThread("guest-ctl")
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending += buffer[0..<n]
                while let newline = pending.firstIndex(of: 0x0a) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    guard let message = SessionProtocol.parse(line) else { continue }
                    deliver(message)
                }
            }
            let waiters = state.withLock { s -> [OneShot<Event>] in
                s.isClosed = true
                return [s.ready, s.bootError] + Array(s.slots.values)
            }
            for waiter in waiters { waiter.resolve(.closed) }
            // Under the write lock: a sender never writes to a closed (or reused) fd number.
            writeLock.withLock { _ in _ = close(fd) }
            closed.resolve(())
        }
        thread.name = "guest-ctl"
        thread.start()
    }

    private func deliver(_ message: SessionProtocol.GuestMessage) {
        let target: OneShot<Event>? = state.withLock { s in
            switch message {
            case .ready: return s.ready
            case .error(nil, _): return s.bootError
            case .exit(let slot, _), .stopped(let slot, _), .error(let slot?, _): return s.slots.removeValue(forKey: slot)
            }
        }
        target?.resolve(.message(message))
    }

    /// True once the guest is gone (the port closed).
    var isClosed: Bool { state.withLock { $0.isClosed } }

    var ready: OneShot<Event> { state.withLock { $0.ready } }
    var bootError: OneShot<Event> { state.withLock { $0.bootError } }

    /// Where the next report of `slot` arrives; register it before sending the request.
    func expectReport(slot: Int) -> OneShot<Event> {
        let waiter = OneShot<Event>()
        let isClosed = state.withLock { s in
            s.slots[slot] = waiter
            return s.isClosed
        }
        if isClosed { waiter.resolve(.closed) }
        return waiter
    }

    /// Sends one whole request; false when the guest is gone. Requests from concurrent
    /// commands never interleave.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        writeLock.withLock { _ in
            guard !state.withLock({ $0.isClosed }) else { return false }
            return writeAll(fd, bytes)
        }
    }
}
