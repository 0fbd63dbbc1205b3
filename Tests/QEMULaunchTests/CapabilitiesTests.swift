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

    @Test("recorded help outputs of QEMU 7.2 and 10.0 parse to their version, machines, accelerators and microvm firmware")
    func recordedVersions() {
        let old = RecordedQEMU.v7_2, new = RecordedQEMU.v10_0
        #expect(old.x86.versionNumbers == [7, 2, 22])
        #expect(new.x86.versionNumbers == [10, 0, 2])
        #expect(new.arm.shortVersion == "10.0.2")
        #expect(old.x86.shipsLegacyVirtiofsd == true)
        #expect(new.x86.shipsLegacyVirtiofsd == false)
        for caps in [old.x86, new.x86] {
            #expect(caps.machines.isSuperset(of: ["microvm", "q35", "pc"]))
            #expect(caps.accelerators == ["kvm", "tcg"])
            #expect(caps.targetFamily == "x86")
        }
        for caps in [old.arm, new.arm] {
            #expect(caps.machines.contains("virt"))
            #expect(caps.microvmFirmware == nil)
            #expect(caps.targetFamily == "arm")
        }
        // Debian 12's 7.2 links bios-microvm.bin to qboot.rom; Debian's 10.0 takes SeaBIOS's.
        #expect(old.x86.microvmFirmware == .qboot)
        #expect(new.x86.microvmFirmware == .seabios)
        #expect(new.x86.hasQboot)
    }

    @Test("version strings: Debian's, upstream's, a two-number one, and none")
    func versionParsing() {
        #expect(QEMUCapabilities.parseVersion("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)") == [10, 0, 2])
        #expect(QEMUCapabilities.parseVersion("QEMU emulator version 8.2.2") == [8, 2, 2])
        #expect(QEMUCapabilities.parseVersion("QEMU emulator version 9.1") == [9, 1, 0])
        #expect(QEMUCapabilities.parseVersion("something else") == nil)
    }

    @Test("every device, machine and accelerator of the bundled kinds of plan exists in both recorded QEMUs",
          arguments: ["7.2", "10.0"], [Profile.MachineKind.microvm, .q35, .pc, .virt])
    func plansFitRecordedQEMU(version: String, machine: Profile.MachineKind) throws {
        #expect(GoldenFiles.ready)
        let arch: Profile.Arch = machine == .virt ? .aarch64 : .x86_64
        let host = VersionedGolden.host(version)
        var p = Profile(name: "fit")
        p.arch = arch
        p.machine = machine
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.command = ["true"]
        p.shares = [Profile.Share(tag: "fs", path: "/tmp/qlt-golden/src"),
                    Profile.Share(tag: "p9", path: "/tmp/qlt-golden/data", transport: .ninep)]
        p.disks = [Profile.Disk(path: "/tmp/qlt-golden/disk.img")]
        p.network = Profile.Network(mode: .user)
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        let caps = host.qemu[arch]!.capabilities!
        #expect(caps.problems(with: plan, binary: plan.qemu[0]) == [])
    }

    @Test("bios-microvm.bin is told apart: a link to qboot.rom, SeaBIOS's bytes, or neither; qboot.rom found along the data dirs")
    func microvmFirmwareDetection() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("qlt-fw-\(getpid())")
        defer { try? fm.removeItem(at: root) }
        for dir in ["qboot", "seabios", "other", "empty"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        try Data("qboot bytes".utf8).write(to: root.appendingPathComponent("qboot/qboot.rom"))
        try fm.createSymbolicLink(atPath: root.appendingPathComponent("qboot/bios-microvm.bin").path, withDestinationPath: "qboot.rom")
        try Data("\u{0}\u{1}SeaBIOS (version 1.16.3)\u{0}".utf8).write(to: root.appendingPathComponent("seabios/bios-microvm.bin"))
        try Data([0, 1, 2, 3]).write(to: root.appendingPathComponent("other/bios-microvm.bin"))
        func dirs(_ names: String...) -> String { names.map { root.appendingPathComponent($0).path }.joined(separator: "\n") + "\n" }
        #expect(QEMUCapabilities.microvmFirmware(dataDirectories: dirs("empty", "qboot")) == .qboot)
        // The first directory that has the file wins, as in QEMU's own lookup.
        #expect(QEMUCapabilities.microvmFirmware(dataDirectories: dirs("seabios", "qboot")) == .seabios)
        #expect(QEMUCapabilities.microvmFirmware(dataDirectories: dirs("other")) == .unknown)
        #expect(QEMUCapabilities.microvmFirmware(dataDirectories: dirs("empty")) == .unknown)
        #expect(QEMUCapabilities.dataFile("qboot.rom", dataDirectories: dirs("seabios", "qboot")) == root.appendingPathComponent("qboot/qboot.rom").path)
    }

    @Test("doctor says what the QEMU version implies: 10.0 ships no C virtiofsd and boots microvm through qboot.rom; 7.2's microvm firmware is qboot")
    func doctorOnEachVersion() {
        var new = VersionedGolden.host("10.0")
        new.virtiofsd = nil
        let checks = HostDoctor.checks(new)
        let virtiofsd = checks.first { $0.name == "virtiofsd" }
        #expect(virtiofsd?.status == .warn)
        #expect(virtiofsd?.detail.hasPrefix("not found, and QEMU 10.0.2 ships none (QEMU >= 8 dropped the C virtiofsd)") == true)
        #expect(virtiofsd?.fix == Planner.installVirtiofsdFix)
        #expect(checks.first { $0.name == "qemu x86_64" }?.detail.contains("10.0.2") == true)
        #expect(checks.first { $0.name == "qemu x86_64 microvm" }?.detail.hasSuffix("microvm plans boot qboot.rom instead") == true)
        #expect(!checks.contains { $0.name == "qemu aarch64 microvm" })

        let old = HostDoctor.checks(VersionedGolden.host("7.2"))
        #expect(old.first { $0.name == "qemu x86_64 microvm" }?.detail == "bios-microvm.bin is qboot: microvm guests boot without option ROMs")
        #expect(old.first { $0.name == "virtiofsd" }?.detail == "/usr/lib/qemu/virtiofsd (legacy-c flavor)")

        var seabiosOnly = VersionedGolden.host("10.0")
        seabiosOnly.qemu[.x86_64]?.capabilities?.hasQboot = false
        #expect(HostDoctor.checks(seabiosOnly).first { $0.name == "qemu x86_64 microvm" }?.status == .warn)
    }
}
