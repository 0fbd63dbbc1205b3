import Foundation
import LaunchSupport
import Logging
import QMP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a VM ended.
public enum VMEnd: Sendable, Hashable, CustomStringConvertible {
    /// The guest powered itself off.
    case poweredOff
    /// The guest kernel panicked (pvpanic event, or the reset `panic=-1` makes).
    case panicked
    /// The guest rebooted and the profile's `onReboot` is `exit` (QEMU's -no-reboot makes a
    /// reset its end); not a panic as far as we can tell.
    case reset
    /// The shutdown ladder stopped it.
    case stopped(ShutdownStep)
    /// QEMU ended on its own without the guest powering off.
    case qemuExited(ExitStatus)
    /// A virtiofsd died while the guest ran; QEMU was stopped.
    case virtiofsdDied(index: Int, ExitStatus)
    /// `timeouts.run` passed (a VM without a command); the ladder stopped it.
    case timedOut

    /// How it ended, in words.
    public var description: String {
        switch self {
        case .poweredOff: return "the guest powered off"
        case .panicked: return "the guest kernel panicked"
        case .reset: return "the guest rebooted (onReboot is exit, so a reboot ends the VM)"
        case .stopped(let step): return "stopped by the shutdown ladder at step \(step)"
        case .qemuExited(let status): return "QEMU \(status)"
        case .virtiofsdDied(let index, let status): return "virtiofsd for share \(index) \(status) while the guest ran"
        case .timedOut: return "timeouts.run passed; the VM was stopped"
        }
    }

    /// Whether the guest was ended from outside without shutting down (QMP `quit`,
    /// SIGTERM, SIGKILL): its disks may need recovery on its next boot.
    public var isForcedStop: Bool {
        if case .stopped(let step) = self { return step.isForced }
        return false
    }
}

/// A step of the shutdown ladder.
public enum ShutdownStep: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// QEMU had exited before the ladder began.
    case alreadyExited = "already-exited"
    /// The guest powered off by itself within the grace period.
    case guestPoweroff = "guest-poweroff"
    /// ACPI `system_powerdown`: the guest's power button.
    case acpiPowerdown = "acpi-powerdown"
    /// QMP `quit`.
    case qmpQuit = "qmp-quit"
    /// SIGTERM to QEMU.
    case sigterm = "sigterm"
    /// SIGKILL to QEMU.
    case sigkill = "sigkill"
    /// The step's name: "acpi-powerdown", "sigkill", ...
    public var description: String { rawValue }

    /// Whether this step ends QEMU without the guest shutting down (`quit`, SIGTERM,
    /// SIGKILL): the guest's disks may need recovery on its next boot.
    public var isForced: Bool {
        switch self {
        case .qmpQuit, .sigterm, .sigkill: return true
        case .alreadyExited, .guestPoweroff, .acpiPowerdown: return false
        }
    }

    /// The ladder's steps in order, from the grace period to SIGKILL.
    static let order: [ShutdownStep] = [.guestPoweroff, .acpiPowerdown, .qmpQuit, .sigterm, .sigkill]
}

/// How the shutdown ladder ended a VM: the step that did it, how long it took, QEMU's exit.
public struct ShutdownOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The step that ended QEMU.
    public var step: ShutdownStep
    /// From the ladder's start to QEMU's end.
    public var duration: Duration
    /// How QEMU exited.
    public var qemuExit: ExitStatus
    /// Whether ``Machine/hurryShutdown(toKill:)`` cut a step short (a second Ctrl-C).
    public var hurried = false
    /// "acpi-powerdown after 1.25 s (QEMU exited 0)".
    public var description: String {
        "\(step) after \(formatDuration(duration)) (QEMU \(qemuExit))\(hurried ? ", hurried" : "")"
    }
}

