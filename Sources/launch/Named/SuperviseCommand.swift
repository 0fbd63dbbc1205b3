import ArgumentParser
import Foundation
import GuestKit
import LaunchSupport
import Logging
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The supervisor of one named VM (`launch up` starts it; hidden from help): owns QEMU and
/// virtiofsd as `launch run` does, keeps the record folder's lock for its whole life, writes
/// `record.json` at every change of state, and runs the shutdown ladder on SIGTERM (ACPI
/// first) or SIGUSR1 (`down --force`: straight to QMP quit). Its stdout and stderr are
/// `supervisor.log`; it runs in a session of its own, so no terminal's signals reach it.
struct SuperviseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_supervise", abstract: "The supervisor of a named VM (started by launch up).",
        shouldDisplay: false)

    @Argument var profile: String
    @Option var name: String
    @Option var registry: String
    @OptionGroup var overrides: ProfileOverrides

    func run() async throws {
        let logger = makeLogger(verbose: false, quiet: false)
        let folder = VMRegistry(root: registry).folder(of: name)
        let stop = OneShot<Bool>()
        // SIGTERM/SIGINT: the ladder from ACPI on; SIGUSR1: forced (quit, then signals). SIGHUP
        // is ignored: the supervisor has no terminal, and a closing one must not end the VM.
        signal(SIGHUP, SIG_IGN)
        let sources = [(SIGTERM, false), (SIGINT, false), (SIGUSR1, true)].map { sig, force in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.resolve(force) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }

        var profile = try launch.loadProfile(profile)
        profile.name = name
        do {
            try overrides.apply(to: &profile)
        } catch {
            FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
            throw ExitCode(LaunchError.Code.invalidProfile)
        }
        let record = RecordWriter(path: folder + "/record.json", record: VMRecord(
            name: name, profile: absolutePath(self.profile), supervisorPid: getpid(), startedAt: Date(),
            memoryMiB: profile.memory.mebibytes,
            forwards: profile.network.forwards.map { VMRecord.Forward(address: $0.address, host: $0.host, guest: $0.guest, proto: $0.proto.rawValue) },
            stateFolder: VMStateFolder.keepsState(profile) ? (try? VMStateFolder(vmName: name).path) : nil,
            ssh: nil, shutdownStepSeconds: Double(profile.timeouts.shutdown.duration.components.seconds)))
        record.update { $0.guestSession = GuestKitUse.runsSession(profile) }
        if let ssh = profile.ssh, let forward = profile.forward(toGuestPort: ssh.port) {
            var identity = ssh.key
            if identity == nil {
                do {
                    // A VM that keeps state (a persistent disk, UEFI variables) keeps its key there
                    // too, so each `up` logs in with the key its disk already trusts; otherwise the
                    // key lives and goes with the record folder.
                    let keyFolder = VMStateFolder.keepsState(profile) ? ((try? VMStateFolder(vmName: name).path) ?? folder) : folder
                    let key = try await SSHKey.existingOrNew(in: keyFolder, comment: "launch-\(name)")
                    profile = SSHKey.injecting(publicKey: key.publicKey, into: profile)
                    identity = SSHKey.privateKeyPath(in: keyFolder)
                    logger.info("ssh: \(key.made ? "a new" : "the") per-VM key for root (\(identity!)), injected as the SMBIOS credential ssh.authorized_keys.root")
                } catch {
                    record.update { $0.state = .crashed; $0.end = error.message }
                    throw fail(error)
                }
            }
            record.update {
                $0.ssh = VMRecord.SSH(hostPort: forward.host, address: forward.address, user: ssh.user,
                                      identityFile: identity!, knownHostsFile: SSHKey.knownHostsPath(in: folder))
            }
        }
        logger.info("supervisor of VM \(name) (pid \(getpid())), record folder \(folder)")

        var options = overrides.guestOptions(logger: logger)
        options.runtimeDirectory = folder
        // The record folder is the runtime dir: `launch down` removes it once the VM is gone.
        options.keepRuntimeDir = true
        let outcome = Mutex<(machine: Machine?, step: ShutdownStep?)>((nil, nil))

        // Called once the VM is ready; returns when it ended or a stop was asked for (and done).
        @Sendable func supervise(_ machine: Machine, session: GuestSession?) async throws(LaunchError) {
            outcome.withLock { $0.machine = machine }
            // Served before the record says running, so `up` returns with both in place:
            // console.sock for `launch console` (many clients), exec.sock for `launch exec`.
            let hub: ConsoleHub
            let exec: ExecServer?
            do throws(LaunchError) {
                // QEMU's serial chardev listens at the same name (the plan's sockets.console) but
                // serves one client, which the supervisor already is: the hub takes the name over.
                if machine.plan.sockets.console == folder + "/console.sock" { unlink(machine.plan.sockets.console) }
                hub = try ConsoleHub.serve(console: machine.console, socketPath: folder + "/console.sock")
                do throws(LaunchError) {
                    exec = try session.map { s throws(LaunchError) in try ExecServer.serve(session: s, socketPath: folder + "/exec.sock", logger: logger) }
                } catch {
                    await hub.stop()
                    throw error
                }
            } catch {
                await machine.shutdown(stepTimeout: .seconds(5))
                throw error
            }
            record.update {
                $0.qemuPid = machine.qemu.pid
                $0.state = .running
                $0.readyAt = Date()
            }
            logger.info("VM \(name) is ready (QEMU pid \(machine.qemu.pid))")
            let force = await race([
                { @Sendable () async -> Bool? in _ = await machine.waitForEndUnlessCancelled(); return nil },
                { @Sendable () async -> Bool? in await stop.wait() },
            ])
            // Running commands are cancelled (killed in the guest, their clients told) first.
            await exec?.stop()
            guard let force else {
                _ = await machine.waitForEndThroughCancellation()
                await hub.stop()
                return
            }
            record.update { $0.state = .stopping }
            logger.info("stopping VM \(name) (\(force ? "forced: QMP quit" : "shutdown ladder, ACPI first"))")
            let result = await machine.shutdown(skipACPI: force)
            logger.info("shutdown: \(result)")
            outcome.withLock { $0.step = result.step }
            // The console hub's clients read along until QEMU's last words.
            await hub.stop()
        }

        let failure: LaunchError?
        // A guest-kit VM kept up is also used by hand: `launch console` gets a shell prompt.
        options.consoleShell = true
        let (profileToRun, optionsToRun) = (profile, options)
        do {
            if GuestKitUse.runsSession(profile) {
                try await withTaskCancellationOnStop(stop, unlessReady: { outcome.withLock { $0.machine != nil } }) {
                    try await GuestKit.withSession(profileToRun, options: optionsToRun) { session in
                        try await supervise(session.machine, session: session)
                    }
                }
            } else {
                let machine = try await withTaskCancellationOnStop(stop, unlessReady: { outcome.withLock { $0.machine != nil } }) {
                    let machine = try await GuestKit.startInteractive(profileToRun, options: optionsToRun)
                    guard let readiness = profileToRun.effectiveReadiness else { return machine }
                    logger.info("waiting until the VM is up: \(readiness)")
                    do {
                        try await ReadinessProbe.wait(for: readiness, on: machine, deadline: profileToRun.timeouts.boot.duration)
                    } catch {
                        await machine.shutdown(stepTimeout: .seconds(5))
                        throw error
                    }
                    return machine
                }
                do {
                    try await supervise(machine, session: nil)
                } catch {
                    _ = await machine.waitForEndThroughCancellation()
                    throw error
                }
                _ = await machine.waitForEndThroughCancellation()
            }
            failure = nil
        } catch let error as LaunchError {
            failure = error
        } catch {
            failure = LaunchError(.internalError, "\(error)")
        }

        let (machine, step) = outcome.withLock { ($0.machine, $0.step) }
        let end = machine?.end
        record.update { r in
            r.shutdownStep = step?.rawValue
            if let failure {
                r.state = .crashed
                r.end = failure.message
            } else if let end {
                r.end = end.description
                switch end {
                case .poweredOff, .stopped: r.state = .stopped
                default: r.state = .crashed
                }
            } else {
                r.state = .stopped
                r.end = "stopped before it was ready"
            }
        }
        logger.info("VM \(name) ended: \(record.current.end ?? "")")
        if let failure { throw fail(failure) }
    }
}

