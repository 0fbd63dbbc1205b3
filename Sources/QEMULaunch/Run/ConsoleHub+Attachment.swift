import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

extension ConsoleHub {
    /// One client's connection to a ``ConsoleHub``, from any process: read ``fd`` for the
    /// live console bytes, write to it to type into the guest's serial console, and take
    /// the scroll-back (what came before you connected) from ``scrollBack(lastLines:)``.
    public final class Attachment: Sendable {
        /// The connected socket: live console bytes to read, keystrokes to write.
        public let fd: Int32
        /// What the hub said first: the log and where the live bytes begin in it.
        public let greeting: Greeting

        private init(fd: Int32, greeting: Greeting) {
            self.fd = fd
            self.greeting = greeting
        }

        /// Connects to the hub at `socketPath` and reads its greeting (within `timeout`).
        /// Throws `.hostProblem` when nothing serves there: no socket (the VM is not running)
        /// or a socket nobody answers on (the process that served it is gone).
        public static func connect(socketPath: String, timeout: Duration = .seconds(10)) throws(LaunchError) -> Attachment {
            let fd: Int32
            switch POSIX.connectedSocket(path: socketPath, timeout: timeout) {
            case .success(let connected): fd = connected
            case .failure(let error):
                throw LaunchError.notServed(socketPath, what: "console", error: error)
            }
            var limit = timeval(timeout)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            // Byte by byte up to the newline: what follows it is live console output.
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while line.count < 65536 {
                let n = Glibc.read(fd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 || byte == UInt8(ascii: "\n") { break }
                line.append(byte)
            }
            var none = timeval()
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
            guard let greeting = try? JSONDecoder().decode(Greeting.self, from: Data(line)) else {
                POSIX.closeFD(fd)
                throw LaunchError(.hostProblem, "\(socketPath) did not answer as a console hub (no greeting within \(timeout))",
                                  fix: "check that the path is a VM's console.sock")
            }
            return Attachment(fd: fd, greeting: greeting)
        }

        /// The console's last `lastLines` lines before this attachment's live bytes began,
        /// read from the log (empty when the log is gone), without the terminal queries in
        /// them (see `ConsoleHub.withoutTerminalQueries(_:)`, package API).
        public func scrollBack(lastLines: Int) -> [UInt8] {
            guard lastLines > 0, let handle = FileHandle(forReadingAtPath: greeting.log) else { return [] }
            defer { try? handle.close() }
            // The last 256 KiB before the offset hold the lines anyone scrolls back through.
            let window: UInt64 = 256 << 10
            let start = greeting.logOffset > window ? greeting.logOffset - window : 0
            guard (try? handle.seek(toOffset: start)) != nil,
                  let data = try? handle.read(upToCount: Int(greeting.logOffset - start)) else { return [] }
            return ConsoleHub.withoutTerminalQueries(ConsoleHub.lastLines(Array(data), count: lastLines))
        }

        /// Closes the connection; the VM and the other clients go on.
        public func close() {
            POSIX.closeFD(fd)
        }
    }

    /// `bytes` without the cursor-position query ESC [ 6 n. Busybox's shell sends it at every
    /// prompt (to find the cursor's column): shown again from the log, the user's terminal
    /// would answer a question nobody asked, typing ESC [ row ; col R into the guest's shell.
    package static func withoutTerminalQueries(_ bytes: [UInt8]) -> [UInt8] {
        let query: [UInt8] = [0x1b, UInt8(ascii: "["), UInt8(ascii: "6"), UInt8(ascii: "n")]
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x1b, bytes[index...].starts(with: query) {
                index += query.count
                continue
            }
            kept.append(bytes[index])
            index += 1
        }
        return kept
    }

    /// The last `count` lines of `bytes` (a trailing partial line counts as one), bytes as they are.
    package static func lastLines(_ bytes: [UInt8], count: Int) -> [UInt8] {
        guard count > 0, !bytes.isEmpty else { return [] }
        var seen = 0
        var index = bytes.count - 1
        if bytes[index] == UInt8(ascii: "\n") { index -= 1 }
        while index >= 0 {
            if bytes[index] == UInt8(ascii: "\n") {
                seen += 1
                if seen == count { return Array(bytes[(index + 1)...]) }
            }
            index -= 1
        }
        return bytes
    }
}

extension LaunchError {
    /// Nothing serves `what` (the console hub, the exec server) at `path`: why, from the
    /// errno of the connect.
    package static func notServed(_ path: String, what: String, error: POSIX.Errno) -> LaunchError {
        switch error.code {
        case ENOENT:
            return LaunchError(.hostProblem, "nothing serves the VM's \(what) at \(path): the VM is not running (no such socket)",
                               fix: "launch list shows the VMs that run; launch up PROFILE starts one")
        case ECONNREFUSED:
            return LaunchError(.hostProblem, "nothing answers on \(path): the VM's supervisor is gone (a stale socket)",
                               fix: "launch list shows what happened to it; launch down NAME cleans up, launch up PROFILE starts it again")
        case ENAMETOOLONG:
            return LaunchError(.hostProblem, "the socket path \(path) is longer than the \(POSIX.unixPathLimit) bytes a Unix socket path holds",
                               fix: "use a shorter XDG_RUNTIME_DIR (or folder)")
        default:
            return LaunchError(.hostProblem, "cannot connect to the VM's \(what) at \(path): \(error.text)")
        }
    }
}
