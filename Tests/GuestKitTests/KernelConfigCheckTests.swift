import Foundation
import QEMULaunch
import TestSupport
import Testing

@testable import GuestKit

/// A .config with everything the x86 guest kit needs built in, to take options out of.
private func completeConfig(arch: Profile.Arch = .x86_64, without removed: Set<String> = [], modules: Set<String> = []) -> KernelConfig {
    let guest = KernelRequirements.Guest.everything(arch: arch)
    var values: [String: KernelConfig.Value] = [arch == .x86_64 ? "X86" : "ARM64": .yes]
    for option in KernelRequirements.options(for: guest) where !removed.contains(option.name) {
        values[option.name] = modules.contains(option.name) ? .module : .yes
    }
    return KernelConfig(source: "test .config", values: values, headerArch: arch == .x86_64 ? "x86" : "arm64")
}

private func offering(_ names: Set<String>) -> KernelConfigCheck.OfferedModules {
    .init(folder: "/mods/6.1.192") { names.contains($0) }
}

@Suite("the kernel config check before a boot")
struct KernelConfigCheckTests {
    let microvm = KernelRequirements.Guest.everything(arch: .x86_64, machine: .microvm)

    @Test("a complete config passes with nothing to say")
    func complete() {
        let report = KernelConfigCheck.check(completeConfig(), guest: microvm, modules: nil)
        #expect(report.problems.isEmpty && report.warnings.isEmpty)
    }

    @Test("every missing option is named at once, each with its fix")
    func namesEveryMissingOption() {
        let config = completeConfig(without: ["VIRTIO_CONSOLE", "VIRTIO_MMIO", "DEVTMPFS"])
        let report = KernelConfigCheck.check(config, guest: microvm, modules: nil)
        #expect(report.problems.count == 3)
        #expect(report.problems.contains { $0.hasPrefix("CONFIG_VIRTIO_CONSOLE is not set and no module for it was given: enable it (=y) or pass --modules") })
        #expect(report.problems.contains { $0.hasPrefix("CONFIG_VIRTIO_MMIO is not set and no module for it was given") })
        #expect(report.problems.contains { $0.hasPrefix("CONFIG_DEVTMPFS is not set: enable it (=y)") })
    }

    @Test("an =m driver passes when the modules given have it, and fails naming the folder when they don't")
    func modules() {
        let config = completeConfig(modules: ["VIRTIO_CONSOLE"])
        #expect(KernelConfigCheck.check(config, guest: microvm, modules: offering(["virtio_console"])).problems.isEmpty)
        let without = KernelConfigCheck.check(config, guest: microvm, modules: offering([]))
        #expect(without.problems == ["CONFIG_VIRTIO_CONSOLE=m, but the modules in /mods/6.1.192 have no virtio_console: install this kernel's modules there (make modules_install), or build it in (=y) (the guest kit's exec and session ports (virtio-serial): without them no command runs, and the launch would wait for its boot timeout)"])
        let none = KernelConfigCheck.check(config, guest: microvm, modules: nil)
        #expect(none.problems.first?.hasPrefix("CONFIG_VIRTIO_CONSOLE=m and no modules were given: pass --modules") == true)
    }

    @Test("the serial console as a module is a problem: it must be built in")
    func consoleMustBeBuiltIn() {
        let report = KernelConfigCheck.check(completeConfig(modules: ["SERIAL_8250"]), guest: microvm, modules: offering(["8250"]))
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.hasPrefix("CONFIG_SERIAL_8250=m, but it must be built in: set CONFIG_SERIAL_8250=y") == true)
    }

    @Test("a 32-bit x86 kernel is named with the panic it would cause")
    func wordSize() {
        let report = KernelConfigCheck.check(completeConfig(without: ["64BIT"]), guest: microvm, modules: nil)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.contains("Failed to execute /init (error -8)") == true)
        #expect(report.problems.first?.hasPrefix("CONFIG_64BIT is not set: this is a 32-bit x86 kernel") == true)
    }

    @Test("an arm64 kernel for an x86_64 guest is the one problem said, not a list of missing x86 options")
    func archMismatch() {
        let report = KernelConfigCheck.check(completeConfig(arch: .aarch64), guest: microvm, modules: nil)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.hasPrefix("the kernel is configured for arm64 (test .config), but the profile's arch is x86_64") == true)
    }

    @Test("recommended options that are off are warnings, not problems; optional ones (pvpanic) are neither")
    func recommended() {
        let report = KernelConfigCheck.check(completeConfig(without: ["PVH", "INPUT_EVDEV"]), guest: microvm, modules: nil)
        #expect(report.problems.isEmpty)
        #expect(report.warnings.count == 2)
        #expect(report.warnings.allSatisfy { $0.hasPrefix("recommended: CONFIG_") })
        let q35 = KernelRequirements.Guest.everything(arch: .x86_64, machine: .q35)
        #expect(KernelRequirements.options(for: q35).contains { $0.name == "PVPANIC_MMIO" && $0.need == .optional })
        let withoutPVPanic = KernelConfigCheck.check(completeConfig(without: ["PVPANIC", "PVPANIC_MMIO"]), guest: q35, modules: nil)
        #expect(withoutPVPanic.problems.isEmpty && withoutPVPanic.warnings.isEmpty)
    }

    @Test("this host's Debian kernel, with its /boot config and /lib/modules, has what the bundled guests need",
          .enabled(if: FileManager.default.fileExists(atPath: "/boot") && ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []).contains { $0.hasPrefix("config-") }))
    func debianKernel() throws {
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: "/boot").filter { $0.hasPrefix("config-") }.sorted().last)
        let release = String(name.dropFirst("config-".count))
        let (config, _) = KernelConfig.locate(kernel: URL(fileURLWithPath: "/boot/vmlinuz-\(release)"), release: release)
        let found = try #require(config)
        #expect(found.source == "/boot/\(name)")
        let index = try ModuleIndex(kernelRelease: release)
        let modules = KernelConfigCheck.OfferedModules(folder: index.modulesDirectory.path) { index.contains($0) || index.isBuiltin($0) }
        for machine in [Profile.MachineKind.microvm, .q35, .pc] {
            let report = KernelConfigCheck.check(found, guest: .everything(arch: .x86_64, machine: machine), modules: modules)
            #expect(report.problems.isEmpty, "\(machine): \(report.problems)")
        }
    }
}

