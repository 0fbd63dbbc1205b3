import CLaunchShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Drains one console socket, always: an undrained console stalls the guest.
/// Bytes go to a log file, a bounded tail of lines, and any live subscribers.
public final class ConsoleTap: Sendable {
    public let logPath: String
    public let tail: OutputTail
    private let subscribers: Mutex<[Int: AsyncStream<String>.Continuation]>
    private let nextID = Atomic<Int>(0)
    private let fd: Int32
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])

    init(fd: Int32, logPath: String, name: String, tailLines: Int = 200) {
        self.fd = fd
        self.logPath = logPath
        tail = OutputTail(maxLines: tailLines)
        subscribers = Mutex([:])
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        // Drained by the launcher's I/O thread, with every other guest's fds.
        IOLoop.shared.read(fd, onData: { [self] bytes in
            if log >= 0 { _ = Glibc.write(log, bytes.baseAddress, bytes.count) }
            tail.append(bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(text) }
        }, onEnd: { [self] in
            if log >= 0 { close(log) }
            close(fd)
            for continuation in subscribers.withLock({ s in defer { s = [:] }; return Array(s.values) }) { continuation.finish() }
            let waiters = finished.withLock { w in defer { w = nil }; return w ?? [] }
            for waiter in waiters { waiter.resume() }
        })
    }

    /// Live console text from now on, in chunks as they arrive (not split into lines).
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

    /// Lines of the console, as an async sequence of complete lines.
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
