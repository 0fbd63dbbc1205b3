import ArgumentParser
import Foundation
import GuestKit
import Logging
import QEMULaunch

/// `run`'s options for kernel developers: gdb, crash captures, the kernel's log level,
/// their own modules.
struct KernelDebugOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Start QEMU's gdb stub on 127.0.0.1:PORT (default 1234) and print the gdb command to attach. The guest waits at its first instruction until gdb continues (see --gdb-wait); the boot and run timeouts count only while the guest runs. Adds nokaslr.",
        valueName: "port"))
    var gdb: Int?

    @Option(help: ArgumentHelp("With --gdb: yes = hold the vCPUs until the debugger continues; no = start them at once.", valueName: "yes|no"))
    var gdbWait: YesNo = .yes

    @Option(help: ArgumentHelp("Boot without quiet, with the kernel's loglevel=N: messages below level N reach the console log (a number 1-8, or emerg, alert, crit, err, warning, notice, info, debug: that level and the more severe ones; warning shows WARN splats).", valueName: "level"))
    var kernelLog: String?

    @Option(help: ArgumentHelp("Your own kernel module (.ko) for the guest: `modprobe NAME` (or insmod) loads it. Checked against the kernel's release before the boot. Repeatable.", valueName: "file"))
    var module: [String] = []

    @Option(help: ArgumentHelp("When to save the console log and a memory dump (ELF vmcore, for crash or gdb): on-panic (the guest is held at a kernel panic for it), always (also at the end of the command), or never.", valueName: "when"))
    var crashDump: CrashDumpWhen = .onPanic

    @Option(help: ArgumentHelp("Where crash captures go, one folder each (default: crashes/ in the VM's state folder, ~/.local/state/qemu-launch/NAME/crashes).", valueName: "dir"))
    var crashDir: String?

    enum YesNo: String, ExpressibleByArgument { case yes, no }
    enum CrashDumpWhen: String, ExpressibleByArgument {
        case onPanic = "on-panic", always, never
    }

    /// The kernel's levels by name: `loglevel=N` shows the levels below N.
    static let levelNames = ["emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7]

    /// The `loglevel=` value `--kernel-log` asks for.
    func logLevel() throws -> Int? {
        guard let kernelLog else { return nil }
        if let name = Self.levelNames[kernelLog.lowercased()] { return name + 1 }
        guard let number = Int(kernelLog), (1...8).contains(number) else {
            throw ValidationError("--kernel-log \(kernelLog): give a number 1-8 (loglevel=N) or a level name: emerg, alert, crit, err, warning, notice, info, debug")
        }
        return number
    }

    /// `--gdb` without a port (at the end, or before another option or `--`) becomes
    /// `--gdb 1234`: the argument parser has no options whose value is optional.
    static func givingBareGDBItsPort(_ arguments: [String]) -> [String] {
        var result: [String] = []
        for (index, argument) in arguments.enumerated() {
            if argument == "--" { return result + arguments[index...] }
            result.append(argument)
            if argument == "--gdb", index + 1 == arguments.count || arguments[index + 1].hasPrefix("-") || Int(arguments[index + 1]) == nil {
                result.append(String(GDBStub.defaultPort))
            }
        }
        return result
    }

    /// Sets `options` from the flags; `run` prints the gdb line (`announce`), `plan` only plans.
    func apply(to options: inout GuestKit.Options, profile: Profile, logger: Logger, announce: Bool = true) throws {
        options.kernelLogLevel = try logLevel()
        options.extraModules = module.map { URL(fileURLWithPath: absolutePath($0)) }
        if let port = gdb {
            guard (1...65535).contains(port) else { throw ValidationError("--gdb \(port): not a TCP port (1-65535)") }
            let stub = GDBStub(port: port, waitForDebugger: gdbWait == .yes)
            options.gdb = stub
            // The line to paste, whatever -q says: with the guest held, nothing happens without it.
            let symbols = GuestKit.symbolFile(options)
            var line = "launch: gdb: \(stub.attachCommand(symbols: symbols))"
            line += stub.waitForDebugger ? "   (the guest waits until gdb continues)" : ""
            if symbols == nil { line += "\n  (no vmlinux with symbols known: pass --kernel-tree DIR, or install the kernel's -dbg package)" }
            if announce { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        if crashDump != .never {
            options.crashCapture = CrashCapture(folder: crashDir.map(absolutePath))
            options.captureAtEnd = crashDump == .always
        }
    }
}
