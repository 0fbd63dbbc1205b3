import Foundation
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a guest command's stdin comes from.
public enum GuestInput: Sendable {
    /// The command reads EOF at once.
    case none
    /// Bytes sent in full, then EOF.
    case bytes(Data)
    /// Read from this fd until EOF (a pipe, a file or a terminal), or until the
    /// command ends; not closed.
    case fileDescriptor(Int32)
}

/// Where a guest command's stdout or stderr goes.
public enum GuestOutput: Sendable {
    /// Kept in memory and returned in the result.
    case capture
    /// Written to this fd as it arrives (and not kept).
    case fileDescriptor(Int32)
    /// Handed to this closure, chunk by chunk, as it arrives (on a reader thread).
    case handler(@Sendable (Data) -> Void)
}

/// The host end of one output port of a session slot: read for the session's whole
/// life, each chunk handed to the command running in the slot.
/// It closes the fd when QEMU closes the port (the VM ended).
final class OutputPort: Sendable {
    private struct State {
        var sink: GuestOutput = .capture
        var count = 0
        var captured = Data()
        var target: (count: Int, reached: OneShot<Void>)?
    }
    private let state = Mutex(State())
    let closed = OneShot<Void>()

    init(fd: Int32) {
        // Read by the launcher's I/O thread, which holds this port only (not the
        // session); it ends when QEMU closes the port.
        IOLoop.shared.read(fd, onData: { [self] chunk in
            let (sink, reached): (GuestOutput, OneShot<Void>?) = state.withLock { s in
                s.count += chunk.count
                if case .capture = s.sink { s.captured.append(contentsOf: chunk) }
                var reached: OneShot<Void>?
                if let target = s.target, s.count >= target.count {
                    reached = target.reached
                    s.target = nil
                }
                return (s.sink, reached)
            }
            switch sink {
            case .capture: break
            case .fileDescriptor(let out): writeAll(out, Array(chunk))
            case .handler(let handle): handle(Data(chunk))
            }
            reached?.resolve(())
        }, onEnd: { [self] in
            close(fd)
            closed.resolve(())
        })
    }

    /// A new command starts writing here.
    func begin(_ sink: GuestOutput) {
        state.withLock { s in
            s = State()
            s.sink = sink
        }
    }

    /// Returns once `count` bytes of the current command have arrived; false when the
    /// deadline passes first or the calling task is cancelled.
    func waitForBytes(_ count: Int, timeout: Duration) async -> Bool {
        let reached = OneShot<Void>()
        let already = state.withLock { s -> Bool in
            if s.count >= count { return true }
            s.target = (count, reached)
            return false
        }
        if already { return true }
        return await race([
            { @Sendable in await reached.wait() != nil },
            { @Sendable in
                try? await Task.sleep(for: timeout)
                return false
            },
        ])
    }

    var count: Int { state.withLock { $0.count } }
    var captured: Data { state.withLock { $0.captured } }
}

/// Sends one command's stdin to its slot's input port in frames (see
/// `SessionProtocol`), on a thread of its own, and the end frame when the source
/// ends or the command does (`stop`).
final class StdinPump: Sendable {
    private let wake: (read: Int32, write: Int32)
    private let stopped = Atomic<Bool>(false)
    let finished = OneShot<Void>()

    init(_ input: GuestInput, port: Int32, threadName: String) {
        var pipeFds: [Int32] = [-1, -1]
        if pipe(&pipeFds) == 0 {
            for fd in pipeFds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } else {
            pipeFds = [-1, -1]
        }
        wake = (pipeFds[0], pipeFds[1])
        let thread = Thread { [self] in
            nameThisThread(threadName)
            pump(input, port: port)
            // The end frame, always: the guest's reader consumes frames up to it.
            writeAll(port, SessionProtocol.stdinEnd)
            finished.resolve(())
        }
        thread.name = threadName
        thread.start()
    }

    deinit {
        if wake.read >= 0 { close(wake.read) }
        if wake.write >= 0 { close(wake.write) }
    }

    /// The command ended: send the end frame now, whatever is left of the source.
    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        if wake.write >= 0 { _ = Glibc.write(wake.write, "x", 1) }
    }

    private func pump(_ input: GuestInput, port: Int32) {
        switch input {
        case .none:
            return
        case .bytes(let data):
            var offset = data.startIndex
            while offset < data.endIndex && !stopped.load(ordering: .sequentiallyConsistent) {
                let end = min(offset + 65536, data.endIndex)
                if !writeAll(port, SessionProtocol.stdinFrame(data[offset..<end])) { return }
                offset = end
            }
        case .fileDescriptor(let source):
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !stopped.load(ordering: .sequentiallyConsistent) {
                // Wait for the source or for stop(): a terminal may never have more to say.
                var fds = [pollfd(fd: source, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
                let ready = poll(&fds, nfds_t(wake.read >= 0 ? 2 : 1), -1)
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 || fds[1].revents != 0 { return }
                let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return }
                if !writeAll(port, SessionProtocol.stdinFrame(buffer[0..<n])) { return }
            }
        }
    }
}

/// Writes all of `bytes` to `fd` (a terminal, a pipe or a socket, without SIGPIPE); false when it can't.
@discardableResult
package func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { raw -> Int in
            // send() with MSG_NOSIGNAL on sockets, so a gone peer is an error, not SIGPIPE.
            let sent = Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            if sent < 0 && errno == ENOTSOCK { return Glibc.write(fd, raw.baseAddress, raw.count) }
            return sent
        }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
    }
    return true
}