/// A running VM: QEMU, its virtiofsd daemons, QMP, consoles, and the runtime dir.
///
/// Prefer ``withRunning(_:options:graceful:_:)``, which ends the VM whatever ends its body.
/// A `Machine` from ``start(_:options:)`` must be ended with ``shutdown(guestGrace:stepTimeout:skipACPI:)``;
/// one released while its VM runs kills QEMU and its virtiofsd (SIGKILL, no ladder)
/// and removes the runtime dir, with a warning.
public final class Machine: Sendable {
    /// How to start a VM beyond its profile: what the caller adds to the plan (kernel
    /// entry and arguments, its own ports), host facts, where state lives, logging.
    public struct Options: Sendable {
        /// Keep the runtime dir (sockets, console.log, qemu.log) after the VM ends.
        public var keepRuntimeDir = false
        /// A fixed runtime dir instead of a fresh `launch-XXXXXX` under the profile's
        /// `runtimeDir`: an existing folder of this user with mode 0700 (a named VM's record
        /// folder), or a path to make. It is used as is, not emptied first.
        public var runtimeDirectory: String?
        /// Host facts to plan with; nil probes this host.
        public var host: HostFacts?
        /// How the kernel is entered (`PlanOptions.kernelEntry`).
        public var kernelEntry: KernelEntry = .standard
        /// Kernel arguments the caller adds before the profile's `cmdline` (`PlanOptions.kernelArguments`).
        public var kernelArguments: [String] = []
        /// Extra virtio-serial ports a caller's protocol needs (the guest kit's session
        /// ports), planned before the profile's `consoles`; each is connected before the
        /// vCPUs run and handed over with `takePort`.
        public var guestPorts: [String] = []
        /// The folder holding every VM's state folder; nil = `VMStateFolder.defaultRoot`.
        public var stateRoot: String?
        /// Where the launch logs: what it picked and why at info, each phase at debug,
        /// problems at warning and error. The default shows warnings and errors only.
        public var logger = Logger.quietByDefault
        /// Whether a VM without a command ends when `timeouts.run` passes (the CLI's
        /// console VMs); a caller driving the guest itself (a session) sets its own deadlines.
        public var boundsLifeByRunTimeout = true
        /// QEMU's gdb stub; with `waitForDebugger`, ``resume()`` leaves the vCPUs to the debugger.
        public var gdb: GDBStub?
        /// Save the console log and a memory dump when the guest kernel panics (the
        /// panicked guest is held for it); nil = a panic ends QEMU at once.
        public var crashCapture: CrashCapture?
        /// The CLI's Ctrl-C counter: a second signal hurries this VM's shutdown ladder
        /// (``hurryShutdown(toKill:)``), a third kills QEMU.
        package var interrupt: Interrupt?
        /// The defaults: probe this host, quiet logging, runtime dir removed at the end.
        public init() {}
    }

    /// QEMU's fd for the launcher's own QMP connection.
    static let controlFileDescriptor: Int32 = 3

    /// The profile as it runs (its kernel resolved).
    public let profile: Profile
    /// The plan QEMU and virtiofsd were started from.
    public let plan: Plan
    /// The launcher's QMP connection to this QEMU.
    public let qmp: QMP.Client
    /// The QEMU process.
    public let qemu: ChildProcess
    /// One virtiofsd per virtiofs share, in share order.
    public let virtiofsd: [ChildProcess]
    /// The serial console, always drained into `console.log` in the runtime dir.
    public let console: ConsoleTap
    /// The VM's runtime dir (sockets, logs); removed when the VM ends unless kept.
    public let runtimeDirectory: RuntimeDirectory
    let logger: Logger
    let keepRuntimeDir: Bool
    let boundsLifeByRunTimeout: Bool
    /// Connected sockets of the caller's `guestPorts` by name; owned by the caller after `takePort`.
    private let ports: Mutex<[String: Int32]>
    private let events: Mutex<(panicked: Bool, shutdownReason: String?, ladderStep: ShutdownStep?)>
    private let endState: Mutex<(end: VMEnd?, cleanedUp: Bool)>
    /// Set once every process is reaped and the runtime dir is gone.
    private let ended = OneShot<VMEnd>()
    /// Set as soon as QEMU is reaped (before the cleanup `ended` waits for): what a
    /// ladder step waits on, cancellably.
    private let qemuExited = OneShot<ExitStatus>()
    /// Requests to cut the ladder short (``hurryShutdown(toKill:)``).
    private let hurry = Mutex(LadderHurry())
    /// Whether the current ladder had a step cut short.
    private let hurried = Mutex(false)
    let interrupt: Interrupt?
    /// The `timeouts.run` timer of a command-less VM; cancelled when the VM ends.
    private let runTimer = Mutex<Task<Void, Never>?>(nil)
    /// The guest's running time (QMP STOP/RESUME): what the boot and command deadlines count.
    public let runClock = GuestRunClock()
    let gdb: GDBStub?
    let crashCapture: CrashCapture?
    let stateRoot: String?
    let crashReports = Mutex<[CrashReport]>([])
    let panicCaptureStarted = Mutex(false)
    /// What ``captureCrashState(reason:)`` saved so far (a panic's capture included).
    public var crashCaptures: [CrashReport] { crashReports.withLock { $0 } }

