import Foundation
import Testing

@testable import QEMULaunch

@Suite("QEMU capabilities: a plan is checked against what the binary can do")
struct CapabilitiesTests {
    func ninepPlan() throws -> Plan {
        var p = Profile(name: "caps")
        p.machine = .q35
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src", transport: .ninep)]
        return try Planner.plan(p, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: goldenRuntimeDir))
    }

    @Test("9p asked for on a QEMU built without virtfs is a problem at shares, saying which builds have it")
    func missingNinep() throws {
        #expect(GoldenFiles.ready)
        let plan = try ninepPlan()
        let devices: Set<String> = ["virtio-serial-pci", "virtserialport", "virtio-rng-pci", "pvpanic", "virtio-blk-pci"]
        let caps = QEMUCapabilities(version: "QEMU 9.0 (no virtfs)", machines: ["q35", "pc", "microvm"], devices: devices, accelerators: ["tcg", "kvm"])
        let problems = caps.problems(with: plan, binary: "/opt/qemu/bin/qemu-system-x86_64")
        #expect(problems.map(\.path) == ["shares"])
        #expect(problems.first?.message == "/opt/qemu/bin/qemu-system-x86_64 has no device virtio-9p-pci")
        #expect(problems.first?.fix?.contains("built without virtfs") == true)
    }

    @Test("a machine or accelerator the binary lacks is a problem at its key")
    func missingMachineAndAccel() throws {
        #expect(GoldenFiles.ready)
        let plan = try ninepPlan()
        let caps = QEMUCapabilities(version: "QEMU", machines: ["pc"], devices: ["virtio-9p-pci", "virtio-rng-pci", "pvpanic"], accelerators: ["kvm"])
        let problems = caps.problems(with: plan, binary: "qemu")
        #expect(problems.map(\.path) == ["machine", "accel"])
    }

    @Test("a qemu.binary for another arch is named as such, with the binary to use")
    func binaryOfAnotherArch() throws {
        #expect(GoldenFiles.ready)
        let plan = try ninepPlan()
        let arm = QEMUCapabilities(version: "QEMU 7.2", machines: ["virt", "raspi3b", "none"], devices: ["virtio-9p-pci"], accelerators: ["tcg"])
        #expect(arm.targetFamily == "arm")
        let problems = arm.problems(with: plan, binary: "/usr/bin/qemu-system-aarch64")
        #expect(problems.first?.path == "qemu.binary")
        #expect(problems.first?.message == "/usr/bin/qemu-system-aarch64 emulates arm guests (it has the machines virt, raspi3b), and this is an x86_64 guest")
        #expect(problems.first?.fix?.contains("qemu-system-x86_64 (Debian package qemu-system-x86)") == true)
        // A binary whose machines say nothing about its arch keeps the plain message.
        let odd = QEMUCapabilities(version: "QEMU", machines: ["none"], devices: [], accelerators: ["tcg"])
        #expect(odd.targetFamily == nil)
        #expect(odd.problems(with: plan, binary: "qemu").first?.path == "machine")
    }

    @Test("the real qemu-system-aarch64 given for an x86 plan is caught as the wrong arch's binary",
          .enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/qemu-system-aarch64")))
    func realBinaryOfAnotherArch() async throws {
        #expect(GoldenFiles.ready)
        let caps = try await QEMUCapabilities.of("/usr/bin/qemu-system-aarch64")
        #expect(caps.targetFamily == "arm")
        let problems = caps.problems(with: try ninepPlan(), binary: "/usr/bin/qemu-system-aarch64")
        #expect(problems.first?.path == "qemu.binary")
    }

    @Test("help output is parsed: machine names, device names and aliases, accelerators")
    func parsing() {
        #expect(QEMUCapabilities.parseMachines("Supported machines are:\nmicrovm              microvm (i386)\npc                   Standard PC\n") == ["microvm", "pc"])
        let devices = QEMUCapabilities.parseDevices("""
            Storage devices:
            name "virtio-blk-pci", bus PCI, alias "virtio-blk"
            name "virtio-9p-device", bus virtio-bus
            """)
        #expect(devices == ["virtio-blk-pci", "virtio-blk", "virtio-9p-device"])
        #expect(QEMUCapabilities.parseAccelerators("Accelerators supported in QEMU binary:\ntcg\nkvm\n") == ["tcg", "kvm"])
    }

    @Test("the real qemu-system-x86_64 here has every device the bundled plans use", .enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/qemu-system-x86_64")))
    func realBinary() async throws {
        #expect(GoldenFiles.ready)
        let caps = try await QEMUCapabilities.of("/usr/bin/qemu-system-x86_64")
        #expect(caps.machines.isSuperset(of: ["microvm", "q35", "pc"]))
        #expect(caps.devices.isSuperset(of: ["vhost-user-fs-device", "vhost-user-fs-pci", "virtio-9p-pci", "virtserialport", "pvpanic"]))
        #expect(caps.accelerators.contains("tcg"))
    }
}
