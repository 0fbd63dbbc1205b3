import Foundation
import LaunchSupport
import Logging
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A booted guest that runs commands, one after another or several at once, each
/// with its own streams, exit code, environment, working directory and timeout.
///
/// Get one from ``GuestKit/withSession(_:options:_:)``, which boots the guest,
/// hands the session to a closure and always ends the VM afterwards. A command
/// that times out or whose task is cancelled is killed in the guest (its whole
/// process group) and the session goes on; one the power button stops, or a VM
/// that ends under it, fails the command with the reason.
public final class GuestSession: Sendable {
    /// The running VM (QMP, console, runtime dir).
    public let machine: Machine
    /// How many commands can run at once; more wait for a free slot.
    public let concurrency: Int
    private let control: ControlChannel
    private let slots: [Slot]
    /// Slots no command uses, and the commands waiting for one, first come first served.
    private let freeSlots: Mutex<(free: [Int], waiters: [OneShot<Int?>])>
    private let interrupt: Interrupt?
    private let logger: Logger
    private let consoleSink: Task<Void, Never>?
    private let endOutcome = Mutex<ShutdownOutcome?>(nil)
    /// With a `rootfs`: commands run in it (`in_root`), with its working directory and environment.
    private let root: GuestKit.GuestRootCommand?

    struct Slot: Sendable {
        var index: Int
        var input: Int32
        var output: OutputPort
        var error: OutputPort
    }

    /// What a command in the guest did.
    public struct CommandResult: Sendable {
        /// The command's exit status (128 + N when signal N ended it; 127 when it was not found).
        public var exitCode: Int32
        /// Empty unless stdout was `.capture`.
        public var stdout: Data
        /// Empty unless stderr was `.capture`.
        public var stderr: Data
        /// From sending the command to having all of its output.
        public var duration: Duration
        /// The captured stdout as UTF-8 text (invalid bytes replaced).
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        /// The captured stderr as UTF-8 text (invalid bytes replaced).
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// How long a command may run.
    public enum CommandTimeout: Sendable, Hashable {
        /// The profile's `timeouts.run`, or ``GuestKit/defaultCommandTimeout`` when it has none.
        case fromProfile
        /// At most this long, whatever the profile says.
        case after(Duration)
        /// No limit: a command that hangs hangs its caller. Opt in only when something
        /// else bounds it.
        case unlimited

    }

    /// One command's streams and surroundings.
    public struct CommandOptions: Sendable {
        /// What the command reads; `.none` = EOF at once.
        public var stdin: GuestInput = .none
        /// Where its stdout goes; `.capture` keeps it for the result.
        public var stdout: GuestOutput = .capture
        /// Where its stderr goes; `.capture` keeps it for the result.
        public var stderr: GuestOutput = .capture
        /// Added to the guest's environment (PATH, HOME, TERM are set by the init).
        public var environment: [String: String] = [:]
        /// Where the command runs in the guest; nil = `/`.
        public var workingDirectory: String?
        /// Its time limit; past it the command's process group is killed and `run` throws `.timeout`.
        public var timeout: CommandTimeout = .fromProfile
        /// Options for one command; every parameter has the default described on its property.
        public init(stdin: GuestInput = .none, stdout: GuestOutput = .capture, stderr: GuestOutput = .capture,
                    environment: [String: String] = [:], workingDirectory: String? = nil, timeout: CommandTimeout = .fromProfile) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.environment = environment
            self.workingDirectory = workingDirectory
            self.timeout = timeout
        }
    }

    init(machine: Machine, concurrency: Int, interrupt: Interrupt?, console: GuestOutput?, root: GuestKit.GuestRootCommand?,
         logger: Logger) {
        self.machine = machine
        self.root = root
        self.concurrency = concurrency
        self.interrupt = interrupt
        self.logger = logger
        control = ControlChannel(fd: machine.takePort(SessionProtocol.control)!)
        slots = (0..<concurrency).map { index in
            let ports = SessionProtocol.slotPorts(index)
            return Slot(index: index, input: machine.takePort(ports.input)!,
                        output: OutputPort(fd: machine.takePort(ports.output)!),
                        error: OutputPort(fd: machine.takePort(ports.error)!))
        }
        freeSlots = Mutex((Array(0..<concurrency), []))
        if let console {
            // Subscribed before `cont`: the vCPUs are still stopped, so nothing is missed.
            // The stream finishes when QEMU closes the console; `end` waits for that.
            let chunks = machine.console.output()
            consoleSink = Task {
                for await chunk in chunks {
                    let data = Data(chunk.utf8)
                    switch console {
                    case .capture: break
                    case .fileDescriptor(let fd): writeAll(fd, Array(data))
                    case .handler(let handle): handle(data)
                    }
                }
            }
        } else {
            consoleSink = nil
        }
    }