    /// Starts a VM for `profile` and returns once the guest is running (its vCPUs
    /// paused until ``resume()``): prepares and plans it (``prepare(_:options:for:)``),
    /// makes the runtime dir and the VM's identity, then spawns virtiofsd and QEMU.
    public static func start(_ profile: Profile, options: Options = Options()) async throws(LaunchError) -> Machine {
        var logger = options.logger
        logger[metadataKey: "vm.name"] = .string(profile.name)
        var prepared = try await prepare(profile, options: options, for: .start)
        let profile = prepared.facts.profile
        let host = prepared.facts.host
        // Made only now that the plan holds, so a bad profile leaves nothing behind.
        var state: VMStateFolder?
        if let folder = prepared.stateFolder, let planned = prepared.options.identity {
            let (stored, isNew) = try folder.identity(making: planned)
            // Another launcher of this VM stored its identity first: plan with that one.
            if stored != planned { try prepared.replan(identity: stored) }
            logger.info("state folder: \(folder.path)\(isNew ? " (a new machine identity was made)" : "")")
            state = folder
        }
        let plan = prepared.plan
        try LaunchError.checkCancellation("starting \(profile.name)")
        let runtime = try options.runtimeDirectory == nil ? RuntimeDirectory.create(at: plan.runtimeDir) : RuntimeDirectory.adopt(plan.runtimeDir)
        for choice in plan.choices {
            if choice.isWarning {
                logger.warning("\(choice.topic): \(choice.value): \(choice.reason)")
            } else {
                logger.info("\(choice.topic): \(choice.value) (\(choice.reason))")
            }
        }
        logger.debug("runtime dir: \(runtime.path)")

        var started: [ChildProcess] = []
        func teardownAfterFailedStart() async {
            for child in started.reversed() { await child.terminate(grace: .milliseconds(500)) }
            if !options.keepRuntimeDir { runtime.remove() }
        }
        let deadline = ContinuousClock.now + profile.timeouts.boot.duration
        let environment = childEnvironment()
        do throws(LaunchError) {
            if let vars = plan.firmwareVars, !FileManager.default.fileExists(atPath: vars.path) {
                // The VM's own UEFI variables, kept between runs like a VM bundle's NVRAM.
                do {
                    try FileManager.default.createDirectory(atPath: (vars.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    // Whole or not at all: a half-copied store would be this VM's NVRAM from then on.
                    try AtomicFile.write(Data(contentsOf: URL(fileURLWithPath: vars.template)), to: vars.path)
                } catch {
                    throw LaunchError(.hostProblem, "cannot create the UEFI variable store \(vars.path)", cause: error)
                }
                logger.info("firmware: new UEFI variable store \(vars.path) (from \(vars.template))")
            }
            if let state, !plan.persistentOverlays.isEmpty {
                try await state.prepareOverlays(plan.persistentOverlays, qemuImg: host.qemuImg!, environment: environment, logger: logger)
            }
            for command in plan.prepare {
                try await runToCompletion(command, environment: environment)
            }
            var daemons: [ChildProcess] = []
            for (index, argv) in plan.virtiofsd.enumerated() {
                let daemon = try ChildProcess.spawn(
                    name: "virtiofsd[\(index)]", argv: argv, environment: environment,
                    logPath: runtime.path + "/virtiofsd\(index).log", readOnlyView: plan.virtiofsdViews.indices.contains(index) ? plan.virtiofsdViews[index] : nil)
                started.append(daemon)
                daemons.append(daemon)
                // Readiness by stat, not connect: virtiofsd takes the first connection
                // as its VMM and exits when it closes.
                try await waitFor(daemon, deadline: deadline, what: "its socket \(plan.sockets.virtiofs[index])") {
                    FileManager.default.fileExists(atPath: plan.sockets.virtiofs[index])
                }
                logger.debug("virtiofsd ready for share \"\(plan.virtiofsTags[index])\" (pid \(daemon.pid))")
            }
            // The launcher's QMP connection: one end of a socketpair, the other QEMU's fd 3.
            var pair: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                throw LaunchError(.internalError, "socketpair() failed: \(POSIX.describe(POSIX.errno))")
            }
            let qemu: ChildProcess
            do {
                qemu = try ChildProcess.spawn(name: "qemu", argv: plan.qemu, environment: environment,
                                              logPath: runtime.path + "/qemu.log",
                                              extraFileDescriptors: [(pair[1], Machine.controlFileDescriptor)])
            } catch {
                close(pair[0])
                close(pair[1])
                throw error
            }
            close(pair[1])
            started.append(qemu)
            logger.debug("QEMU started (pid \(qemu.pid))")
            let qmp: QMP.Client
            do {
                qmp = try await QMP.Client.connect(fileDescriptor: pair[0], timeout: max(.seconds(1), deadline - .now), logger: logger)
            } catch {
                try LaunchError.checkCancellation("starting \(profile.name)")
                if let status = await qemu.wait(timeout: .milliseconds(500)) {
                    throw earlyExit(qemu, status, what: "before QMP was ready")
                }
                throw LaunchError(.qemuFailed, "QMP did not become ready", details: ["  command: \(qemu.commandLine)"], cause: error)
            }
            let version = qmp.greeting.version
            logger.debug("QMP ready (QEMU \(version.major).\(version.minor).\(version.micro))")

            // Every chardev exists once QMP answers: attach the consoles while vCPUs are stopped.
            let consoleFd = try connectOrFail(plan.sockets.console, qemu: qemu)
            var portFds: [String: Int32] = [:]
            // Only the caller's own protocol ports: the profile's `consoles` stay free for other
            // tools, since a QEMU socket chardev serves one client (a second one waits unserved).
            for name in options.guestPorts {
                guard let path = plan.sockets.ports[name] else { continue }
                portFds[name] = try connectOrFail(path, qemu: qemu)
            }
            let console = ConsoleTap(fd: consoleFd, logPath: runtime.path + "/console.log", name: profile.name)
            let machine = Machine(profile: profile, plan: plan, qmp: qmp, qemu: qemu, virtiofsd: daemons,
                                  console: console, runtime: runtime, ports: portFds, logger: logger,
                                  keepRuntimeDir: options.keepRuntimeDir, boundsLifeByRunTimeout: options.boundsLifeByRunTimeout,
                                  debug: options)
            machine.startMonitoring()
            options.interrupt?.attach(machine)
            if Task.isCancelled {
                await machine.shutdown(stepTimeout: .seconds(2), skipACPI: true)
                throw LaunchError.cancelled("starting \(profile.name) was cancelled; the VM was stopped")
            }
            return machine
        } catch {
            await teardownAfterFailedStart()
            throw error
        }
    }

    private init(profile: Profile, plan: Plan, qmp: QMP.Client, qemu: ChildProcess, virtiofsd: [ChildProcess],
                 console: ConsoleTap, runtime: RuntimeDirectory, ports: [String: Int32], logger: Logger, keepRuntimeDir: Bool, boundsLifeByRunTimeout: Bool,
                 debug: Options) {
        gdb = debug.gdb
        crashCapture = debug.crashCapture
        stateRoot = debug.stateRoot
        interrupt = debug.interrupt
        self.profile = profile
        self.plan = plan
        self.qmp = qmp
        self.qemu = qemu
        self.virtiofsd = virtiofsd
        self.console = console
        self.runtimeDirectory = runtime
        self.ports = Mutex(ports)
        self.logger = logger
        self.keepRuntimeDir = keepRuntimeDir
        self.boundsLifeByRunTimeout = boundsLifeByRunTimeout
        events = Mutex((false, nil, nil))
        endState = Mutex((nil, false))
    }

    deinit {
        guard ended.current == nil else { return }
        logger.warning("a Machine was released while its VM ran: killing QEMU (pid \(qemu.pid)) and its virtiofsd without the shutdown ladder; end it with shutdown() or use Machine.withRunning")
        qemu.signal(SIGKILL)
        for daemon in virtiofsd { daemon.signal(SIGKILL) }
        qmp.close()
        for fd in ports.withLock({ p in defer { p = [:] }; return Array(p.values) }) { close(fd) }
        runTimer.withLock { $0?.cancel() }
        if !keepRuntimeDir { runtimeDirectory.remove() }
    }

    /// Starts a VM for `profile`, lets its vCPUs run, hands it to `body`, and ends it
    /// through the shutdown ladder when `body` returns or throws, or the task is
    /// cancelled (then the ACPI step gets a short deadline). Nothing it started
    /// outlives the call: QEMU, virtiofsd, fds and the runtime dir are gone when it
    /// returns. A cancelled call throws `LaunchError` with code `.cancelled`.
    ///
    /// - Parameters:
    ///   - profile: the VM to start.
    ///   - options: how to start it (runtime dir, state folder, ports the caller takes).
    ///   - graceful: how long the guest may take to power off by itself
    ///     after `body` returns (say the body asked it to), before the ladder's ACPI step.
    ///   - body: what to do with the running VM; its result is the call's.
    public static func withRunning<R: Sendable>(
        _ profile: Profile, options: Options = Options(), graceful: Duration = .zero,
        _ body: (Machine) async throws -> R
    ) async throws -> R {
        let machine = try await start(profile, options: options)
        let result: Result<R, any Error>
        do {
            try await machine.resume()
            result = .success(try await body(machine))
        } catch {
            result = .failure(error)
        }
        await machine.shutdown(guestGrace: graceful)
        if Task.isCancelled { throw LaunchError.cancelled("the VM \(profile.name) was stopped") }
        return try result.get()
    }

    /// Lets the vCPUs run (the plan starts QEMU with -S so consoles attach first).
    /// Without a command, `timeouts.run` bounds the VM's life from here.
    /// With a gdb stub that waits for the debugger, the vCPUs stay stopped: the
    /// debugger's `continue` starts them (and the deadlines only count from then).
    public func resume() async throws(LaunchError) {
        if let gdb, gdb.waitForDebugger {
            logger.debug("gdb: vCPUs held at the first instruction until a debugger on 127.0.0.1:\(gdb.port) continues")
        } else {
            do {
                try await qmp.cont()
            } catch {
                throw LaunchError(.qemuFailed, "QMP cont failed", cause: error)
            }
            // Running from here whenever the RESUME event is read: a deadline must not wait for it.
            runClock.resumed()
        }
        if profile.command == nil, boundsLifeByRunTimeout, let limit = profile.timeouts.run?.duration {
            let timer = Task { [weak self] in
                guard let clock = self?.runClock else { return }
                try? await clock.sleep(running: limit)
                guard !Task.isCancelled, let self, qemu.exitStatus == nil, end == nil else { return }
                let tail = console.tail.lines(last: 10).map { "  \($0)" }.joined(separator: "\n")
                logger.error("timeouts.run (\(profile.timeouts.run!)) passed; stopping the VM. Last console lines:\n\(tail)")
                setEnd(.timedOut)
                await shutdown(stepTimeout: .seconds(3))
            }
            runTimer.withLock { $0 = timer }
        }
    }

    /// Takes ownership of the connected socket fd of one of `Options.guestPorts`. The
    /// profile's `consoles` are not connected: reach them at `plan.sockets.ports[name]`.
    public func takePort(_ name: String) -> Int32? {
        ports.withLock { $0.removeValue(forKey: name) }
    }

    /// Suspends until the VM has ended and everything is cleaned up, and says how it ended.
    ///
    /// Cancelling the calling task stops the VM through the shutdown ladder (a short
    /// ACPI step) and throws `LaunchError` with code `.cancelled`.
    public func waitForEnd() async throws(LaunchError) -> VMEnd {
        if let end = await ended.wait() { return end }
        await shutdown()
        throw LaunchError.cancelled("waiting for the VM \(profile.name) was cancelled; it was stopped")
    }

    /// How the VM ended, once everything is cleaned up; nil at once when the calling
    /// task is cancelled (a racer that must not stop the VM).
    package func waitForEndUnlessCancelled() async -> VMEnd? {
        await ended.wait()
    }

    /// How the VM ended, once everything is cleaned up; not cancellable (teardown paths).
    package func waitForEndThroughCancellation() async -> VMEnd {
        await ended.waitThroughCancellation()
    }

    /// Why the VM ended, once known (it may still be shutting down).
    public var end: VMEnd? { endState.withLock { $0.end } }

    private func startMonitoring() {
        let events = qmp.events()
        watchForPanics()
        // The monitors hold the Machine weakly, so a caller that drops it gets its deinit
        // (which kills QEMU); each ends with QEMU (the event stream finishes as QMP closes).
        Task { [weak self] in
            for await event in events {
                guard let self else { return }
                switch event.name {
                case "GUEST_PANICKED":
                    self.events.withLock { $0.panicked = true }
                    logger.error("guest panicked (pvpanic)")
                    if crashCapture != nil { Task { await self.panicked(seenOn: "pvpanic") } }
                case "STOP":
                    runClock.stopped()
                case "RESUME":
                    runClock.resumed()
                case "SHUTDOWN":
                    let reason = event.data["reason"]?.stringValue ?? "unknown"
                    self.events.withLock { $0.shutdownReason = reason }
                    logger.debug("QMP SHUTDOWN event", metadata: ["qmp.reason": .string(reason)])
                default:
                    break
                }
            }
        }
        let qemu = self.qemu
        Task { [weak self] in
            let status = await qemu.wait()
            self?.qemuExited.resolve(status)
            await self?.finish(qemuStatus: status)
        }
        for (index, daemon) in virtiofsd.enumerated() {
            Task { [weak self] in
                let status = await daemon.wait()
                guard let self else { return }
                // virtiofsd exits by itself when QEMU closes the vhost-user socket, which
                // happens as QEMU exits: only a death while QEMU stays up is a failure.
                if self.events.withLock({ $0.shutdownReason != nil }) { return }
                if await qemu.wait(timeout: .milliseconds(500)) != nil { return }
                guard end == nil else { return }
                // A guest whose filesystem daemon died can't make progress: stop it.
                let tail = daemon.outputTail.lines(last: 10).map { "  virtiofsd: \($0)" }.joined(separator: "\n")
                logger.error("virtiofsd for share \(index) \(status) while the guest ran; stopping QEMU\n\(tail)")
                setEnd(.virtiofsdDied(index: index, status))
                _ = await shutdown(guestGrace: .zero, stepTimeout: .seconds(2), skipACPI: true)
            }
        }
    }

    private func finish(qemuStatus: ExitStatus) async {
        // Let the console and QMP readers see QEMU's last words: QEMU closes both as it exits.
        await console.waitUntilClosed()
        let qmp = self.qmp
        _ = await race([
            { @Sendable in _ = await qmp.disconnected() },
            { @Sendable in try? await Task.sleep(for: .seconds(1)) },
        ])
        // The client's own history, filled by its reader before it saw the close: the
        // event stream's consumer task may not have run yet.
        for event in qmp.recentEvents {
            if event.name == "GUEST_PANICKED" { events.withLock { $0.panicked = true } }
            if event.name == "SHUTDOWN", let reason = event.data["reason"]?.stringValue {
                events.withLock { $0.shutdownReason = reason }
            }
        }
        let (panicked, reason, ladderStep) = events.withLock { ($0.panicked, $0.shutdownReason, $0.ladderStep) }
        let consolePanic = console.tail.lines(last: 80).contains { $0.contains("Kernel panic") }
        let observed: VMEnd
        if panicked || consolePanic {
            observed = .panicked
        } else if let ladderStep, ladderStep != .guestPoweroff {
            observed = .stopped(ladderStep)
        } else if reason == "guest-shutdown" {
            observed = .poweredOff
        } else if reason == "guest-reset" {
            observed = .reset
        } else {
            observed = .qemuExited(qemuStatus)
        }
        setEnd(observed)
        await cleanUp()
        // Waiters hear of the end only once every process is reaped and the runtime dir is gone.
        ended.resolve(endState.withLock { $0.end! })
    }

    /// Records why the VM ended; the first reason wins (a panic seen by the
    /// ladder's caller, a dead virtiofsd, ...).
    private func setEnd(_ end: VMEnd) {
        endState.withLock { s in
            // A panic outranks how QEMU then went down.
            if s.end == nil || end == .panicked { s.end = end }
        }
    }

    private func cleanUp() async {
        interrupt?.detach(self)
        qmp.close()
        runTimer.withLock { $0?.cancel() }
        // virtiofsd exits by itself when QEMU disconnects; give it a moment, then make it.
        for daemon in virtiofsd { await daemon.terminate(grace: .seconds(1)) }
        for fd in ports.withLock({ p in defer { p = [:] }; return Array(p.values) }) { close(fd) }
        if keepRuntimeDir {
            logger.info("runtime dir kept: \(runtimeDirectory.path)")
        } else {
            runtimeDirectory.remove()
        }
        endState.withLock { $0.cleanedUp = true }
    }

    /// Stops the VM through the ladder: wait for the guest to power off →
    /// ACPI `system_powerdown` → QMP `quit` → SIGTERM → SIGKILL; each step has
    /// its own deadline. Safe to call more than once and after the VM ended.
    ///
    /// It runs to its end even when the calling task is cancelled (QMP calls from a
    /// cancelled task would fail at once and skip the gentle steps); the ACPI step's
    /// deadline is then at most 2 s, so a cancelled caller is back promptly.
    @discardableResult
    public func shutdown(guestGrace: Duration = .zero, stepTimeout: Duration? = nil, skipACPI: Bool = false) async -> ShutdownOutcome {
        let cancelled = Task.isCancelled
        return await Task {
            await ladder(guestGrace: cancelled ? min(guestGrace, .seconds(2)) : guestGrace, stepTimeout: stepTimeout,
                         acpiTimeout: cancelled ? .seconds(2) : nil, skipACPI: skipACPI)
        }.value
    }

    /// Cuts a shutdown ladder short: the step it is on ends at once and the next begins
    /// (with `toKill`, QEMU gets SIGKILL at once). Called before a ladder has begun, it
    /// makes the coming ladder skip its first step. Returns the step the ladder goes to,
    /// or nil when QEMU has already exited. The CLI calls it on a second Ctrl-C.
    @discardableResult
    public func hurryShutdown(toKill: Bool = false) -> ShutdownStep? {
        guard qemuExited.current == nil, qemu.exitStatus == nil else { return nil }
        let (target, pulse) = hurry.withLock { h -> (ShutdownStep, OneShot<Void>) in
            if toKill { h.kill = true } else { h.pending += 1 }
            return (h.target, h.pulse)
        }
        pulse.resolve(())
        logger.debug("shutdown: hurried to \(target)")
        return target
    }

    /// Waits up to `timeout` for QEMU to exit while `action` (a press, a QMP command) runs;
    /// nil when the time passed, QEMU is still up, `action` failed (false), or a hurry
    /// cut the step short.
    private func runStep(_ step: ShutdownStep, timeout: Duration, action: @escaping @Sendable () async -> Bool = { true }) async -> ExitStatus? {
        let pulse = hurry.withLock { h -> OneShot<Void>? in
            h.position = ShutdownStep.order.firstIndex(of: step)!
            if h.kill && step != .sigkill { return nil }
            if h.pending > 0 {
                h.pending -= 1
                return nil
            }
            return h.pulse
        }
        events.withLock { $0.ladderStep = step }
        guard let pulse else {
            hurried.withLock { $0 = true }
            logger.debug("shutdown: \(step) skipped (hurried)")
            return qemu.exitStatus
        }
        let exited = qemuExited
        enum Ending: Sendable { case exited(ExitStatus), timedOut, hurried }
        let ending = await race([
            { @Sendable () async -> Ending in
                await exited.wait().map(Ending.exited) ?? .timedOut
            },
            { @Sendable () async -> Ending in
                // A failed action ends the step at once; one that succeeded leaves the others to decide.
                guard await action() else { return .timedOut }
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                return .timedOut
            },
            { @Sendable () async -> Ending in
                try? await Task.sleep(for: timeout)
                return .timedOut
            },
            { @Sendable () async -> Ending in
                await pulse.wait() == nil ? .timedOut : .hurried
            },
        ])
        switch ending {
        case .exited(let status): return status
        case .timedOut: return qemu.exitStatus
        case .hurried:
            hurry.withLock { h in
                if h.pending > 0 { h.pending -= 1 }
                h.pulse = OneShot()
            }
            hurried.withLock { $0 = true }
            logger.debug("shutdown: \(step) cut short (hurried)")
            return qemu.exitStatus
        }
    }

    private func ladder(guestGrace: Duration, stepTimeout: Duration?, acpiTimeout: Duration?, skipACPI: Bool) async -> ShutdownOutcome {
        let started = ContinuousClock.now
        let step = stepTimeout ?? profile.timeouts.shutdown.duration
        hurried.withLock { $0 = false }
        hurry.withLock { $0.skipACPI = skipACPI }
        func outcome(_ s: ShutdownStep, _ status: ExitStatus) async -> ShutdownOutcome {
            let result = ShutdownOutcome(step: s, duration: .now - started, qemuExit: status, hurried: hurried.withLock { $0 })
            logger.debug("shutdown: \(result)")
            _ = await ended.waitThroughCancellation()
            return result
        }
        if let status = qemu.exitStatus { return await outcome(.alreadyExited, status) }
        // Run even with no grace: a hurry that came before the ladder began is spent here,
        // so it skips to the ACPI step as ``hurryShutdown(toKill:)`` said.
        if let status = await runStep(.guestPoweroff, timeout: guestGrace) {
            return await outcome(.guestPoweroff, status)
        }
        if !skipACPI {
            logger.debug("shutdown: asking the guest to power off (ACPI system_powerdown)")
            let qmp = self.qmp
            // The button is pressed again every second: QEMU doesn't latch a press, and a
            // guest still booting (its ACPI button driver or the init's handler not loaded
            // yet) drops it, so one early press would leave Ctrl-C to end at qmp-quit.
            // A guest that took the first press is already powering off; later ones are no-ops
            // (the guest kit's init, systemd-logind's "power key pressed" job).
            // A QEMU that refuses the first press (no ACPI) goes on to quit at once.
            let press: @Sendable () async -> Bool = {
                guard (try? await qmp.systemPowerdown()) != nil else { return false }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    _ = try? await qmp.systemPowerdown()
                }
                return true
            }
            if let status = await runStep(.acpiPowerdown, timeout: min(step, acpiTimeout ?? step), action: press) {
                return await outcome(.acpiPowerdown, status)
            }
        }
        logger.debug("shutdown: QMP quit")
        let qmp = self.qmp
        if let status = await runStep(.qmpQuit, timeout: step, action: { (try? await qmp.quit(timeout: step)) != nil }) {
            return await outcome(.qmpQuit, status)
        }
        // A hurry to SIGKILL was said by whoever asked for it; these warnings are for a ladder that ran its course.
        if !hurry.withLock({ $0.kill }) { logger.warning("shutdown: QMP quit did not end QEMU; sending SIGTERM") }
        let qemu = self.qemu
        if let status = await runStep(.sigterm, timeout: step, action: {
            qemu.signal(SIGTERM)
            return true
        }) {
            return await outcome(.sigterm, status)
        }
        if !hurry.withLock({ $0.kill }) { logger.warning("shutdown: SIGTERM did not end QEMU; sending SIGKILL") }
        events.withLock { $0.ladderStep = .sigkill }
        hurry.withLock { $0.position = ShutdownStep.order.count - 1 }
        qemu.signal(SIGKILL)
        let status = await qemu.wait()
        return await outcome(.sigkill, status)
    }
}

