import ArgumentParser
import Foundation
import LaunchSupport
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// `launch up PROFILE [--name NAME]`: starts a named VM under a supervisor of its own and
/// returns once it is ready.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a named VM in the background and return once it is up.",
        discussion: """
            A supervisor process of its own (not a daemon: one per VM, in its own session) \
            owns QEMU and virtiofsd; if it dies they die too. A guest-kit profile is up when \
            its init reports in; your own OS when the profile's "ready" says so. Its record \
            folder ($XDG_RUNTIME_DIR/qemu-launch/vms/NAME) holds record.json, supervisor.log, \
            console.log and the sockets. Reach it with launch list, qmp, exec, console, ssh; stop it with launch down.
            """
    )

    @Argument(help: "The profile (a JSON file).")
    var profile: String

    @Option(help: "The VM's name (default: the profile's name): one VM per name.")
    var name: String?

    @OptionGroup var overrides: ProfileOverrides

    func run() async throws {
        _ = makeLogger(verbose: false, quiet: false)
        let profileValue = try await overrides.loadProfile(profile)
        let name = self.name ?? profileValue.name
        guard ProfileValidator.isUsableVMName(name) else {
            FileHandle.standardError.write(Data("launch: \"\(name)\" is not a usable VM name: use 1-64 letters, digits, '.', '_' or '-'\n".utf8))
            throw ExitCode(LaunchError.Code.invalidProfile)
        }
        if let command = profileValue.command {
            // Not silently dropped: a named VM runs until `down`, its commands come from `exec`.
            FileHandle.standardError.write(Data("launch: the profile's command (\(command.joined(separator: " "))) is not run by up; run it with launch exec \(name) -- ...\n".utf8))
        }
        let registry = VMRegistry()
        let started = ContinuousClock.now
        let (folder, lock) = try await withFailureMapping { try registry.claim(name) }
        let argv = [selfExecutable(), "_supervise", absolutePath(profile), "--name", name, "--registry", registry.root] + overrides.arguments
        let pid: pid_t
        do {
            pid = try SupervisorProcess.spawnDetached(argv: argv, environment: ProcessInfo.processInfo.environment,
                                                      logPath: folder + "/supervisor.log", lock: lock)
        } catch {
            lock.release()
            try? FileManager.default.removeItem(atPath: folder)
            throw fail(error)
        }
        // The supervisor holds the lock now (its inherited fd); this process's copy goes.
        lock.release()

        // Its boot has its own deadlines (timeouts.boot, the readiness's); this one only
        // bounds a supervisor that hangs before it: preparation (initramfs, kernel) included.
        let deadline = ContinuousClock.now + profileValue.timeouts.boot.duration + .seconds(300)
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            let vm = NamedVM(name: name, folder: folder)
            if let record = vm.record, record.state == .running {
                printReachability(vm, record: record, after: started.duration(to: .now))
                return
            }
            if reaped == pid {
                let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                guard FileManager.default.fileExists(atPath: folder) else {
                    // `launch down` removes the record folder once the supervisor is gone.
                    FileHandle.standardError.write(Data("launch: VM \(name) was stopped (launch down) before it was up\n".utf8))
                    throw ExitCode(code == 0 ? LaunchExit.interrupted : code)
                }
                let why = vm.record?.end.map { ": \($0)" } ?? ""
                var text = "launch: VM \(name) did not come up\(why)\n  the supervisor's log (\(vm.supervisorLog)):\n"
                text += vm.tail(of: vm.supervisorLog, last: 20).map { "    \($0)\n" }.joined()
                let console = vm.tail(of: vm.consoleLog, last: 10)
                if !console.isEmpty { text += "  the console's last lines:\n" + console.map { "    \($0)\n" }.joined() }
                FileHandle.standardError.write(Data(text.utf8))
                try? FileManager.default.removeItem(atPath: folder)
                throw ExitCode(code == 0 ? LaunchExit.internalError : code)
            }
            if ContinuousClock.now >= deadline {
                kill(pid, SIGTERM)
                FileHandle.standardError.write(Data("launch: timeout: VM \(name) was not up \(formatDuration(started.duration(to: .now))) after launch up; it is being stopped (see \(vm.supervisorLog))\n".utf8))
                throw ExitCode(LaunchError.Code.timeout)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    private func printReachability(_ vm: NamedVM, record: VMRecord, after: Duration) {
        var lines = ["\(vm.name) is up after \(formatDuration(after)) (supervisor pid \(record.supervisorPid), QEMU pid \(record.qemuPid.map(String.init) ?? "?"))"]
        lines.append("  console:  launch console \(vm.name)    (log: \(vm.consoleLog))")
        if record.guestSession { lines.append("  exec:     launch exec \(vm.name) -- CMD") }
        if record.ssh != nil { lines.append("  ssh:      launch ssh \(vm.name)") }
        for forward in record.forwards { lines.append("  forward:  \(forward.address):\(forward.host) -> guest \(forward.proto)/\(forward.guest)") }
        lines.append("  qmp:      launch qmp \(vm.name) '{\"execute\":\"query-status\"}'")
        lines.append("  stop:     launch down \(vm.name)")
        print(lines.joined(separator: "\n"))
    }
}

/// This program's own executable, for re-executing itself as the supervisor.
func selfExecutable() -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    return Bundle.main.executablePath ?? CommandLine.arguments[0]
}