    /// Sends the boot setup, lets the vCPUs run and waits until the init reports in,
    /// within `timeouts.boot`. Throws (after stopping the VM) when the guest doesn't.
    ///
    /// With `warm` (warm start), a guest restored from a snapshot already has its setup and
    /// waits parked; a booted one parks after its setup and is saved there. Either then gets
    /// the run's own snippet (clock, seed, identity, mounts) before it reports ready.
    func boot(setupScript: String, warm: WarmRun? = nil) async throws(LaunchError) {
        let restored = warm?.restored ?? false
        if !restored { control.send(SessionProtocol.setupMessage(setupScript)) }
        let started = ContinuousClock.now
        do {
            if restored {
                try await warm?.waitUntilLoaded(machine, within: machine.profile.timeouts.boot.duration)
                logger.debug("snapshot loaded", metadata: ["guest.load": .string(formatDuration(started.duration(to: .now)))])
            }
            try await machine.resume()
        } catch {
            await end(grace: .zero)
            throw error
        }
        if let warm {
            if !restored {
                try await waitForGuest(control.parked, started: started)
                logger.debug("guest parked", metadata: ["guest.boot": .string(formatDuration(started.duration(to: .now)))])
                await warm.save(machine)
            }
            // The run's own hostname: the profile's name and the runtime dir's random part.
            let run = URL(fileURLWithPath: machine.runtimeDirectory.path).lastPathComponent.replacingOccurrences(of: "launch-", with: "")
            let name = String(machine.profile.name.map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(40)) + "-" + run
            control.send(SessionProtocol.setupMessage(warm.goScript(hostname: name)))
            logger.debug("sent the run's own setup (clock, seed, identity, mounts)")
        }
        try await waitForGuest(control.ready, started: started)
    }

    /// Waits within `timeouts.boot` for the init's `event` (`parked`, `ready`); throws (after
    /// stopping the VM) when the guest reports an error, ends, or never reports.
    private func waitForGuest(_ event: OneShot<ControlChannel.Event>, started: ContinuousClock.Instant) async throws(LaunchError) {
        let limit = machine.profile.timeouts.boot
        switch await firstEvent(of: [event, control.bootError], within: limit.duration) {
        case .event(.message(.ready)):
            logger.debug("guest ready", metadata: ["guest.boot": .string(formatDuration(started.duration(to: .now)))])
            return
        case .event(.message(.parked)):
            return
        case .event(.message(.error(_, let message))):
            let shutdown = await end(grace: machine.profile.timeouts.shutdown.duration)
            throw LaunchError(.qemuFailed, "the guest could not be set up: \(message); the VM was stopped (\(shutdown.step))",
                              details: consoleDetails())
        case .event(_):
            throw GuestKit.endedEarly(await machine.waitForEndThroughCancellation(), while: "the guest booted", details: consoleDetails())
        case .timedOut:
            let silent = machine.console.tail.lines().allSatisfy { $0.trimmingCharacters(in: .whitespaces).isEmpty }
            let shutdown = await end(grace: .zero)
            if silent {
                throw LaunchError(.timeout, "the guest never started: no console output at all, and the guest kit's init did not report in within timeouts.boot (\(limit)); the VM was stopped (\(shutdown.step))",
                                  fix: "QEMU ran but the guest printed nothing: check the machine options and kernel for this QEMU (launch plan shows the argv), or boot with --verbose",
                                  details: ["  command: \(machine.qemu.commandLine)"])
            }
            throw LaunchError(.timeout, "the guest did not finish booting within timeouts.boot (\(limit)): the guest kit's init never reported in; the VM was stopped (\(shutdown.step))",
                              fix: "look at the console lines below; raise timeouts.boot if the guest is only slow",
                              details: consoleDetails())
        case .cancelled:
            await end(grace: .zero)
            throw LaunchError.cancelled("booting \(machine.profile.name); the VM was stopped")
        case .interrupted:
            let shutdown = await machine.shutdown()
            await end(grace: .zero)
            throw LaunchError(.interrupted, "interrupted while the guest booted; the VM was stopped (\(shutdown.step))")
        }
    }