/// Which kind of VM a profile boots, for the supervisor.
enum GuestKitUse {
    /// A guest-kit profile (a kernel and no initrd of its own): the supervisor keeps a guest
    /// session open, and the VM is up when the init reports in.
    static func runsSession(_ profile: Profile) -> Bool {
        profile.kernel != nil && profile.initrd == nil
    }
}

/// Runs `body`, cancelled when `stop` fires first (a `down` while the VM still boots:
/// the library then stops what it started).
func withTaskCancellationOnStop<T: Sendable>(_ stop: OneShot<Bool>, unlessReady isReady: @escaping @Sendable () -> Bool,
                                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let work = Task { try await body() }
    let watcher = Task {
        _ = await stop.wait()
        // Once ready, a stop is the supervisor's own ladder, not a cancellation.
        if !Task.isCancelled, !isReady() { work.cancel() }
    }
    defer { watcher.cancel() }
    return try await work.value
}

/// `record.json`, rewritten whole at every change.
final class RecordWriter: Sendable {
    let path: String
    private let state: Mutex<VMRecord>

    init(path: String, record: VMRecord) {
        self.path = path
        state = Mutex(record)
    }

    var current: VMRecord { state.withLock { $0 } }

    func update(_ change: (inout VMRecord) -> Void) {
        state.withLock { change(&$0) }
        write()
    }

    func write() {
        let record = current
        do {
            try AtomicFile.write(record.jsonData(), to: path, mode: 0o600)
        } catch {
            FileHandle.standardError.write(Data("launch: cannot write \(path): \(error)\n".utf8))
        }
    }
}
