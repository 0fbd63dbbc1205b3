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
    /// Read from this fd until EOF (a pipe, a file or a terminal); not closed.
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

/// The host side of the exec protocol (see `GuestInit`): sends the setup script,
/// pumps stdin, stdout and stderr, and reads the exit report.
final class ExecSession: Sendable {
    struct Report: Sendable {
        var exitCode: Int32
        var stdoutBytes: Int
        var stderrBytes: Int
    }

    enum StatusLine: Sendable {
        case exit(Report)
        /// The guest's power button was pressed while the command ran: the init stopped
        /// it (SIGTERM), so its exit code is not its own, and the guest is powering off.
        case stopped(Report)
        case error(String)
    }

    private let stdoutPump: OutputPump
    private let stderrPump: OutputPump
    private let status: Mutex<(lines: [StatusLine], waiters: [CheckedContinuation<StatusLine?, Never>], closed: Bool)>
    private let statusFd: Int32

    init(statusFd: Int32, stdinFd: Int32, stdoutFd: Int32, stderrFd: Int32,
         input: GuestInput, stdout: GuestOutput, stderr: GuestOutput) {
        self.statusFd = statusFd
        stdoutPump = OutputPump(fd: stdoutFd, output: stdout, name: "stdout")
        stderrPump = OutputPump(fd: stderrFd, output: stderr, name: "stderr")
        status = Mutex(([], [], false))
        Self.startInput(input, port: stdinFd)
        let thread = Thread { [self] in
            nameThisThread("guest-status")
            readStatus()
        }
        thread.name = "guest-status"
        thread.start()
    }

    /// Sends the setup script: its length on a line, then the script.
    func sendSetup(_ script: String) {
        let body = Array(script.utf8)
        writeAll(statusFd, Array("\(body.count)\n".utf8) + body)
    }

    /// The next status line, or nil once the port closed (QEMU ended).
    func nextStatus() async -> StatusLine? {
        await withCheckedContinuation { continuation in
            let ready: (StatusLine?, Bool) = status.withLock { s in
                if !s.lines.isEmpty { return (s.lines.removeFirst(), true) }
                if s.closed { return (nil, true) }
                s.waiters.append(continuation)
                return (nil, false)
            }
            if ready.1 { continuation.resume(returning: ready.0) }
        }
    }

    /// Waits until both streams delivered the byte counts the guest reported.
    func drain(stdoutBytes: Int, stderrBytes: Int, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if stdoutPump.count >= stdoutBytes && stderrPump.count >= stderrBytes { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    var capturedStdout: Data { stdoutPump.captured }
    var capturedStderr: Data { stderrPump.captured }
    var stdoutCount: Int { stdoutPump.count }
    var stderrCount: Int { stderrPump.count }

    private func readStatus() {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(statusFd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            while let newline = pending.firstIndex(of: 0x0a) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                if let parsed = Self.parse(line) { deliver(parsed) }
            }
        }
        let waiters = status.withLock { s in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    private func deliver(_ line: StatusLine) {
        let waiter: CheckedContinuation<StatusLine?, Never>? = status.withLock { s in
            if s.waiters.isEmpty {
                s.lines.append(line)
                return nil
            }
            return s.waiters.removeFirst()
        }
        waiter?.resume(returning: line)
    }

    static func parse(_ line: String) -> StatusLine? {
        let words = line.split(separator: " ")
        if words.first == "exit" || words.first == "stopped", words.count == 4,
           let code = Int32(words[1]), let out = Int(words[2]), let err = Int(words[3]) {
            let report = Report(exitCode: code, stdoutBytes: out, stderrBytes: err)
            return words.first == "exit" ? .exit(report) : .stopped(report)
        }
        if words.first == "error" { return .error(String(line.dropFirst(6))) }
        return nil
    }

    private static func startInput(_ input: GuestInput, port: Int32) {
        switch input {
        case .none:
            // The guest reads EOF once QEMU sees this side hang up.
            Glibc.shutdown(port, Int32(SHUT_WR))
        case .bytes(let data):
            let thread = Thread {
                nameThisThread("guest-stdin")
                writeAll(port, Array(data))
                Glibc.shutdown(port, Int32(SHUT_WR))
            }
            thread.name = "guest-stdin"
            thread.start()
        case .fileDescriptor(let source):
            let thread = Thread {
                nameThisThread("guest-stdin")
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    if !writeAll(port, Array(buffer[0..<n])) { break }
                }
                Glibc.shutdown(port, Int32(SHUT_WR))
            }
            thread.name = "guest-stdin"
            thread.start()
        }
    }
}

/// Reads one output port until QEMU closes it, counting bytes.
final class OutputPump: Sendable {
    private let state = Mutex<(count: Int, captured: Data)>((0, Data()))

    init(fd: Int32, output: GuestOutput, name: String) {
        let thread = Thread { [self] in
            nameThisThread("guest-\(name)")
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                switch output {
                case .capture:
                    state.withLock { s in
                        s.captured.append(contentsOf: buffer[0..<n])
                        s.count += n
                    }
                case .fileDescriptor(let sink):
                    writeAll(sink, Array(buffer[0..<n]))
                    state.withLock { $0.count += n }
                case .handler(let handle):
                    handle(Data(buffer[0..<n]))
                    state.withLock { $0.count += n }
                }
            }
            close(fd)
        }
        thread.name = "guest-\(name)"
        thread.start()
    }

    var count: Int { state.withLock { $0.count } }
    var captured: Data { state.withLock { $0.captured } }
}

@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
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
