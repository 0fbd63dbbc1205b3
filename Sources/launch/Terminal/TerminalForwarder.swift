import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// This terminal in raw mode, so every key reaches the guest's console and the guest's shell
/// does the line editing: no echo, no line buffering, no signals from Ctrl-C, Ctrl-Z or
/// Ctrl-\ (ISIG off: they go to the guest as bytes), no flow control from Ctrl-S/Ctrl-Q.
/// Output processing stays on, so the launcher's own `\n` messages still start a new line.
final class RawTerminal: Sendable {
    private let fd: Int32
    private let saved: termios

    /// Raw mode on `fd`; nil when it is not a terminal.
    init?(fd: Int32 = STDIN_FILENO) {
        guard isatty(fd) == 1 else { return nil }
        var attributes = termios()
        guard tcgetattr(fd, &attributes) == 0 else { return nil }
        self.fd = fd
        saved = attributes
        var raw = attributes
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(ICRNL | INLCR | IGNCR | IXON)
        // One byte at a time, as soon as it is typed.
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(fd, TCSANOW, &raw)
    }

    /// Puts the terminal back as it was.
    func restore() {
        var attributes = saved
        tcsetattr(fd, TCSANOW, &attributes)
    }
}

/// Forwards what is typed on stdin to a console (`send`), on a thread of its own, until
/// the escape key (``EscapeKey``), which calls `onEscape` instead, or until stdin ends.
/// Raw mode (``RawTerminal``) is the caller's choice; the escape key works either way.
final class TerminalForwarder: Sendable {
    /// Starts forwarding; nil when the thread can't be started.
    init?(send: @escaping @Sendable ([UInt8]) -> Void, onEscape: @escaping @Sendable () -> Void,
          onEnd: @escaping @Sendable () -> Void = {}) {
        let started = startDetachedThread(name: "terminal-input") {
            var buffer = [UInt8](repeating: 0, count: 1024)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    onEnd()
                    return
                }
                let (bytes, escaped) = EscapeKey.split(buffer[0..<n])
                if !bytes.isEmpty { send(Array(bytes)) }
                if escaped {
                    onEscape()
                    return
                }
            }
        }
        if !started { return nil }
    }
}
