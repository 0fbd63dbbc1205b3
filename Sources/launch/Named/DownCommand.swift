import ArgumentParser
import Foundation
import LaunchSupport
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// `launch down NAME [--force]`: stops a named VM through its supervisor and removes its record.
struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop a named VM (the shutdown ladder, ACPI first) and remove its record folder.",
        discussion: """
            Asks the VM's supervisor to stop it (SIGTERM: the ladder from the ACPI power \
            button, each step with the profile's timeouts.shutdown; --force: SIGUSR1, straight \
            to QMP quit, then SIGTERM and SIGKILL to QEMU), waits until the supervisor is gone, \
            prints how the VM ended and removes the record folder. A VM that already ended, or \
            a stale record (supervisor gone), is only cleaned up. Exit 0 when the VM is gone: \
            a clean stop (guest power-off or ACPI), or any stop with --force; 1 when the ladder \
            had to force it without --force; 66 for no VM of that name.
            """
    )

    @Argument(help: "The VM's name (see launch list).")
    var name: String

    @Flag(help: "Skip the ACPI step: QMP quit, then SIGTERM and SIGKILL.")
    var force = false

    func run() async throws {
        let registry = VMRegistry()
        let vm = try findNamed(name, in: registry)
        guard vm.supervisorIsAlive, let record = vm.record else {
            try? FileManager.default.removeItem(atPath: vm.folder)
            let what = vm.status == .stale ? "stale (its supervisor was gone)" : "\(vm.status.rawValue)\(vm.record?.end.map { ": \($0)" } ?? "")"
            print("\(name): \(what); record removed")
            return
        }
        let started = ContinuousClock.now
        // The lock is held, so the pid is the supervisor's (a dead one's lock would be free).
        kill(record.supervisorPid, force ? SIGUSR1 : SIGTERM)
        // Every ladder step may take timeouts.shutdown; a starting VM first stops booting.
        let step = Duration.seconds(max(record.shutdownStepSeconds, 1))
        let deadline = ContinuousClock.now + step * 4 + .seconds(30)
        while VMLock.isHeld(in: vm.folder) {
            if ContinuousClock.now >= deadline {
                // The supervisor's death takes QEMU with it (the parent-death signal).
                kill(record.supervisorPid, SIGKILL)
                try? await Task.sleep(for: .milliseconds(500))
                try? FileManager.default.removeItem(atPath: vm.folder)
                FileHandle.standardError.write(Data("launch: timeout: the supervisor of \(name) (pid \(record.supervisorPid)) did not end within \(formatDuration(started.duration(to: .now))); it was killed (SIGKILL), which kills its QEMU, and the record was removed\n".utf8))
                throw ExitCode(LaunchError.Code.timeout)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let final = NamedVM(name: name, folder: vm.folder).record
        try? FileManager.default.removeItem(atPath: vm.folder)
        let stepName = final?.shutdownStep
        let how = final?.end ?? "ended"
        print("\(name): \(how) (after \(formatDuration(started.duration(to: .now)))); record removed")
        let clean = stepName == nil || stepName == ShutdownStep.acpiPowerdown.rawValue || stepName == ShutdownStep.guestPoweroff.rawValue
            || stepName == ShutdownStep.alreadyExited.rawValue
        if !clean && !force {
            FileHandle.standardError.write(Data("launch: \(name) did not power off by itself: the ladder forced it at \(stepName!) (the guest may need a filesystem check on its next boot)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// The VM named `name`; prints why not and exits 66 (EX_NOINPUT) when there is none.
func findNamed(_ name: String, in registry: VMRegistry) throws -> NamedVM {
    do {
        return try registry.find(name)
    } catch {
        FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
        throw ExitCode(66)
    }
}
