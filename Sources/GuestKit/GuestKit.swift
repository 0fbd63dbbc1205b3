import Foundation
import Logging
import QEMULaunch

/// Makes a guest able to run commands: builds the initramfs (static busybox,
/// the modules this kernel needs, a tiny init), boots it, runs commands over
/// the session protocol and returns their output and exit codes.
public enum GuestKit {}

extension GuestKit {
    /// A command's time limit when neither the caller nor the profile's
    /// `timeouts.run` sets one: a hung guest command never hangs a test run forever.
    public static let defaultCommandTimeout: Duration = .seconds(600)

    /// How to boot the guest kit and run commands: streams of the one command of
    /// ``run(_:options:)``, the kernel's modules and busybox, logging, cancellation.
    public struct Options: Sendable {
        /// The command to run; nil = the profile's `command` (and if that is nil
        /// too, an interactive shell on the serial console).
        public var command: [String]?
        /// The command's stdin (``run(_:options:)``).
        public var stdin: GuestInput = .none
        /// The command's stdout (``run(_:options:)``).
        public var stdout: GuestOutput = .capture
        /// The command's stderr (``run(_:options:)``).
        public var stderr: GuestOutput = .capture
        /// Added to the command's environment.
        public var environment: [String: String] = [:]
        /// Working directory for the command inside the guest.
        public var workingDirectory: String?
        /// The command's time limit (``run(_:options:)``); sessions set it per command.
        public var timeout: GuestSession.CommandTimeout = .fromProfile
        /// How many commands a session runs at once (``withSession(_:options:_:)``);
        /// each takes three virtio-serial ports. ``run(_:options:)`` uses one.
        public var concurrency = 4
        /// Boot an extracted PVH vmlinux instead of a bzImage under TCG.
        public var fastBoot = true
        /// `/lib/modules/<release>` of the guest kernel; nil = derived from the kernel.
        public var modulesDirectory: URL?
        /// The static busybox for the guest; nil = /bin/busybox (busybox-static).
        public var busybox: String?
        /// Keep the runtime dir (sockets, console.log, qemu.log) after the VM ends.
        public var keepRuntimeDir = false
        /// A fixed runtime dir (`Machine.Options.runtimeDirectory`): a named VM's record folder.
        public var runtimeDirectory: String?
        /// The serial console (kernel messages) as it arrives, besides console.log; nil = log only.
        public var console: GuestOutput?
        /// Boot with `quiet` (fewer kernel messages on the emulated UART: faster).
        public var quietKernel = true
        /// The kernel's console log level: boot without `quiet`, with `loglevel=N` (messages
        /// below level N reach the console: 5 shows warnings and WARN splats, 8 everything).
        /// nil = `quietKernel` decides.
        public var kernelLogLevel: Int?
        /// A kernel build tree (where `make` ran): its built modules are installed into the
        /// cache and every one is put in the guest for `modprobe`; its `vmlinux` is the
        /// symbol file for gdb and crash dumps.
        public var kernelTree: URL?
        /// Your own out-of-tree modules (`.ko`), in the guest as
        /// `/lib/modules/<release>/extra/NAME.ko` for `modprobe NAME`. Each must be built for
        /// this kernel: a vermagic from another release fails before the boot.
        public var extraModules: [URL] = []
        /// QEMU's gdb stub; with `waitForDebugger` the guest runs only once gdb continues,
        /// and the boot and command deadlines count from then (guest running time).
        public var gdb: GDBStub?
        /// Save the console log and a memory dump when the guest kernel panics; nil = off.
        public var crashCapture: CrashCapture?
        /// Also capture at the end of ``run(_:options:)`` and ``withSession(_:options:_:)``
        /// when the guest did not panic (needs `crashCapture`).
        public var captureAtEnd = false
        /// When it fires (the CLI's Ctrl-C), the VM is stopped through the shutdown ladder.
        /// Library callers cancel the task instead.
        package var interrupt: Interrupt?
        /// Host facts to plan with; nil probes this host.
        public var host: HostFacts?
        /// The folder holding every VM's state folder; nil = `$XDG_STATE_HOME/qemu-launch`
        /// (default `~/.local/state/qemu-launch`).
        public var stateRoot: String?
        /// Warm start: restore a saved, booted guest instead of booting (`auto`), boot and
        /// save a new one (`refresh`), or always boot (`off`); nil = the profile's `snapshot`.
        /// A profile that can't warm-start says why in one line and boots.
        public var snapshot: SnapshotMode?
        /// With a session (``GuestKit/withSession(_:options:_:)``): a shell on the serial
        /// console too, beside the session's commands and restarted when it exits, so a
        /// person attached to the console has a prompt (`launch up` sets it). Off: the
        /// console shows the kernel's and the init's lines only.
        public var consoleShell = false
        /// What the launch logs: choices at info, phases at debug. The default shows
        /// warnings and errors only.
        public var logger = Logger.quietByDefault
        /// The defaults: capture stdout and stderr, the profile's time limits, fast boot on.
        public init() {}
    }

