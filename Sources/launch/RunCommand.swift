import ArgumentParser
import Foundation
import GuestKit
import LaunchSupport
import Logging
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a profile. With a command (the profile's, or one after --), run it in the guest and exit with its exit code.",
        discussion: """
            The command's stdout and stderr stream to this program's stdout and stderr; \
            stdin reaches the command. The kernel console goes to console.log in the \
            runtime dir (and to stderr with --verbose). Without a command, the serial \
            console is on this terminal (raw): what you type goes to the guest, Ctrl-C \
            included (to the program running there); \(EscapeKey.name) stops the VM \
            through the shutdown ladder, as SIGINT and SIGTERM to launch do (a second \
            signal skips to the ladder's next step, a third kills QEMU).
            """
    )

    @Argument(help: "The profile (a JSON file).")
    var profile: String

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp(
        "A shell command to run in the guest (sh -c), instead of one after --. Repeat it to run several in one boot, in order: each streams its output, stdin goes to them in turn, and the first that fails ends the run with its exit code.",
        valueName: "command"))
    var shell: [String] = []

    @OptionGroup var overrides: ProfileOverrides

    @Flag(help: "Keep the runtime dir (sockets, logs) after the VM ends, and print where it is.")
    var keepRuntimeDir = false

    @Flag(name: .shortAndLong, help: "Show the kernel console on stderr and debug logs.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Only warnings and errors from the launcher.")
    var quiet = false

    @OptionGroup(title: "Kernel development") var kernelDebug: KernelDebugOptions

    @Argument(parsing: .postTerminator, help: "The command to run in the guest (after --).")
    var command: [String] = []

    func validate() throws {
        if !shell.isEmpty && !command.isEmpty { throw ValidationError("give the command either after -- or with -c, not both") }
    }

    func run() async throws {
        let logger = makeLogger(verbose: verbose, quiet: quiet)
        var profile = try await overrides.loadProfile(self.profile)
        if !command.isEmpty { profile.command = command }
        if shell.count == 1 { profile.command = ["sh", "-c", shell[0]] }
        let interrupt = Interrupt()
        _ = SignalHandling(interrupt)

        var options = overrides.guestOptions(logger: logger, interrupt: interrupt, keepRuntimeDir: keepRuntimeDir)
        try kernelDebug.apply(to: &options, profile: profile, logger: logger)

        if shell.count > 1 || profile.command != nil {
            options.stdin = .fileDescriptor(STDIN_FILENO)
            options.stdout = .fileDescriptor(STDOUT_FILENO)
            options.stderr = .fileDescriptor(STDERR_FILENO)
            if verbose {
                options.console = .fileDescriptor(STDERR_FILENO)
                options.quietKernel = false
            }
            if shell.count > 1 {
                try await runInOneBoot(shell, profile: profile, options: options, logger: logger)
                return
            }
            let result: GuestKit.Result
            do {
                result = try await GuestKit.run(profile, options: options)
            } catch {
                throw fail(error)
            }
            logger.debug("command exited with \(result.exitCode) after \(formatDuration(result.duration))")
            if result.exitCode != 0 { throw ExitCode(result.exitCode) }
            return
        }

        // No command: the console is the user interface.
        let machine: Machine
        do {
            machine = try await GuestKit.startInteractive(profile, options: options)
        } catch {
            throw fail(error)
        }
        let pump = Task {
            for await chunk in machine.console.output() {
                FileHandle.standardOutput.write(Data(chunk.utf8))
            }
        }
        // A terminal: raw, so Ctrl-C reaches the guest's program; the escape key stops the VM.
        // Not a terminal (a pipe): nothing is forwarded, and SIGINT stops the VM.
        let terminal = RawTerminal()
        let console = machine.console
        if terminal != nil {
            _ = TerminalForwarder(send: { console.write($0) }, onEscape: {
                // Counted as a signal is: a second escape hurries the ladder, a third kills QEMU.
                if let said = SignalHandling.words(for: interrupt.trigger(), signal: SIGINT) {
                    FileHandle.standardError.write(Data((said + "\n").utf8))
                }
            })
        }
        let end = await race([
            { @Sendable () async -> VMEnd? in await machine.waitForEndUnlessCancelled() },
            { @Sendable () async -> VMEnd? in
                await interrupt.wait()
                return nil
            },
        ])
        let finalEnd: VMEnd
        var stopOutcome: ShutdownOutcome?
        if let end {
            finalEnd = end
        } else {
            // The terminal back to cooked first: during the ladder Ctrl-C is a signal again, so
            // a second one hurries it as it does everywhere else.
            terminal?.restore()
            FileHandle.standardError.write(Data("\nlaunch: stopping the VM (shutdown ladder)\n".utf8))
            let outcome = await machine.shutdown()
            stopOutcome = outcome
            logger.info("shutdown: \(outcome)")
            finalEnd = await machine.waitForEndThroughCancellation()
        }
        terminal?.restore()
        _ = await pump.result
        logger.info("VM ended: \(finalEnd)")
        switch finalEnd {
        case .poweredOff: return
        case .stopped(let step) where !step.isForced: return
        case .stopped(let step):
            let limit = machine.profile.timeouts.shutdown
            let why = stopOutcome?.hurried == true
                ? "a second interrupt cut the shutdown short"
                : "the guest did not power off within timeouts.shutdown (\(limit))"
            FileHandle.standardError.write(Data("launch: forced stop: \(why); it was killed at \(step), its disks may need recovery on the next boot\n".utf8))
            throw ExitCode(LaunchExit.forcedStop)
        case .reset:
            FileHandle.standardError.write(Data("launch: the guest rebooted; the VM ended (onReboot is exit); set \"onReboot\": \"reboot\" in the profile to let it reboot\n".utf8))
            throw ExitCode(LaunchExit.guestRebooted)
        case .panicked:
            let captures = machine.crashCaptures.map { "\n  crash capture: \($0)" }.joined()
            FileHandle.standardError.write(Data("launch: guest panic\(captures)\n".utf8))
            throw ExitCode(LaunchError.Code.guestPanic)
        case .timedOut:
            throw ExitCode(LaunchError.Code.timeout)
        default:
            throw ExitCode(LaunchError.Code.qemuFailed)
        }
    }
}

/// Runs each shell command in turn in one booted guest; the first that exits
/// non-zero ends the run with its code (later ones don't run).
func runInOneBoot(_ commands: [String], profile: Profile, options: GuestKit.Options, logger: Logger) async throws {
    var sessionOptions = options
    sessionOptions.concurrency = 1
    let failed: Int32? = try await withFailureMapping {
        try await GuestKit.withSession(profile, options: sessionOptions) { guest -> Int32? in
            for (index, command) in commands.enumerated() {
                let result = try await guest.run(shell: command, options: GuestKit.commandOptions(options))
                logger.debug("command \(index + 1) exited with \(result.exitCode) after \(formatDuration(result.duration))")
                if result.exitCode != 0 {
                    if index + 1 < commands.count {
                        logger.info("command \(index + 1) of \(commands.count) exited with \(result.exitCode); the rest were not run")
                    }
                    return result.exitCode
                }
            }
            return nil
        }
    }
    if let failed { throw ExitCode(failed) }
}