@Suite("the IKCONFIG copy inside a kernel image")
struct IKConfigTests {
    @Test("the gzipped .config between IKCFG_ST and IKCFG_ED is found and read; a kernel without one has none")
    func readsEmbeddedConfig() throws {
        let scratch = try KernelScratch()
        let folder = scratch.url
        let text = "# Linux/x86 6.1.192 Kernel Configuration\nCONFIG_X86=y\nCONFIG_64BIT=y\nCONFIG_VIRTIO_CONSOLE=m\n"
        let gzip = try TestProcess.run(["/bin/gzip", "-c"], input: Data(text.utf8))
        #expect(gzip.status == 0)
        var kernel = Data(repeating: 0x90, count: 4096)
        kernel += Data("IKCFG_ST".utf8) + gzip.stdout + Data("IKCFG_ED".utf8)
        kernel += Data(repeating: 0xCC, count: 4096)
        let file = folder.appendingPathComponent("vmlinux")
        try kernel.write(to: file)
        let config = KernelConfig(parsing: try #require(IKConfig.configText(ofKernel: file)), source: "ik")
        #expect(config["VIRTIO_CONSOLE"] == .module && config.arch == .x86_64)

        let plain = folder.appendingPathComponent("plain")
        try Data(repeating: 0x90, count: 8192).write(to: plain)
        #expect(IKConfig.configText(ofKernel: plain) == nil)
        let (none, searched) = KernelConfig.locate(kernel: plain, release: "6.1.999-none")
        #expect(none == nil)
        #expect(searched.contains("/boot/config-6.1.999-none") && searched.last == "IKCONFIG in \(plain.path)")
    }
}

@Suite("a kernel build tree")
struct KernelTreeTests {
    private func makeTree(config: String) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tree-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("arch/x86/boot"), withIntermediateDirectories: true)
        try Data(config.utf8).write(to: root.appendingPathComponent(".config"))
        try Data("# top Makefile\n".utf8).write(to: root.appendingPathComponent("Makefile"))
        return root
    }

    /// The error `image(for: .x86_64)` throws for the tree at `root`, nil when it finds an image.
    private func imageError(_ root: URL) throws -> LaunchError? {
        do {
            _ = try KernelTree(root).image(for: .x86_64)
            return nil
        } catch {
            return error
        }
    }

    private func touch(_ url: URL, _ secondsAgo: TimeInterval) throws {
        if !FileManager.default.fileExists(atPath: url.path) { try Data("x".utf8).write(to: url) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -secondsAgo)], ofItemAtPath: url.path)
    }

    @Test("a folder that doesn't exist is said to not exist")
    func missing() {
        #expect(throws: LaunchError.self) { try KernelTree(URL(fileURLWithPath: "/nonexistent/linux")) }
        do { _ = try KernelTree(URL(fileURLWithPath: "/nonexistent/linux")) } catch {
            #expect(error.message == "the kernel tree /nonexistent/linux does not exist")
            #expect(error.code == .invalidProfile)
        }
    }

    @Test("an arm64 tree for an x86_64 guest says so, not 'build the kernel first'")
    func archMismatch() throws {
        let root = try makeTree(config: "# Linux/arm64 6.1.192 Kernel Configuration\nCONFIG_ARM64=y\n")
        defer { try? FileManager.default.removeItem(at: root) }
        let error = try #require(try imageError(root))
        #expect(error.message == "the kernel tree \(root.path) is configured for arm64 (its .config), but the profile's arch is x86_64")
        #expect(error.fix?.contains("Profiles/arm64.json") == true)
    }

    @Test("the image is the bzImage, else vmlinux; a configured tree without either says to build it")
    func image() throws {
        let root = try makeTree(config: "# Linux/x86 6.1.192 Kernel Configuration\nCONFIG_X86=y\nCONFIG_64BIT=y\nCONFIG_MODULES=y\n")
        defer { try? FileManager.default.removeItem(at: root) }
        let error = try #require(try imageError(root))
        #expect(error.message.hasPrefix("the kernel tree \(root.path) is configured but not built"))
        #expect(error.fix?.hasSuffix("bzImage modules") == true)
        try touch(root.appendingPathComponent("vmlinux"), 10)
        #expect(try KernelTree(root).image(for: .x86_64).lastPathComponent == "vmlinux")
        try touch(root.appendingPathComponent("arch/x86/boot/bzImage"), 5)
        #expect(try KernelTree(root).image(for: .x86_64).path == root.appendingPathComponent("arch/x86/boot/bzImage").path)
        #expect(KernelTree.containing(kernel: root.appendingPathComponent("arch/x86/boot/bzImage"))?.root.path == root.path)
    }

    @Test("a folder with a bzImage and no .config boots that image; one with neither says what to do")
    func withoutConfig() throws {
        let scratch = try KernelScratch()
        let error = try #require(try imageError(scratch.url))
        #expect(error.message.hasPrefix("the kernel tree \(scratch.url.path) has no .config and no kernel image"))
        #expect(error.fix?.contains("launch kconfig --apply \(scratch.url.path)") == true)
        try FileManager.default.createDirectory(at: scratch.url.appendingPathComponent("arch/x86/boot"), withIntermediateDirectories: true)
        try touch(scratch.url.appendingPathComponent("arch/x86/boot/bzImage"), 1)
        #expect(try KernelTree(scratch.url).image(for: .x86_64).lastPathComponent == "bzImage")
    }

    @Test("a bzImage older than vmlinux, or than .config, is stale; a fresh one is not")
    func staleness() throws {
        let root = try makeTree(config: "CONFIG_X86=y\n")
        defer { try? FileManager.default.removeItem(at: root) }
        let bzImage = root.appendingPathComponent("arch/x86/boot/bzImage"), vmlinux = root.appendingPathComponent("vmlinux")
        try touch(root.appendingPathComponent(".config"), 100)
        try touch(vmlinux, 50)
        try touch(bzImage, 40)
        let tree = try KernelTree(root)
        #expect(tree.staleness(of: bzImage) == nil)
        try touch(vmlinux, 10)
        #expect(tree.staleness(of: bzImage)?.hasPrefix("stale bzImage: \(bzImage.path) is older than \(vmlinux.path)") == true)
        #expect(tree.staleness(of: bzImage)?.hasSuffix("run make bzImage") == true)
        try touch(vmlinux, 50)
        try touch(root.appendingPathComponent(".config"), 1)
        #expect(tree.staleness(of: bzImage)?.contains("the configuration changed after the last build; run make bzImage") == true)
    }
}