/// Requests to cut a shutdown ladder short, and where the ladder is.
struct LadderHurry: Sendable {
    /// Steps to skip: one per hurry not yet acted on.
    var pending = 0
    /// Go straight to SIGKILL.
    var kill = false
    /// Where the ladder is in ``ShutdownStep/order``; 0 before it begins.
    var position = 0
    /// Whether this ladder has no ACPI step.
    var skipACPI = false
    /// Resolved by each hurry, to wake the step in progress; replaced once acted on.
    var pulse = OneShot<Void>()

    /// The step the ladder goes to after the hurries so far.
    var target: ShutdownStep {
        if kill { return .sigkill }
        var index = position
        for _ in 0..<pending {
            index += 1
            if skipACPI && ShutdownStep.order[min(index, ShutdownStep.order.count - 1)] == .acpiPowerdown { index += 1 }
        }
        return ShutdownStep.order[min(index, ShutdownStep.order.count - 1)]
    }
}

// MARK: - helpers

/// The environment children get: explicit, not the caller's whole one.
func childEnvironment() -> [String: String] {
    let inherited = ProcessInfo.processInfo.environment
    var env = ["PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"]
    for key in ["HOME", "TMPDIR", "XDG_RUNTIME_DIR"] { if let v = inherited[key] { env[key] = v } }
    return env
}

