import Foundation
import QEMULaunch
import Testing

@testable import GuestKit

@Suite("the table of kernel options a guest needs")
struct KernelRequirementsTests {
    private func names(_ guest: KernelRequirements.Guest) -> [String] {
        KernelRequirements.options(for: guest).map(\.name)
    }

    @Test("a microvm guest needs virtio-mmio, ACPI (and PCI, which x86 ACPI needs), the 8250 console and 64BIT, and not virtio-pci")
    func microvm() {
        let list = names(.everything(arch: .x86_64, machine: .microvm))
        for name in ["64BIT", "VIRTIO_MMIO", "ACPI", "PCI", "SERIAL_8250", "SERIAL_8250_CONSOLE", "VIRTIO_CONSOLE", "BLK_DEV_INITRD", "PVH"] {
            #expect(list.contains(name), "\(name)")
        }
        for name in ["VIRTIO_PCI", "SERIAL_AMBA_PL011", "GPIO_PL061"] { #expect(!list.contains(name), "\(name)") }
    }

    @Test("an aarch64 virt guest needs the PL011 console and the GPIO power button, and neither 64BIT nor PVH nor ACPI")
    func arm64() {
        let list = names(.everything(arch: .aarch64))
        for name in ["SERIAL_AMBA_PL011", "SERIAL_AMBA_PL011_CONSOLE", "VIRTIO_MMIO", "VIRTIO_PCI", "PCI_HOST_GENERIC", "GPIO_PL061", "KEYBOARD_GPIO"] {
            #expect(list.contains(name), "\(name)")
        }
        for name in ["64BIT", "PVH", "ACPI", "SERIAL_8250", "ACPI_BUTTON"] { #expect(!list.contains(name), "\(name)") }
    }

    @Test("9p shares bring INET, which 9P_FS depends on, and virtiofs brings FUSE_FS", arguments: [Profile.ShareTransport.ninep, .virtiofs])
    func shares(_ transport: Profile.ShareTransport) {
        var guest = KernelRequirements.Guest(arch: .x86_64, machines: [.q35], transports: [.pci])
        guest.shares = [transport]
        let list = names(guest)
        if transport == .ninep {
            #expect(["NET", "INET", "NETWORK_FILESYSTEMS", "NET_9P", "NET_9P_VIRTIO", "9P_FS"].allSatisfy(list.contains))
            #expect(!list.contains("FUSE_FS"))
        } else {
            #expect(["FUSE_FS", "VIRTIO_FS"].allSatisfy(list.contains))
            #expect(!list.contains("9P_FS"))
        }
    }

    @Test("a profile's guest: an auto share needs both share kinds, a console shell no virtio_console, a disk virtio_blk")
    func fromProfile() {
        var profile = Profile(name: "p")
        profile.shares = [Profile.Share(tag: "s", path: "/tmp", transport: .auto)]
        profile.disks = [Profile.Disk(path: "/tmp/d.img")]
        let guest = KernelRequirements.Guest(profile: profile, hostArch: .x86_64)
        #expect(guest.machines == [.microvm] && guest.transports == [.mmio])
        #expect(guest.shares == [.virtiofs, .ninep])
        #expect(names(guest).contains("VIRTIO_BLK"))
        var shell = guest
        shell.session = false
        #expect(!names(shell).contains("VIRTIO_CONSOLE"))
    }

    @Test("every option appears once, says why, and the drivers the guest kit loads name their module")
    func wellFormed() {
        for arch in Profile.Arch.allCases {
            let options = KernelRequirements.options(for: .everything(arch: arch))
            #expect(Set(options.map(\.name)).count == options.count)
            #expect(options.allSatisfy { !$0.why.isEmpty && !$0.name.hasPrefix("CONFIG_") })
            let modules = Dictionary(uniqueKeysWithValues: options.compactMap { o in o.module.map { (o.name, $0) } })
            #expect(modules["VIRTIO_CONSOLE"] == "virtio_console")
            #expect(modules["VIRTIO_MMIO"] == "virtio_mmio")
            #expect(modules["9P_FS"] == "9p")
            // Bool options and the console can't be modules.
            #expect(modules["BLK_DEV_INITRD"] == nil && modules["DEVTMPFS"] == nil && modules["BINFMT_SCRIPT"] == nil)
        }
    }

    @Test("the fragment has a why-comment before each option, and reads back as exactly those options =y")
    func fragmentRoundTrip() {
        let options = KernelRequirements.options(for: .everything(arch: .x86_64))
        let text = KernelRequirements.fragment(options, header: ["header"])
        let lines = text.split(separator: "\n").map(String.init)
        for (index, line) in lines.enumerated() where line.hasPrefix("CONFIG_") {
            #expect(lines[index - 1].hasPrefix("# "), "\(line) has no comment above it")
        }
        let parsed = KernelConfig(parsing: text, source: "fragment")
        #expect(Set(parsed.values.keys) == Set(options.map(\.name)))
        #expect(parsed.values.values.allSatisfy { $0 == .yes })
    }
}

@Suite("reading a kernel .config")
struct KernelConfigParsingTests {
    static let sample = """
        #
        # Automatically generated file; DO NOT EDIT.
        # Linux/x86 6.1.192 Kernel Configuration
        #
        CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
        CONFIG_64BIT=y
        CONFIG_X86_64=y
        CONFIG_X86=y
        CONFIG_VIRTIO_CONSOLE=m
        # CONFIG_VIRTIO_MMIO is not set
        CONFIG_LOG_BUF_SHIFT=17
        CONFIG_NET=n
        """

    @Test("y, m, numbers and strings are read; 'is not set' and =n are off; the header names the arch")
    func parses() {
        let config = KernelConfig(parsing: Self.sample, source: "sample")
        #expect(config["64BIT"] == .yes)
        #expect(config["VIRTIO_CONSOLE"] == .module)
        #expect(config["VIRTIO_MMIO"] == nil)
        #expect(config["NET"] == nil)
        #expect(config["LOG_BUF_SHIFT"] == .text("17"))
        #expect(config["CC_VERSION_TEXT"] == .text("\"gcc (Debian 12.2.0-14) 12.2.0\""))
        #expect(config.headerArch == "x86" && config.kernelArch == "x86" && config.arch == .x86_64)
        #expect(!config.isX86Without64Bit)
    }

    @Test("a 32-bit x86 config and an arm64 config are told apart from x86_64")
    func arches() {
        let i386 = KernelConfig(parsing: "# Linux/x86 6.1.192 Kernel Configuration\nCONFIG_X86_32=y\nCONFIG_X86=y\n", source: "i386")
        #expect(i386.isX86Without64Bit && i386.arch == nil)
        let arm64 = KernelConfig(parsing: "# Linux/arm64 6.1.192 Kernel Configuration\nCONFIG_ARM64=y\nCONFIG_64BIT=y\n", source: "arm64")
        #expect(arm64.arch == .aarch64 && arm64.kernelArch == "arm64")
    }
}