    /// What a command in the guest did, with how its VM ended.
    public struct Result: Sendable {
        /// The command's exit status.
        public var exitCode: Int32
        /// Its stdout, when captured.
        public var stdout: Data
        /// Its stderr, when captured.
        public var stderr: Data
        /// The last lines of the serial console (kernel messages).
        public var consoleTail: [String]
        /// From the launch call to the VM's end.
        public var duration: Duration
        /// How the VM was stopped afterwards (normally `guest-poweroff`).
        public var shutdown: ShutdownOutcome?

        /// The captured stdout as UTF-8 text.
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        /// The captured stderr as UTF-8 text.
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Boots `profile`, runs one command in the guest, ends the VM and returns the
    /// command's result. The command is `options.command`, else the profile's.
    ///
    /// Throws `LaunchError` with code `.guestPanic` when the guest panics,
    /// `.timeout` when the boot or the command runs past its deadline,
    /// `.cancelled` when the calling task is cancelled (the VM is stopped first), and
    /// the start errors of `Machine.start`. Nothing it started outlives it.
    public static func run(_ profile: Profile, options: Options = Options()) async throws(LaunchError) -> Result {
        let started = ContinuousClock.now
        guard let command = options.command ?? profile.command, !command.isEmpty else {
            throw LaunchError(.invalidProfile, "no command to run", fix: "set \"command\" in the profile or pass one after --")
        }
        var sessionOptions = options
        sessionOptions.concurrency = 1
        let session = try await startSession(profile, options: sessionOptions)
        let result: GuestSession.CommandResult
        do {
            result = try await session.run(command, options: commandOptions(options))
        } catch {
            await session.end(grace: error.code == .interrupted ? nil : .seconds(2))
            throw error
        }
        if options.captureAtEnd, options.crashCapture != nil {
            let report = await session.machine.captureCrashState(reason: "end of the run")
            options.logger.info("crash capture: \(report)")
        }
        let shutdown = await session.end()
        if case .panicked = session.machine.end {
            throw endedEarly(.panicked, while: "\(QEMUSyntax.shellLine(command)) ran", details: consoleDetails(session.machine))
        }
        return Result(exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr,
                      consoleTail: session.machine.console.tail.lines(last: 50), duration: started.duration(to: .now),
                      shutdown: shutdown)
    }

    /// Boots `profile`, hands the running guest to `body` as a ``GuestSession`` for
    /// as many commands as it likes, and powers the guest off when `body` returns or
    /// throws, or the task is cancelled. QEMU, virtiofsd, fds, threads and the
    /// runtime dir are gone when it returns. A cancelled call throws `LaunchError`
    /// with code `.cancelled`, never a result.
    ///
    /// ```swift
    /// let release = try await GuestKit.withSession(profile) { guest in
    ///     try await guest.run(["uname", "-r"]).stdoutText
    /// }
    /// ```
    public static func withSession<R: Sendable>(
        _ profile: Profile, options: Options = Options(),
        _ body: (GuestSession) async throws -> R
    ) async throws -> R {
        let session = try await startSession(profile, options: options)
        let result: Swift.Result<R, any Error>
        do {
            result = .success(try await body(session))
        } catch {
            result = .failure(error)
        }
        if options.captureAtEnd, options.crashCapture != nil, session.machine.end == nil {
            let report = await session.machine.captureCrashState(reason: "end of the run")
            options.logger.info("crash capture: \(report)")
        }
        await session.end()
        if Task.isCancelled { throw LaunchError.cancelled("the session on \(profile.name); the VM was stopped") }
        if case .panicked = session.machine.end, case .success = result {
            throw endedEarly(.panicked, while: "the session ran", details: consoleDetails(session.machine))
        }
        return try result.get()
    }

