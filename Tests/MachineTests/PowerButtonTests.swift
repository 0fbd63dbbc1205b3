import Foundation
@testable import GuestKit
import QEMULaunch
import Testing

/// The guest kit's init powers off on the ACPI power button (QMP `system_powerdown`),
/// so the shutdown ladder ends at its ACPI step instead of waiting `timeouts.shutdown`
/// and then quitting QEMU.
@Suite("The power button in guest-kit guests (slow: boots the host kernel under TCG)", .serialized)
struct PowerButtonTests {
    /// Lines the guest command wrote to stdout so far.
    final class Output: Sendable {
        let text = Mutex("")
        func append(_ data: Data) { text.withLock { $0 += String(decoding: data, as: UTF8.self) } }

        /// Waits (up to 4 minutes: TCG, two cores, other suites booting) until `needle` appeared.
        func wait(for needle: String) async throws {
            for _ in 0..<2400 where !text.withLock({ $0.contains(needle) }) {
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(text.withLock { $0.contains(needle) }, "the guest never printed \(needle)")
        }
    }

    func profile(_ name: String, machine: Profile.MachineKind = .microvm, command: [String]?, folder: URL) throws -> Profile {
        var profile = try Fixture.guestProfile(name, command: command)
        profile.machine = machine
        profile.runtimeDir = folder.path
        // Long enough for a loaded host; the ACPI step itself takes well under a second.
        profile.timeouts.shutdown = TimeLimit(.seconds(15))
        return profile
    }

    func options(_ output: Output) -> GuestKit.Options {
        var options = GuestKit.Options()
        options.stdout = .handler { output.append($0) }
        return options
    }

    func expectNothingLeft(in folder: URL) {
        #expect(Fixture.processes(mentioning: folder.path).isEmpty, "QEMU or virtiofsd still running")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }
        #expect(left.isEmpty, "runtime dir left behind: \(left)")
    }

    @Test("Machine.shutdown() during a long command ends at the ACPI step; the init reports the command as stopped, not exited",
          arguments: [Profile.MachineKind.microvm, .q35])
    func shutdownDuringCommand(machine kind: Profile.MachineKind) async throws {
        let folder = try Fixture.temporaryDirectory("pb")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = Output()
        let profile = try profile("powerbutton", machine: kind, command: ["sh", "-c", "echo running; exec sleep 600"], folder: folder)
        let command = profile.command!
        try await GuestKit.withSession(profile, options: options(output)) { guest in
            async let run = guest.run(command, options: GuestKit.commandOptions(options(output)))
            try await output.wait(for: "running\n")
            let outcome = await guest.machine.shutdown()
            #expect(outcome.step == .acpiPowerdown, "the ladder ended at \(outcome)")
            #expect(guest.machine.end == .stopped(.acpiPowerdown))
            // SIGTERM ended sleep: 128 + 15, reported as "stopped", never as the command's own exit.
            do {
                let result = try await run
                Issue.record("a command the power button stopped returned a result: exit \(result.exitCode)")
            } catch let error as LaunchError {
                #expect(error.code == .interrupted)
                #expect(error.message.contains("exit 143"), "\(error.message)")
            }
            #expect(guest.machine.console.tail.lines().contains { $0.contains("power button: sent SIGTERM to slot0") })
        }
        expectNothingLeft(in: folder)
    }

    @Test("Machine.shutdown() of the console shell (launch run without a command) ends at the ACPI step")
    func shutdownConsoleShell() async throws {
        let folder = try Fixture.temporaryDirectory("pbc")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try profile("powerbutton-shell", command: nil, folder: folder)
        let machine = try await GuestKit.startInteractive(profile, options: GuestKit.Options())
        for _ in 0..<2400 where !machine.console.tail.lines().contains(where: { $0.contains("starting a shell on the console") }) {
            try await Task.sleep(for: .milliseconds(100))
        }
        let outcome = await machine.shutdown()
        #expect(outcome.step == .acpiPowerdown, "the ladder ended at \(outcome)")
        #expect(machine.console.tail.lines().contains { $0.contains("power button: sent SIGHUP to console") })
        expectNothingLeft(in: folder)
    }

