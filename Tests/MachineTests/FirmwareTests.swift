import Foundation
import QEMULaunch
import Testing

@Suite("UEFI firmware with real QEMU (slow)")
struct FirmwareTests {
    /// A UEFI q35 guest under TCG (no kernel: OVMF sits in its boot manager), and the
    /// options that keep its state folder under `stateRoot`; requires OVMF.
    func uefiMachine(_ name: String, stateRoot: String) throws -> (Profile, Machine.Options) {
        try #require(HostProbe.current().firmware[.x86_64] != nil, "install ovmf (Scripts/install-deps does)")
        var profile = Profile(name: name)
        profile.machine = .q35
        profile.accel = .tcg
        profile.firmware = .uefi
        profile.memory = .mebibytes(256)
        profile.timeouts.boot = TimeLimit(.seconds(120))
        var options = Machine.Options()
        options.stateRoot = stateRoot
        return (profile, options)
    }

    @Test("a UEFI q35 VM starts with OVMF in pflash, and its variable store persists in the VM's state folder")
    func uefiStartsAndKeepsVars() async throws {
        let name = "uefi-test-\(getpid())"
        // A state root of its own: tests never write to the real home.
        let root = try Fixture.temporaryDirectory("st")
        defer { try? FileManager.default.removeItem(at: root) }
        let state = try VMStateFolder(vmName: name, root: root.path).path
        let (profile, options) = try uefiMachine(name, stateRoot: root.path)
        let host = HostProbe.current()
        let machine = try await Machine.start(profile, options: options)
        #expect(machine.plan.qemu.contains { $0.hasPrefix("if=pflash,format=raw,unit=0,readonly=on,file=") })
        #expect(FileManager.default.fileExists(atPath: state + "/efivars.fd"))
        let status = try await machine.qmp.queryStatus()
        #expect(status.status == "prelaunch")
        try await machine.resume()
        // OVMF runs (no kernel, no disk: it will sit in its boot manager); then stop it.
        try await Task.sleep(for: .seconds(2))
        #expect(try await machine.qmp.queryStatus().running)
        let outcome = await machine.shutdown(stepTimeout: .seconds(3), skipACPI: true)
        #expect(outcome.step == .qmpQuit)
        #expect(FileManager.default.fileExists(atPath: state + "/efivars.fd"), "the variable store outlives the run")

        // Persisting means the second run boots with the store as the first left it, not a
        // fresh copy of the template. Put a store there that no template copy could be (the
        // same firmware's other variable store, same size, other contents) and start again.
        let template = try #require(host.firmware[.x86_64]?.varsTemplate)
        let templateBytes = try Data(contentsOf: URL(fileURLWithPath: template))
        let others = try FileManager.default.contentsOfDirectory(atPath: "/usr/share/OVMF").map { "/usr/share/OVMF/" + $0 }
        let other = try #require(others.first { path in
            guard path.contains("VARS"), let bytes = FileManager.default.contents(atPath: path) else { return false }
            return bytes.count == templateBytes.count && bytes != templateBytes
        }, "no other OVMF variable store of the template's size")
        let kept = try Data(contentsOf: URL(fileURLWithPath: other))
        try kept.write(to: URL(fileURLWithPath: state + "/efivars.fd"))
        let second = try await Machine.start(profile, options: options)
        #expect(second.plan.qemu.contains { $0.hasSuffix("file=\(state)/efivars.fd") }, "QEMU's second pflash is the VM's store")
        #expect(FileManager.default.contents(atPath: state + "/efivars.fd") == kept, "the second run reset the variable store")
        try await second.resume()
        try await Task.sleep(for: .seconds(2))
        _ = await second.shutdown(stepTimeout: .seconds(3), skipACPI: true)
    }

    @Test("while a real QEMU runs a VM, `launch state --reset` and a second start refuse (QEMU's own locks), and reset works once it has stopped")
    func refusesWhileRunning() async throws {
        let name = "busy-\(getpid())"
        let xdg = try Fixture.temporaryDirectory("xdg")
        defer { try? FileManager.default.removeItem(at: xdg) }
        let root = xdg.path + "/qemu-launch"
        let (profile, options) = try uefiMachine(name, stateRoot: root)
        let machine = try await Machine.start(profile, options: options)
        try await machine.resume()
        // No lock of the test's own: only QEMU holds one, on the variable store it has open.
        let reset = try CLITests.launch(["state", "--name", name, "--reset"], environment: ["XDG_STATE_HOME": xdg.path])
        #expect(reset.status == 71, "\(reset.stderr)")
        #expect(reset.stderr.contains("VM \(name) seems to be running already"), "\(reset.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(root)/\(name)/efivars.fd"))
        do {
            _ = try await Machine.start(profile, options: options)
            Issue.record("a second run of a running VM started")
        } catch {
            #expect(error.code == .hostProblem)  // `launch` exits 71 (LaunchExitTests)
            #expect(error.message.contains("seems to be running already"))
        }
        _ = await machine.shutdown(stepTimeout: .seconds(3), skipACPI: true)
        let after = try CLITests.launch(["state", "--name", name, "--reset"], environment: ["XDG_STATE_HOME": xdg.path])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/\(name)"))
    }
}
