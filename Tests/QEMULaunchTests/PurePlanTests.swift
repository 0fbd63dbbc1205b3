import Foundation
import Testing

@testable import QEMULaunch

/// A profile whose every host path is somewhere this host has nothing.
private func nowhereProfile() -> Profile {
    var p = Profile(name: "pure")
    p.kernel = "/nonexistent/pure/vmlinuz"
    p.initrd = "/nonexistent/pure/initrd.img"
    p.shares = [Profile.Share(tag: "src", path: "/nonexistent/pure/src", transport: .ninep)]
    p.disks = [Profile.Disk(path: "/nonexistent/pure/disk.img")]
    return p
}

/// What the host would have at those paths, said by hand.
private let nowhereFiles = HostFiles(kinds: [
    "/nonexistent/pure/vmlinuz": .file,
    "/nonexistent/pure/initrd.img": .file,
    "/nonexistent/pure/src": .directory,
    "/nonexistent/pure/disk.img": .file,
])

@Suite("The plan is a pure function of the prepared facts: it reads nothing from the host")
struct PurePlanTests {
    @Test("facts built by hand for paths that don't exist here plan, and the argv names those paths")
    func plansFromFactsAlone() throws {
        let facts = LaunchFacts(profile: nowhereProfile(), host: Hosts.x86TCG, files: nowhereFiles)
        let plan = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.qemu.contains("/nonexistent/pure/vmlinuz"))
        #expect(plan.qemu.contains("/nonexistent/pure/initrd.img"))
        #expect(plan.qemu.contains { $0.hasPrefix("local,id=p9fs0,path=/nonexistent/pure/src,") })
        #expect(plan.qemu.contains { $0.hasPrefix("file=/nonexistent/pure/disk.img,") })
        #expect(plan.runtimeDir == goldenRuntimeDir)
    }

    @Test("the same profile with facts that say nothing is there lists each path, as the validator words it")
    func missingFilesComeFromTheFacts() {
        let facts = LaunchFacts(profile: nowhereProfile(), host: Hosts.x86TCG, files: HostFiles())
        #expect(throws: ProfileProblems.self) { try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir)) }
        do {
            _ = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        } catch {
            #expect(error.problems.map(\.path) == ["kernel", "initrd", "shares[0].path", "disks[0].path"])
        }
    }

    @Test("planning the same facts twice gives the same plan (nothing read in between changes it)")
    func deterministic() throws {
        let facts = LaunchFacts(profile: nowhereProfile(), host: Hosts.x86KVM, files: nowhereFiles)
        let options = PlanOptions(runtimeDir: goldenRuntimeDir, guestPorts: sessionPorts)
        #expect(try Planner.plan(facts, options: options) == Planner.plan(facts, options: options))
    }

    @Test("a disk image's arch is the one the facts record, not what a file on this host says")
    func diskArchFromTheFacts() {
        var files = nowhereFiles
        files.diskImages["/nonexistent/pure/disk.img"] = .partitions([DiskArch.Partition(
            number: 2, name: "root", typeGUID: "b921b045-1df0-41c3-af44-4c6f280d3fae", role: .root, arch: .aarch64)])
        let facts = LaunchFacts(profile: nowhereProfile(), host: Hosts.x86TCG, files: files)
        do {
            _ = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
            Issue.record("an arm64 disk for an x86_64 guest planned")
        } catch {
            #expect(error.problems.map(\.path) == ["disks[0].path"])
            #expect(error.problems.first?.message.contains("made for aarch64") == true)
        }
    }

    @Test("the QEMU binary's capabilities in the facts are checked by the plan: a missing device is a profile problem")
    func capabilitiesJoinTheProblems() throws {
        var facts = LaunchFacts(profile: nowhereProfile(), host: Hosts.x86TCG, files: nowhereFiles)
        let full = try #require(Hosts.x86TCG.qemu[.x86_64]?.capabilities)
        facts.capabilities = full
        _ = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        var lacking = full
        lacking.devices.remove("virtio-9p-device")
        facts.capabilities = lacking
        do {
            _ = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
            Issue.record("a plan needing a device the binary lacks was made")
        } catch {
            #expect(error.problems.map(\.message) == ["/usr/local/bin/qemu-system-x86_64 has no device virtio-9p-device"])
        }
    }
}
