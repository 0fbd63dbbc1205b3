import Foundation
import QEMULaunch
import Testing

/// Machine.prepare on this host (probes QEMU; boots nothing).
@Suite("Preparing a launch reads the host and makes nothing; starting makes things only once the plan holds")
struct PrepareTests {
    /// A profile that keeps state (a persistent overlay over a small raw image in `folder`).
    func statefulProfile(in folder: URL) throws -> Profile {
        let base = folder.appendingPathComponent("base.img")
        try Data(count: 1 << 20).write(to: base)
        var profile = try Fixture.guestProfile("prepare-\(UUID().uuidString.prefix(8).lowercased())", command: nil)
        profile.runtimeDir = folder.path
        profile.disks = [Profile.Disk(path: base.path, overlay: .persistent)]
        return profile
    }

    func entries(_ path: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    }

    @Test("a preview plans a VM that keeps state without making its state folder, its identity or its runtime dir")
    func previewMakesNothing() async throws {
        let folder = try Fixture.temporaryDirectory("prep")
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateRoot = folder.appendingPathComponent("state").path
        var options = Machine.Options()
        options.stateRoot = stateRoot
        let prepared = try await Machine.prepare(try statefulProfile(in: folder), options: options, for: .preview)
        #expect(prepared.identityIsNew)
        #expect(!prepared.plan.qemu.contains("-uuid"))
        #expect(!prepared.plan.qemu.contains { $0.contains("fd=3") })
        #expect(prepared.plan.runtimeDir.hasPrefix(folder.path + "/launch-"))
        #expect(prepared.plan.persistentOverlays.map(\.path) == [prepared.stateFolder!.path + "/disk0.qcow2"])
        #expect(!FileManager.default.fileExists(atPath: stateRoot))
        #expect(entries(folder.path).sorted() == ["base.img"])
    }

    @Test("a profile the planner refuses (an accelerator this host lacks) leaves no state folder and no runtime dir behind")
    func refusedStartLeavesNothing() async throws {
        let folder = try Fixture.temporaryDirectory("prep")
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateRoot = folder.appendingPathComponent("state").path
        var profile = try statefulProfile(in: folder)
        profile.accel = .hvf
        var options = Machine.Options()
        options.stateRoot = stateRoot
        do {
            _ = try await Machine.start(profile, options: options)
            Issue.record("a profile asking for HVF on Linux started")
        } catch {
            #expect(error.code == .invalidProfile)
            #expect(error.problems?.problems.map(\.path) == ["accel"])
        }
        #expect(!FileManager.default.fileExists(atPath: stateRoot))
        #expect(entries(folder.path).sorted() == ["base.img"])
    }
}
