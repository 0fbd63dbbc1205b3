import CLaunchShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The guest's serial console (``Machine/console``), drained from the moment QEMU starts.
///
/// An undrained console stalls the guest, so the launcher's I/O thread reads it always,
/// whether anyone listens or not: every byte goes to ``logPath``, to the bounded ``tail``
/// and to the live subscribers of ``output(bufferingNewest:)`` and ``lines``. Text that
/// arrived before you subscribed is only in the log and the tail. ``write(_:)`` types into
/// the console.
public final class ConsoleTap: Sendable {
    /// The log file every console byte is appended to (`console.log` in the runtime dir),
    /// kept after the VM ends only with ``Machine/Options/keepRuntimeDir``.
    public let logPath: String
    /// The console's last 200 lines, kept whether or not anyone reads ``lines``: what error
    /// messages quote when the guest fails.
    public let tail: OutputTail
    private let subscribers: Mutex<[Int: AsyncStream<String>.Continuation]>
    private let nextID = Atomic<Int>(0)
    private let fd: Int32
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// Byte subscribers (the console hub's clients) and how far the log has grown, under
    /// one lock with the log write, so a subscriber learns exactly where in the log its
    /// live bytes begin.
    private let byteSinks: Mutex<ByteSinks>

    struct ByteSinks {
        var logOffset: UInt64
        var sinks: [Int: (onData: @Sendable (UnsafeRawBufferPointer) -> Void, onEnd: @Sendable () -> Void)] = [:]
        var closed = false
    }

    init(fd: Int32, logPath: String, name: String, tailLines: Int = 200) {
        self.fd = fd
        self.logPath = logPath
        tail = OutputTail(maxLines: tailLines)
        subscribers = Mutex([:])
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        var logInfo = stat()
        let logSize = log >= 0 && fstat(log, &logInfo) == 0 ? UInt64(logInfo.st_size) : 0
        byteSinks = Mutex(ByteSinks(logOffset: logSize))
        // Drained by the launcher's I/O thread, with every other guest's fds.
        IOLoop.shared.read(fd, onData: { [self] bytes in
            let sinks = byteSinks.withLock { state in
                if log >= 0 { _ = Glibc.write(log, bytes.baseAddress, bytes.count) }
                state.logOffset += UInt64(bytes.count)
                return Array(state.sinks.values)
            }
            for sink in sinks { sink.onData(bytes) }
            tail.append(bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(text) }
        }, onEnd: { [self] in
            if log >= 0 { close(log) }
            close(fd)
            for continuation in subscribers.withLock({ s in defer { s = [:] }; return Array(s.values) }) { continuation.finish() }
            let sinks = byteSinks.withLock { state in
                defer { state.sinks = [:]; state.closed = true }
                return Array(state.sinks.values)
            }
            for sink in sinks { sink.onEnd() }
            let waiters = finished.withLock { w in defer { w = nil }; return w ?? [] }
            for waiter in waiters { waiter.resume() }
        })
    }

    /// Live console text from now on, in chunks as they arrive (not split into lines). Keeps
    /// the newest `limit` chunks when the reader falls behind; the stream ends when QEMU
    /// closes the console (it ends at once if it already has).
    public func output(bufferingNewest limit: Int = 4096) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(limit))
        let id = nextID.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        if finished.withLock({ $0 == nil }) { continuation.finish() }
        return stream
    }

    /// Live console bytes from now on, handed to `onData` on the launcher's I/O thread (it
    /// must not block), then `onEnd` when QEMU closes the console. Returns the subscription's
    /// id and the offset in ``logPath`` where its bytes begin (what came before is in the
    /// log, what comes after is not handed to it twice); nil when the console has closed.
    package func subscribeBytes(onData: @escaping @Sendable (UnsafeRawBufferPointer) -> Void,
                                onEnd: @escaping @Sendable () -> Void) -> (id: Int, logOffset: UInt64)? {
        let id = nextID.add(1, ordering: .relaxed).newValue
        return byteSinks.withLock { state in
            if state.closed { return nil }
            state.sinks[id] = (onData, onEnd)
            return (id, state.logOffset)
        }
    }

    /// Ends a ``subscribeBytes(onData:onEnd:)`` subscription (its `onEnd` is not called).
    package func unsubscribeBytes(_ id: Int) {
        _ = byteSinks.withLock { $0.sinks.removeValue(forKey: id) }
    }

    /// The console from now on, one complete line at a time (without the line end), until
    /// QEMU closes it; an unterminated last line comes last.
    public var lines: AsyncStream<String> {
        let chunks = output()
        return AsyncStream { continuation in
            let task = Task {
                var pending = ""
                for await chunk in chunks {
                    pending += chunk
                    while let newline = pending.firstIndex(of: "\n") {
                        var line = String(pending[..<newline])
                        if line.hasSuffix("\r") { line.removeLast() }
                        continuation.yield(line)
                        pending = String(pending[pending.index(after: newline)...])
                    }
                }
                if !pending.isEmpty { continuation.yield(pending) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Suspends until the console's peer closed (QEMU exited).
    public func waitUntilClosed() async {
        await withCheckedContinuation { continuation in
            let done = finished.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Writes to the console (the guest's serial input).
    public func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