    /// Runs `command` (an argv, looked up in the guest's PATH) and returns its result
    /// once all of its output is in.
    ///
    /// Throws `LaunchError`: `.timeout` when it runs past its timeout (it is killed and
    /// the session stays usable), `.cancelled` when the calling task is cancelled
    /// (likewise), `.guestPanic` when the kernel panics, `.interrupted` when the power
    /// button or Ctrl-C stopped it, `.qemuFailed` when the VM ended under it.
    public func run(_ command: [String], options: CommandOptions = CommandOptions()) async throws(LaunchError) -> CommandResult {
        guard !command.isEmpty else {
            throw LaunchError(.invalidProfile, "an empty command", fix: "give an argv like [\"uname\", \"-r\"]")
        }
        if let bad = options.environment.keys.first(where: { !SessionProtocol.isValidEnvironmentName($0) }) {
            throw LaunchError(.invalidProfile, "\"\(bad)\" is not an environment variable name the guest's shell can set",
                              fix: "use letters, digits and _, not starting with a digit")
        }
        try LaunchError.checkCancellation("running \(QEMUSyntax.shellLine(command))")
        guard let index = await acquireSlot() else {
            if Task.isCancelled { throw LaunchError.cancelled("waiting to run \(QEMUSyntax.shellLine(command))") }
            throw GuestKit.endedEarly(await machine.waitForEndThroughCancellation(), while: "waiting to run \(QEMUSyntax.shellLine(command))",
                                      details: consoleDetails())
        }
        var slotUsable = false
        defer { releaseSlot(index, usable: slotUsable) }
        let slot = slots[index]
        let started = ContinuousClock.now
        slot.output.begin(options.stdout)
        slot.error.begin(options.stderr)
        let framedStdin: Bool = if case .none = options.stdin { false } else { true }
        let report = control.expectReport(slot: index)
        let script: String
        if let root {
            // In the root filesystem: in_root changes to the working directory (the host's
            // cwd by default) and sets exactly the root's environment plus the command's.
            var environment = root.environment.filter { options.environment[$0.0] == nil }
            environment += options.environment.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            let argv = ["in_root", options.workingDirectory ?? root.workingDirectory]
                + environment.map { "\($0.0)=\($0.1)" } + ["--"] + command
            script = SessionProtocol.commandScript(argv, workingDirectory: nil, environment: [:], framedStdin: framedStdin)
        } else {
            script = SessionProtocol.commandScript(command, workingDirectory: options.workingDirectory,
                                                   environment: options.environment, framedStdin: framedStdin)
        }
        control.send(SessionProtocol.runMessage(slot: index, script: script))
        let stdin = framedStdin ? StdinPump(options.stdin, port: slot.input, threadName: "guest-\(index)-in") : nil
        let shown = QEMUSyntax.shellLine(command)

        let (limit, limitName): (Duration?, String) = switch options.timeout {
        case .fromProfile:
            if let run = machine.profile.timeouts.run { (run.duration, "timeouts.run") } else { (GuestKit.defaultCommandTimeout, "the default command timeout") }
        case .after(let duration): (duration, "the command's timeout")
        case .unlimited: (nil, "")
        }
        let outcome = await firstEvent(of: [report], within: limit)

        /// Waits for every byte the guest says the command wrote.
        func collect(_ report: SessionProtocol.Report) async -> Bool {
            stdin?.stop()
            let outComplete = await slot.output.waitForBytes(report.stdoutBytes, timeout: .seconds(30))
            let errComplete = await slot.error.waitForBytes(report.stderrBytes, timeout: .seconds(30))
            let complete = outComplete && errComplete
            if !complete {
                logger.error("output of \(shown) incomplete: stdout \(slot.output.count)/\(report.stdoutBytes) bytes, stderr \(slot.error.count)/\(report.stderrBytes) bytes")
            }
            _ = await stdin?.finished.wait()
            return complete
        }
        /// Kills the command's process group in the guest and waits (a little) for its report.
        func kill() async {
            control.send(SessionProtocol.signalMessage(slot: index, signal: "KILL"))
            let event = await report.waitThroughCancellation(timeout: .seconds(5))
            if case .message(.exit(_, let report))? = event {
                slotUsable = await Task { await collect(report) }.value
            } else if case .message(.error)? = event {
                stdin?.stop()
                slotUsable = true
            } else {
                logger.warning("the command \(shown) did not report after SIGKILL; its slot is no longer used")
            }
        }

        switch outcome {
        case .event(.message(.exit(_, let report))):
            slotUsable = await Task { await collect(report) }.value
            return CommandResult(exitCode: report.exitCode, stdout: slot.output.captured, stderr: slot.error.captured,
                                 duration: started.duration(to: .now))
        case .event(.message(.stopped(_, let report))):
            // Someone else pressed the power button (another QMP client, a host shutting
            // down): the init stopped the command, so its exit code says nothing about it.
            _ = await Task { await collect(report) }.value
            throw LaunchError(.interrupted, "the guest's power button was pressed (an ACPI power-off from outside this run, such as QMP system_powerdown on qmp.sock) while \(shown) ran; the guest stopped it (exit \(report.exitCode)) and is powering off")
        case .event(.message(.error(_, let message))):
            stdin?.stop()
            slotUsable = true
            throw LaunchError(.internalError, "the guest could not start \(shown): \(message)")
        case .event(_):
            stdin?.stop()
            throw GuestKit.endedEarly(await machine.waitForEndThroughCancellation(), while: "\(shown) ran", details: consoleDetails())
        case .timedOut:
            await kill()
            throw LaunchError(.timeout, "the command \(shown) ran past \(limitName) (\(formatDuration(limit!))); it was killed (SIGKILL to its process group)",
                              fix: "raise timeouts.run in the profile (or the command's timeout), or find out why the command hangs",
                              details: consoleDetails())
        case .cancelled:
            await kill()
            throw LaunchError.cancelled("running \(shown); it was killed in the guest")
        case .interrupted:
            logger.info("interrupted: stopping the VM")
            let shutdown = await machine.shutdown()
            throw LaunchError(.interrupted, "interrupted; the VM was stopped (\(shutdown.step))")
        }
    }