    @Test("Ctrl-C (GuestKit.Options.interrupt) during GuestKit.run stops the VM at the ACPI step")
    func interruptedRun() async throws {
        let folder = try Fixture.temporaryDirectory("pbi")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = Output()
        let profile = try profile("powerbutton-int", command: ["sh", "-c", "echo running; sleep 600"], folder: folder)
        var options = options(output)
        let interrupt = Interrupt()
        options.interrupt = interrupt
        let run = Task { try await GuestKit.run(profile, options: options) }
        try await output.wait(for: "running\n")
        interrupt.trigger()
        do {
            let result = try await run.value
            Issue.record("an interrupted run returned a result: exit \(result.exitCode)")
        } catch let error as LaunchError {
            #expect(error.code == .interrupted)
            #expect(error.message.contains("(acpi-powerdown)"), "\(error.message)")
        }
        expectNothingLeft(in: folder)
    }

    @Test("a power-button press from outside the run is an interrupted error, even when the command exits 0 on SIGTERM")
    func outsidePressIsNotSuccess() async throws {
        let folder = try Fixture.temporaryDirectory("pbo")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = Output()
        let command = ["sh", "-c", "trap 'echo cleaned-up; exit 0' TERM; echo running; while :; do sleep 1; done"]
        let profile = try profile("powerbutton-out", command: command, folder: folder)
        let options = options(output)
        let end = try await GuestKit.withSession(profile, options: options) { guest in
            async let run = guest.run(command, options: GuestKit.commandOptions(options))
            try await output.wait(for: "running\n")
            // What another QMP client (qmp.sock) or a host shutting down would send.
            try await guest.machine.qmp.systemPowerdown()
            do {
                let result = try await run
                Issue.record("a run stopped by the power button returned a result: exit \(result.exitCode)")
            } catch let error as LaunchError {
                #expect(error.code == .interrupted)
                #expect(error.message.contains("power button"), "\(error.message)")
                #expect(error.message.contains("exit 0"), "\(error.message)")
            }
            return guest.machine
        }.waitForEndThroughCancellation()
        // The command's SIGTERM handler ran and its output arrived before the VM went.
        #expect(output.text.withLock { $0.contains("cleaned-up\n") })
        #expect(end == .poweredOff)
        expectNothingLeft(in: folder)
    }

    @Test("power-button modules the kernel lacks are left out and listed; the image still builds")
    func missingButtonModules() throws {
        let release = try Fixture.temporaryDirectory("pbm")
        defer { try? FileManager.default.removeItem(at: release) }
        // A kernel with button as a module, virtio_mmio built in, and no evdev at all.
        let button = release.appendingPathComponent("kernel/drivers/acpi/button.ko")
        try FileManager.default.createDirectory(at: button.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("not really a module".utf8).write(to: button)
        try Data("kernel/drivers/acpi/button.ko:\n".utf8).write(to: release.appendingPathComponent("modules.dep"))
        try Data("kernel/drivers/virtio/virtio_mmio.ko\n".utf8).write(to: release.appendingPathComponent("modules.builtin"))

        let image = try InitramfsBuilder.image(busybox: "/bin/busybox", arch: .x86_64, modulesDirectory: release,
                                               bootModules: ["virtio_mmio"], laterModules: [],
                                               powerButtonModules: ["button", "evdev"])
        defer { try? FileManager.default.removeItem(at: image.url) }
        #expect(image.powerButtonModules == ["button"])
        #expect(image.missingOptional == ["evdev"])
        #expect(image.builtin == ["virtio_mmio"])
        #expect(image.bootModules.isEmpty)
    }
}

@Suite("The power button in an aarch64 guest (slow: emulated virt machine)", .enabled(if: arm64GuestReady))
struct Arm64PowerButtonTests {
    @Test("on aarch64 virt the button arrives through PL061 GPIO and gpio_keys; Machine.shutdown() ends at the ACPI step")
    func arm64Shutdown() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = try Fixture.temporaryDirectory("pba")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Profile.load(contentsOf: root.appendingPathComponent("Profiles/arm64.json"))
        profile.command = ["sh", "-c", "echo running; exec sleep 600"]
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(180))
        profile.timeouts.run = TimeLimit(.seconds(240))
        profile.timeouts.shutdown = TimeLimit(.seconds(15))
        let output = PowerButtonTests.Output()
        var options = GuestKit.Options()
        options.stdout = .handler { output.append($0) }
        let command = profile.command!, commandOptions = GuestKit.commandOptions(options)
        try await GuestKit.withSession(profile, options: options) { guest in
            async let run = guest.run(command, options: commandOptions)
            try await output.wait(for: "running\n")
            let outcome = await guest.machine.shutdown()
            #expect(outcome.step == .acpiPowerdown, "the ladder ended at \(outcome)")
            do {
                _ = try await run
                Issue.record("a command the power button stopped returned a result")
            } catch {}
        }
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }
}
