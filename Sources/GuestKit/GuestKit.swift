import Foundation
import Logging
import QEMULaunch

/// Makes a guest able to run a command: builds the initramfs (static busybox,
/// the modules this kernel needs, a tiny init), boots it, runs the command over
/// the exec protocol and returns its output and exit code.
public enum GuestKit {}

extension GuestKit {
    public struct Options: Sendable {
        /// The command to run; nil = the profile's `command` (and if that is nil
        /// too, an interactive shell on the serial console).
        public var command: [String]?
        public var stdin: GuestInput = .none
        public var stdout: GuestOutput = .capture
        public var stderr: GuestOutput = .capture
        /// Boot an extracted PVH vmlinux instead of a bzImage under TCG.
        public var fastBoot = true
        /// `/lib/modules/<release>` of the guest kernel; nil = derived from the kernel.
        public var modulesDirectory: URL?
        /// The static busybox for the guest; nil = /bin/busybox (busybox-static).
        public var busybox: String?
        /// Working directory for the command inside the guest.
        public var workingDirectory: String?
        public var keepRuntimeDir = false
        /// The serial console (kernel messages) as it arrives, besides console.log; nil = log only.
        public var console: GuestOutput?
        /// Boot commands with `quiet` (fewer kernel messages on the emulated UART: faster).
        public var quietKernel = true
        /// When it fires (Ctrl-C), the VM is stopped through the shutdown ladder.
        public var interrupt: Interrupt?
        /// Host facts to plan with; nil probes this host.
        public var host: HostFacts?
        /// The folder holding every VM's state folder; nil = `VMStateFolder.defaultRoot`.
        public var stateRoot: String?
        public var logger = Logger(label: "launch")
        public init() {}
    }

    /// What a command in the guest did.
    public struct Result: Sendable {
        public var exitCode: Int32
        public var stdout: Data
        public var stderr: Data
        /// The last lines of the serial console (kernel messages).
        public var consoleTail: [String]
        /// From the launch call to the VM's end.
        public var duration: Duration
        public var shutdown: ShutdownOutcome?

        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Boots `profile`, runs the command in the guest and returns its result.
    ///
    /// Throws `LaunchError` with code `.guestPanic` (exit 125) when the guest
    /// panics, `.timeout` (124) when `timeouts.run` passes, and the start errors
    /// of `Machine.start`.
    public static func run(_ profile: Profile, options: Options = Options()) async throws(LaunchError) -> Result {
        let started = ContinuousClock.now
        var profile = profile
        if let command = options.command { profile.command = command }
        guard let command = profile.command, !command.isEmpty else {
            throw LaunchError(.invalidProfile, "no command to run", fix: "set \"command\" in the profile or pass one after --")
        }
        let (machine, session) = try await start(profile, options: options)
        return try await finish(machine: machine, session: session!, command: command, started: started, options: options)
    }

    /// Prepares the guest kit's boot files and starts the VM (vCPUs running).
    /// With a command, the returned session runs it; without, a shell runs on the console.
    static func start(_ profile: Profile, options: Options) async throws(LaunchError) -> (Machine, ExecSession?) {
        let prepared = try await prepare(profile, options: options)
        var machineOptions = Machine.Options()
        machineOptions.host = prepared.host
        machineOptions.keepRuntimeDir = options.keepRuntimeDir
        machineOptions.kernelEntry = prepared.kernelEntry
        machineOptions.kernelArguments = prepared.kernelArguments
        machineOptions.execPorts = prepared.profile.command != nil
        machineOptions.stateRoot = options.stateRoot
        machineOptions.logger = options.logger
        let machine = try await Machine.start(prepared.profile, options: machineOptions)
        if let sink = options.console {
            // Subscribed before `cont`: the vCPUs are still stopped, so nothing is missed.
            let chunks = machine.console.output()
            Task {
                for await chunk in chunks {
                    let data = Data(chunk.utf8)
                    switch sink {
                    case .capture: break
                    case .fileDescriptor(let fd): writeAll(fd, Array(data))
                    case .handler(let handle): handle(data)
                    }
                }
            }
        }
        var session: ExecSession?
        if prepared.profile.command != nil {
            let ports = ExecPorts.all.map { machine.takePort($0)! }
            session = ExecSession(statusFd: ports[3], stdinFd: ports[0], stdoutFd: ports[1], stderrFd: ports[2],
                                  input: options.stdin, stdout: options.stdout, stderr: options.stderr)
            session!.sendSetup(prepared.setupScript)
        }
        do {
            try await machine.resume()
        } catch {
            await machine.shutdown(skipACPI: true)
            throw error
        }
        return (machine, session)
    }

