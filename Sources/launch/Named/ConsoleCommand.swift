import ArgumentParser
import Foundation
import GuestKit
import LaunchSupport
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Attach this terminal to a running VM's serial console.",
        discussion: """
            Shows the console's last lines from console.log first, then the live console. \
            What you type goes to the guest, Ctrl-C included (to the program running there). \
            \(EscapeKey.name) detaches and leaves the VM running. Several terminals can be \
            attached at once: all of them read along, and any of them can type.
            """
    )

    @Argument(help: "The VM's name (as `launch list` shows it).")
    var name: String

    @Option(help: "How many lines of scroll-back to show from console.log before the live console.")
    var lines = 40

    func validate() throws {
        if !RecordPath.isValidName(name) { throw ValidationError("\"\(name)\" is not a VM name: use 1-64 letters, digits, '.', '_' or '-'") }
        if lines < 0 { throw ValidationError("--lines must be 0 or more") }
    }

    func run() throws {
        let socket = RecordPath.folder(for: name) + "/console.sock"
        let attachment: ConsoleHub.Attachment
        do {
            attachment = try ConsoleHub.Attachment.connect(socketPath: socket)
        } catch {
            var error = error
            error.message = "VM \(name): \(error.message)"
            throw fail(error)
        }
        defer { attachment.close() }
        // Raw before anything is shown: keys typed as soon as the console appears must
        // already go to the guest as bytes (Ctrl-C included), not to this terminal's driver.
        let terminal = RawTerminal()
        let scrollBack = attachment.scrollBack(lastLines: lines)
        writeAll(STDOUT_FILENO, scrollBack)
        if let last = scrollBack.last, last != UInt8(ascii: "\n") { writeAll(STDOUT_FILENO, Array("\r\n".utf8)) }
        message("attached to \(name)'s console; \(EscapeKey.name) detaches (the VM keeps running)")

        let detached = Atomic<Bool>(false)
        let fd = attachment.fd
        // SIGTERM or a closed terminal while attached: put the terminal back before leaving.
        let signals = [SIGTERM, SIGHUP].map { (sig: Int32) -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                terminal?.restore()
                Glibc.exit(128 + sig)
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        _ = TerminalForwarder(send: { writeAll(fd, $0) }, onEscape: {
            detached.store(true, ordering: .sequentiallyConsistent)
            // Wakes the reading loop below: it sees EOF.
            shutdown(fd, Int32(SHUT_RDWR))
        })

        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if !writeAll(STDOUT_FILENO, Array(buffer[0..<n])) { break }
        }
        terminal?.restore()
        if detached.load(ordering: .sequentiallyConsistent) {
            message("detached from \(name)'s console; the VM keeps running")
        } else {
            message("\(name)'s console closed: the VM has ended (launch list shows how)")
        }
    }

    /// A launcher message on stderr, on a line of its own even in raw mode.
    private func message(_ text: String) {
        writeAll(STDERR_FILENO, Array("\r\nlaunch: \(text)\r\n".utf8))
    }
}