func earlyExit(_ child: ChildProcess, _ status: ExitStatus, what: String) -> LaunchError {
    let tail = child.outputTail.lines(last: 20)
    let code: LaunchError.Code = child.name == "qemu" ? .qemuFailed : .virtiofsdFailed
    var details = ["  command: \(child.commandLine)"] + (tail.isEmpty ? [] : ["  \(child.name) said:"] + tail.map { "    \($0)" })
    // QEMU only says "vhost_backend_init failed: Protocol error" when a virtiofsd hung up on
    // it; the daemon's reason (e.g. "pivot_root(., .): Device or resource busy") is in its own log.
    let daemons = child.name == "qemu" ? virtiofsdLogTails(qemuArgv: child.argv) : []
    for (index, lines) in daemons {
        details += ["  virtiofsd[\(index)] said:"] + lines.map { "    \($0)" }
    }
    var fix: String? = tail.isEmpty && daemons.isEmpty ? nil : "see the messages below"
    if daemons.contains(where: { $0.1.contains { $0.contains("pivot_root") } }) {
        // The C virtiofsd pivots into the shared folder, which can't be its namespace's root.
        fix = "the C virtiofsd can't share / itself: use \"rootfs\": \"host\" (or --rootfs host), which serves a bind of /, or share a folder below /"
    }
    return LaunchError(code, "\(child.name) \(status) \(what)", fix: fix, details: details)
}