@Suite("Kconfig dependencies of a tree")
struct KconfigDependenciesTests {
    @Test("an option's depends-on and the if-blocks around it (through source) are found; help text is not read as Kconfig")
    func findsConditions() throws {
        let scratch = try KernelScratch()
        let root = scratch.url
        try FileManager.default.createDirectory(at: root.appendingPathComponent("fs/9p"), withIntermediateDirectories: true)
        try Data("""
            config INET
            \tbool "TCP/IP networking"
            \thelp
            \t  if you say Y here
            \t  config nothing

            menuconfig NETWORK_FILESYSTEMS
            \tbool "Network File Systems"
            if NETWORK_FILESYSTEMS
            source "fs/9p/Kconfig"
            endif # NETWORK_FILESYSTEMS
            config AFTER
            \tbool "after"
            """.utf8).write(to: root.appendingPathComponent("Kconfig"))
        try Data("""
            config 9P_FS
            \ttristate "Plan 9 Resource Sharing Support (9P2000)"
            \tdepends on INET && NET_9P
            \thelp
            \t  if unsure, say N.
            """.utf8).write(to: root.appendingPathComponent("fs/9p/Kconfig"))
        let dependencies = KconfigDependencies(tree: root, srcarch: "x86")
        #expect(dependencies.conditions["9P_FS"] == ["NETWORK_FILESYSTEMS", "INET && NET_9P"])
        #expect(dependencies.conditions["AFTER"] == nil)
        let config = KernelConfig(source: "c", values: ["NETWORK_FILESYSTEMS": .yes, "NET_9P": .yes])
        #expect(dependencies.unmet("9P_FS", in: config).off == ["INET"])
        #expect(KconfigDependencies.symbols(in: "HAS_IOMEM && (ACPI || OF) && PVPANIC != n && X=\"a B\" && 64BIT && 17") == ["HAS_IOMEM", "ACPI", "OF", "PVPANIC", "X", "64BIT"])
    }
}