    /// Runs `script` with the guest's `sh -c`.
    public func run(shell script: String, options: CommandOptions = CommandOptions()) async throws(LaunchError) -> CommandResult {
        try await run(["sh", "-c", script], options: options)
    }

    /// Powers the guest off (it syncs and unmounts its shares first) and waits until
    /// everything the session opened is closed. Safe to call more than once; the
    /// scoped API calls it for you.
    @discardableResult
    func end(grace: Duration? = nil) async -> ShutdownOutcome {
        if let outcome = endOutcome.withLock({ $0 }) { return outcome }
        control.send(SessionProtocol.poweroffMessage)
        let outcome = await machine.shutdown(guestGrace: grace ?? machine.profile.timeouts.shutdown.duration,
                                             stepTimeout: .seconds(2), skipACPI: true)
        // QEMU is gone: every port reader sees EOF and closes its fd.
        await Task {
            _ = await control.closed.wait()
            for slot in slots {
                _ = await slot.output.closed.wait()
                _ = await slot.error.closed.wait()
            }
            await consoleSink?.value
        }.value
        for slot in slots { close(slot.input) }
        endOutcome.withLock { $0 = outcome }
        return outcome
    }

    /// What ended a wait for the guest: one of its reports (or its port closing), the
    /// deadline, the calling task's cancellation, or the interrupt (Ctrl-C).
    private enum Outcome: Sendable { case event(ControlChannel.Event), timedOut, cancelled, interrupted }

    /// Waits for the first of `events`, at most `limit` (nil: no limit); every loser is
    /// cancelled and awaited, so nothing outlives the call.
    private func firstEvent(of events: [OneShot<ControlChannel.Event>], within limit: Duration?) async -> Outcome {
        var racers: [@Sendable () async -> Outcome] = events.map { event in
            { await event.wait().map(Outcome.event) ?? .cancelled }
        }
        if let limit {
            let clock = machine.runClock
            racers.append {
                // Guest running time: a guest stopped (held for gdb, a breakpoint, QMP stop,
                // a memory dump) makes no progress, so it must not time out meanwhile.
                try? await clock.sleep(running: limit)
                return Task.isCancelled ? .cancelled : .timedOut
            }
        }
        if let interrupt {
            racers.append {
                await interrupt.wait()
                return Task.isCancelled ? .cancelled : .interrupted
            }
        }
        return await race(racers)
    }

    private func consoleDetails() -> [String] {
        GuestKit.consoleDetails(machine)
    }

    /// A free slot; nil when the task is cancelled or the VM has ended.
    private func acquireSlot() async -> Int? {
        let waiter = OneShot<Int?>()
        let now: Int?? = freeSlots.withLock { s in
            if !s.free.isEmpty { return .some(s.free.removeFirst()) }
            if control.isClosed { return .some(nil) }
            s.waiters.append(waiter)
            return .none
        }
        if case .some(let slot) = now { return slot }
        if let handed = await waiter.wait() { return handed }
        // Cancelled: give up the place in the queue. Settling the waiter first decides a
        // race with a release: a slot handed over at that very moment goes back.
        if waiter.resolve(nil) {
            freeSlots.withLock { s in s.waiters.removeAll { $0 === waiter } }
        } else if case .some(.some(let slot)) = waiter.current {
            releaseSlot(slot, usable: true)
        }
        return nil
    }

    private func releaseSlot(_ index: Int, usable: Bool) {
        if control.isClosed {
            // The VM ended: nobody gets a slot any more.
            let waiters = freeSlots.withLock { s in
                defer { s.waiters = [] }
                return s.waiters
            }
            for waiter in waiters { waiter.resolve(nil) }
            return
        }
        guard usable else { return }
        while true {
            let waiter: OneShot<Int?>? = freeSlots.withLock { s in
                if !s.waiters.isEmpty { return s.waiters.removeFirst() }
                s.free.append(index)
                return nil
            }
            // A waiter whose task was cancelled has settled itself: the slot goes to the next.
            guard let waiter, !waiter.resolve(index) else { return }
        }
    }
}