    /// Boots the guest kit's session and waits until the guest is ready for commands.
    static func startSession(_ profile: Profile, options: Options) async throws(LaunchError) -> GuestSession {
        let slots = max(1, min(options.concurrency, SessionProtocol.maxSlots,
                               (30 - profile.consoles.count - 1) / 3))
        let prepared = try await prepare(profile, options: options, sessionSlots: slots)
        var machineOptions = machineOptions(prepared, options)
        machineOptions.boundsLifeByRunTimeout = false
        let warm = prepared.warmStart.map { WarmRun($0, profileName: prepared.profile.name, logger: options.logger) }
        if let warm { machineOptions.incoming = { plan in warm.restoreSource(for: plan) } }
        let machine = try await Machine.start(prepared.profile, options: machineOptions)
        let session = GuestSession(machine: machine, concurrency: slots, interrupt: options.interrupt,
                                   console: options.console, root: prepared.root, logger: options.logger)
        try await session.boot(setupScript: prepared.setupScript, warm: warm)
        return session
    }

    /// Starts the profile for interactive use: a shell on the serial console (or the
    /// profile's own initrd). Returns the running machine, which the caller must
    /// end with `shutdown()` (dropping it kills QEMU).
    public static func startInteractive(_ profile: Profile, options: Options = Options()) async throws(LaunchError) -> Machine {
        var profile = profile
        profile.command = nil
        let prepared = try await prepare(profile, options: options, sessionSlots: 0)
        let machine = try await Machine.start(prepared.profile, options: machineOptions(prepared, options))
        do {
            try await machine.resume()
        } catch {
            await machine.shutdown(skipACPI: true)
            throw error
        }
        return machine
    }

    /// The machine options that boot `prepared` as `options` ask (also `launch plan`'s).
    package static func machineOptions(_ prepared: Prepared, _ options: Options) -> Machine.Options {
        var machineOptions = machineOptions(options)
        machineOptions.host = prepared.host
        machineOptions.kernelEntry = prepared.kernelEntry
        machineOptions.kernelArguments = prepared.kernelArguments
        machineOptions.guestPorts = prepared.guestPorts
        return machineOptions
    }

    /// The machine options `options` set before anything is prepared: the host, the state root, the logger.
    static func machineOptions(_ options: Options) -> Machine.Options {
        var machineOptions = Machine.Options()
        machineOptions.host = options.host
        machineOptions.keepRuntimeDir = options.keepRuntimeDir
        machineOptions.runtimeDirectory = options.runtimeDirectory
        machineOptions.stateRoot = options.stateRoot
        machineOptions.logger = options.logger
        machineOptions.gdb = options.gdb
        machineOptions.crashCapture = options.crashCapture
        machineOptions.interrupt = options.interrupt
        if machineOptions.crashCapture?.symbols == nil { machineOptions.crashCapture?.symbols = symbolFile(options) }
        return machineOptions
    }

    package static func commandOptions(_ options: Options) -> GuestSession.CommandOptions {
        GuestSession.CommandOptions(stdin: options.stdin, stdout: options.stdout, stderr: options.stderr,
                                    environment: options.environment, workingDirectory: options.workingDirectory,
                                    timeout: options.timeout)
    }

    /// What a capture saved (a panic's console log and memory dump), then the console's last lines.
    static func consoleDetails(_ machine: Machine) -> [String] {
        let shown = machine.console.tail.lines(last: 25)
        var details = machine.crashCaptures.map { "  crash capture: \($0)" }
        // A panic's reason comes 30-odd lines before the end of its backtrace: keep it in view.
        if let reason = machine.console.tail.lines().last(where: { $0.contains("Kernel panic - not syncing") }), !shown.contains(reason) {
            details.append("  panic: \(reason.trimmingCharacters(in: .whitespaces))")
        }
        return details + ["  last console lines:"] + shown.map { "    \($0)" }
    }

    static func endedEarly(_ end: VMEnd, while what: String, details: [String]) -> LaunchError {
        if case .panicked = end {
            return LaunchError(.guestPanic, "the guest kernel panicked while \(what)", details: details)
        }
        if case .reset = end {
            return LaunchError(.guestRebooted, "the guest rebooted while \(what); the VM ended (onReboot is exit)",
                               fix: "set \"onReboot\": \"reboot\" in the profile to let it reboot", details: details)
        }
        return LaunchError(.qemuFailed, "the VM ended while \(what): \(end)", details: details)
    }
}