    /// Starts the profile for interactive use: a shell on the serial console when
    /// there is no command. Returns the running machine.
    public static func startInteractive(_ profile: Profile, options: Options = Options()) async throws(LaunchError) -> Machine {
        var profile = profile
        profile.command = nil
        return try await start(profile, options: options).0
    }

    static func finish(machine: Machine, session: ExecSession, command: [String], started: ContinuousClock.Instant,
                       options: Options) async throws(LaunchError) -> Result {
        let logger = options.logger
        let runLimit = machine.profile.timeouts.run?.duration
        enum Outcome: Sendable { case status(ExecSession.StatusLine?), ended(VMEnd), timedOut, interrupted }
        var racers: [@Sendable () async -> Outcome] = [
            { .status(await session.nextStatus()) },
            { .ended(await machine.waitForEnd()) },
        ]
        if let runLimit {
            racers.append {
                try? await Task.sleep(for: runLimit)
                return .timedOut
            }
        }
        if let interrupt = options.interrupt {
            racers.append {
                await interrupt.wait()
                return .interrupted
            }
        }
        let outcome = await firstOf(racers)
        func consoleDetails() -> [String] {
            ["  last console lines:"] + machine.console.tail.lines(last: 25).map { "    \($0)" }
        }
        switch outcome {
        case .timedOut:
            let shutdown = await machine.shutdown(stepTimeout: .seconds(2), skipACPI: true)
            throw LaunchError(.timeout, "the command \(QEMUSyntax.shellLine(command)) ran past timeouts.run (\(machine.profile.timeouts.run!)); the VM was stopped (\(shutdown.step))",
                              fix: "raise timeouts.run in the profile, or find out why the command hangs",
                              details: consoleDetails())
        case .interrupted:
            logger.info("interrupted: stopping the VM")
            let shutdown = await machine.shutdown()
            throw LaunchError(.interrupted, "interrupted; the VM was stopped (\(shutdown.step))")
        case .ended(let end):
            throw endedEarly(end, command: command, details: consoleDetails())
        case .status(nil):
            throw endedEarly(await machine.waitForEnd(), command: command, details: consoleDetails())
        case .status(.error(let message)):
            await machine.shutdown(guestGrace: .seconds(3), stepTimeout: .seconds(2), skipACPI: true)
            throw LaunchError(.internalError, "the guest could not set up the command: \(message)", details: consoleDetails())
        case .status(.stopped(let report)):
            // Someone else pressed the power button (another QMP client, a host shutting down):
            // the init stopped the command, so its exit code says nothing about the command.
            _ = await session.drain(stdoutBytes: report.stdoutBytes, stderrBytes: report.stderrBytes, timeout: .seconds(5))
            let shutdown = await machine.shutdown(guestGrace: machine.profile.timeouts.shutdown.duration,
                                                  stepTimeout: .seconds(2), skipACPI: true)
            throw LaunchError(.interrupted, "the guest's power button was pressed (an ACPI power-off from outside this run, such as QMP system_powerdown on qmp.sock) while \(QEMUSyntax.shellLine(command)) ran; the guest stopped it (exit \(report.exitCode)) and powered off (\(shutdown.step))")
        case .status(.exit(let report)):
            if !(await session.drain(stdoutBytes: report.stdoutBytes, stderrBytes: report.stderrBytes, timeout: .seconds(30))) {
                logger.error("output incomplete: stdout \(session.stdoutCount)/\(report.stdoutBytes) bytes, stderr \(session.stderrCount)/\(report.stderrBytes) bytes")
            }
            // The init powers off right after reporting; the ladder covers a guest that doesn't.
            let shutdown = await machine.shutdown(guestGrace: machine.profile.timeouts.shutdown.duration,
                                                  stepTimeout: .seconds(2), skipACPI: true)
            if case .panicked = machine.end {
                throw endedEarly(.panicked, command: command, details: consoleDetails())
            }
            return Result(exitCode: report.exitCode, stdout: session.capturedStdout, stderr: session.capturedStderr,
                          consoleTail: machine.console.tail.lines(last: 50), duration: started.duration(to: .now),
                          shutdown: shutdown)
        }
    }

    static func endedEarly(_ end: VMEnd, command: [String], details: [String]) -> LaunchError {
        if case .panicked = end {
            return LaunchError(.guestPanic, "the guest kernel panicked while running \(QEMUSyntax.shellLine(command))", details: details)
        }
        return LaunchError(.qemuFailed, "the VM ended before the command reported its exit status: \(end)", details: details)
    }
}
