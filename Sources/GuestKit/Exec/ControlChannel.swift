import Foundation
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The host end of `launch.ctl`: sends requests, and hands each report the
/// guest sends to whoever waits for it. When QEMU closes the port (the VM ended), every
/// waiter, present or future, hears `.closed`.
final class ControlChannel: Sendable {
    enum Event: Sendable, Hashable {
        case message(SessionProtocol.GuestMessage)
        case closed
    }

    private struct State {
        var ready = OneShot<Event>()
        var parked = OneShot<Event>()
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
        // Read by the launcher's I/O thread, which holds this channel (not the session);
        // it ends when QEMU closes the port.
        let pending = Mutex<[UInt8]>([])
        IOLoop.shared.read(fd, onData: { [self] chunk in
            let lines: [String] = pending.withLock { buffer in
                buffer += chunk
                var lines: [String] = []
                while let newline = buffer.firstIndex(of: 0x0a) {
                    lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                    buffer.removeSubrange(...newline)
                }
                return lines
            }
            for line in lines {
                if let message = SessionProtocol.parse(line) { deliver(message) }
            }
        }, onEnd: { [self] in
            let waiters = state.withLock { s -> [OneShot<Event>] in
                s.isClosed = true
                return [s.ready, s.parked, s.bootError] + Array(s.slots.values)
            }
            for waiter in waiters { waiter.resolve(.closed) }
            // Under the write lock: a sender never writes to a closed (or reused) fd number.
            writeLock.withLock { _ in _ = close(fd) }
            closed.resolve(())
        })
    }

    private func deliver(_ message: SessionProtocol.GuestMessage) {
        let target: OneShot<Event>? = state.withLock { s in
            switch message {
            case .ready: return s.ready
            case .parked: return s.parked
            case .error(nil, _): return s.bootError
            case .exit(let slot, _), .stopped(let slot, _), .error(let slot?, _): return s.slots.removeValue(forKey: slot)
            }
        }
        target?.resolve(.message(message))
    }

    /// True once the guest is gone (the port closed).
    var isClosed: Bool { state.withLock { $0.isClosed } }

    var ready: OneShot<Event> { state.withLock { $0.ready } }
    var parked: OneShot<Event> { state.withLock { $0.parked } }
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
