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

    /// The store's bytes once they differ from `before`, polling while OVMF runs; nil if
    /// they never do (a hang guard for TCG on a loaded host, not a timing claim).
    func storeChanged(_ path: String, from before: Data?, seconds: Int = 240) async throws -> Data? {
        for _ in 0..<(seconds * 5) {
            if let now = FileManager.default.contents(atPath: path), now != before { return now }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    @Test("a UEFI q35 VM starts with OVMF in pflash; the variables OVMF writes in one run are what the next run starts with")
    func uefiStartsAndKeepsVars() async throws {
        let name = "uefi-test-\(getpid())"
        // A state root of its own: tests never write to the real home.
        let root = try Fixture.temporaryDirectory("st")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = try VMStateFolder(vmName: name, root: root.path).path + "/efivars.fd"
        let (profile, options) = try uefiMachine(name, stateRoot: root.path)
        let template = try #require(HostProbe.current().firmware[.x86_64]?.varsTemplate)
        let templateBytes = try Data(contentsOf: URL(fileURLWithPath: template))

        let machine = try await Machine.start(profile, options: options)
        #expect(machine.plan.qemu.contains { $0.hasPrefix("if=pflash,format=raw,unit=0,readonly=on,file=") })
        #expect(machine.plan.qemu.contains { $0.hasSuffix("file=\(store)") }, "QEMU's second pflash is the VM's store")
        #expect(FileManager.default.contents(atPath: store) == templateBytes, "a new store is a copy of the template")
        #expect(try await machine.qmp.queryStatus().status == "prelaunch")
        try await machine.resume()
        // OVMF writes variables on every boot (its boot options, the monotonic counter), through
        // QEMU's pflash, into the store itself: no kernel, no disk, it ends in its boot manager.
        let afterFirst = try await storeChanged(store, from: templateBytes)
        #expect(afterFirst != nil, "OVMF never wrote the VM's variable store")
        let outcome = await machine.shutdown(stepTimeout: .seconds(3), skipACPI: true)
        #expect(outcome.step == .qmpQuit)
        let kept = try #require(FileManager.default.contents(atPath: store), "the variable store did not outlive the run")

        // The second run starts with the store as the first left it, not a fresh template copy.
        let second = try await Machine.start(profile, options: options)
        #expect(FileManager.default.contents(atPath: store) == kept, "the second run reset the variable store")
        #expect(kept != templateBytes)
        try await second.resume()
        #expect(try await storeChanged(store, from: kept) != nil, "OVMF never wrote the store in the second run")
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