/// The last lines of every `virtiofsdN.log` beside the vhost-user sockets QEMU's argv names
/// (`-chardev socket,id=fsN,path=RUNTIME/fsN.sock`), read before the runtime dir goes.
func virtiofsdLogTails(qemuArgv: [String], last count: Int = 8) -> [(Int, [String])] {
    var found: [(Int, [String])] = []
    for arg in qemuArgv where arg.hasPrefix("socket,id=fs") {
        guard let range = arg.range(of: ",path=") else { continue }
        let socket = String(arg[range.upperBound...]).replacingOccurrences(of: ",,", with: ",")
        let idPart = arg.dropFirst("socket,id=fs".count).prefix { $0.isNumber }
        guard let index = Int(idPart) else { continue }
        let log = (socket as NSString).deletingLastPathComponent + "/virtiofsd\(index).log"
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { continue }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init).suffix(count)
        if !lines.isEmpty { found.append((index, Array(lines))) }
    }
    return found
}

/// Polls `ready` every few ms until true, the child exits (error with its stderr), or the deadline passes.
func waitFor(_ child: ChildProcess, deadline: ContinuousClock.Instant, what: String, ready: () -> Bool) async throws(LaunchError) {
    while true {
        if let status = child.exitStatus { throw earlyExit(child, status, what: "before \(what) appeared") }
        if ready() { return }
        if ContinuousClock.now >= deadline {
            throw LaunchError(.timeout, "\(child.name) did not create \(what) before the boot deadline",
                              fix: "raise timeouts.boot, or look at the output below",
                              details: ["  command: \(child.commandLine)"] + child.outputTail.lines(last: 10).map { "    \($0)" })
        }
        try? await Task.sleep(for: .milliseconds(2))
    }
}

func connectOrFail(_ path: String, qemu: ChildProcess) throws(LaunchError) -> Int32 {
    switch POSIX.connectedSocket(path: path) {
    case .success(let fd): return fd
    case .failure(let err):
        throw LaunchError(.qemuFailed, "cannot connect to QEMU's socket \(path): \(err)",
                          details: ["  command: \(qemu.commandLine)"])
    }
}

/// Runs a preparation command (qemu-img) and fails with its output.
func runToCompletion(_ argv: [String], environment: [String: String]) async throws(LaunchError) {
    let child = try ChildProcess.spawn(name: URL(fileURLWithPath: argv[0]).lastPathComponent, argv: argv, environment: environment)
    let status = await child.wait()
    if !status.isSuccess {
        throw LaunchError(.internalError, "\(child.name) \(status)", details: ["  command: \(child.commandLine)"] + child.outputTail.lines(last: 10).map { "    \($0)" })
    }
}
