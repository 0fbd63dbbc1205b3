import QEMULaunch

/// The wire format between the host and the guest kit's init (see `GuestInit`),
/// over virtio-serial ports. Pure: builds and parses messages, nothing else.
///
/// Ports: `launch.ctl` carries requests and reports, one line each; slot `N` (one
/// per command that may run at once) has `launch.N.in`, `launch.N.out` and
/// `launch.N.err` for the command's streams.
///
/// Host to guest on `launch.ctl`:
/// - first, once: `LEN\n` and a LEN-byte shell snippet (modules to load, shares to mount);
/// - `run SLOT LEN\n` and a LEN-byte snippet (working directory, environment,
///   `stdin_mode`, `set -- ARGV`);
/// - `signal SLOT SIG\n`: signal the command's process group;
/// - `poweroff\n`.
///
/// With `launch.park=1` (warm start) the init says `parked` after the first snippet and
/// reads a second `LEN\n` + snippet (the wall clock, a random seed, the run's identity, the
/// share mounts) before it says `ready`: the host saves the guest while it waits there.
///
/// Guest to host on `launch.ctl`: `parked`; `ready`; `exit SLOT RC OUT_BYTES ERR_BYTES`;
/// `stopped SLOT RC OUT_BYTES ERR_BYTES` (the power button stopped it); `error SLOT
/// MESSAGE` (`-` as the slot for the boot setup).
///
/// stdin, when the command has one, is framed on `launch.N.in`: `LEN\n` and LEN
/// bytes, repeated, then `0\n`: the port stays open across commands, so its end
/// can't be a hang-up.
enum SessionProtocol {
    static let control = "launch.ctl"

    /// The most commands one guest runs at once: virtio-serial has 30 ports beside
    /// the console, and each slot takes three.
    static let maxSlots = 8

    struct SlotPorts: Sendable, Hashable {
        var input: String
        var output: String
        var error: String
    }

    static func slotPorts(_ slot: Int) -> SlotPorts {
        SlotPorts(input: "launch.\(slot).in", output: "launch.\(slot).out", error: "launch.\(slot).err")
    }

    /// Every port a session of `slots` slots needs, in plan order.
    static func portNames(slots: Int) -> [String] {
        [control] + (0..<slots).flatMap { slot -> [String] in
            let ports = slotPorts(slot)
            return [ports.input, ports.output, ports.error]
        }
    }

    /// The kernel argument that makes the init serve a session.
    static func kernelArgument(slots: Int) -> String { "launch.session=\(slots)" }

    /// The kernel argument that makes the init park before its shares are mounted (warm start).
    static let parkArgument = "launch.park=1"
    /// With a session: a shell on the serial console as well, restarted when it exits, for a
    /// person attached to the console (`launch console` of a VM `launch up` started).
    static let consoleShellArgument = "launch.console_shell=1"

    /// A command's report: its exit code and how many bytes it wrote to each stream.
    struct Report: Sendable, Hashable {
        var exitCode: Int32
        var stdoutBytes: Int
        var stderrBytes: Int
    }

    enum GuestMessage: Sendable, Hashable {
        /// Booted, modules loaded, nothing mounted: waiting for the run's own snippet (warm start).
        case parked
        case ready
        case exit(slot: Int, Report)
        /// The power button was pressed while the command ran: the init stopped it
        /// (SIGTERM), so its exit code is not its own, and the guest is powering off.
        case stopped(slot: Int, Report)
        /// Setting up the boot (slot nil) or a command failed.
        case error(slot: Int?, String)
    }

    static func parse(_ line: String) -> GuestMessage? {
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let verb = words.first else { return nil }
        switch verb {
        case "ready" where words.count == 1:
            return .ready
        case "parked" where words.count == 1:
            return .parked
        case "exit", "stopped":
            guard words.count == 5, let slot = Int(words[1]), let code = Int32(words[2]),
                  let out = Int(words[3]), let err = Int(words[4]) else { return nil }
            let report = Report(exitCode: code, stdoutBytes: out, stderrBytes: err)
            return verb == "exit" ? .exit(slot: slot, report) : .stopped(slot: slot, report)
        case "error" where words.count >= 2:
            let message = words.dropFirst(2).joined(separator: " ")
            return .error(slot: Int(words[1]), message)
        default:
            return nil
        }
    }

    static func setupMessage(_ script: String) -> [UInt8] {
        let body = Array(script.utf8)
        return Array("\(body.count)\n".utf8) + body
    }

    static func runMessage(slot: Int, script: String) -> [UInt8] {
        let body = Array(script.utf8)
        return Array("run \(slot) \(body.count)\n".utf8) + body
    }

    static func signalMessage(slot: Int, signal: String) -> [UInt8] { Array("signal \(slot) \(signal)\n".utf8) }

    static let poweroffMessage = Array("poweroff\n".utf8)

    /// The snippet `run_slot` evaluates before running a command: its working
    /// directory, environment, where its stdin comes from, and its argv.
    static func commandScript(_ argv: [String], workingDirectory: String?, environment: [String: String],
                              framedStdin: Bool) -> String {
        let q = QEMUSyntax.shellQuote
        var lines: [String] = []
        // run_slot changes to it after its stdin reader is up, so a failing cd still
        // consumes the stdin frames the host sends.
        if let dir = workingDirectory { lines.append("workdir=\(q(dir))") }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
            lines.append("export \(q("\(key)=\(value)"))")
        }
        if framedStdin { lines.append("stdin_mode=port") }
        lines.append("set -- " + argv.map(q).joined(separator: " "))
        return lines.joined(separator: "\n") + "\n"
    }

    /// One frame of stdin.
    static func stdinFrame(_ bytes: some Collection<UInt8>) -> [UInt8] { Array("\(bytes.count)\n".utf8) + bytes }

    static let stdinEnd = Array("0\n".utf8)

    /// A name the guest can export: letters, digits and `_`, not starting with a digit.
    static func isValidEnvironmentName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }
}
