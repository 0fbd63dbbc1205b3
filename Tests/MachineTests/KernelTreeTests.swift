import Foundation
import TestSupport
import Testing

/// `launch run --kernel-tree DIR` with a kernel built from source, run as a user would.
///
/// The tree is Scripts/build-test-kernel's (`$LAUNCH_TEST_KERNEL_DIR`, else
/// `.cache/test-kernel/linux-source-6.1`). Without it these tests are skipped, visibly;
/// Scripts/test sets `LAUNCH_REQUIRE_TEST_KERNEL=1`, which makes a missing tree a failure.
/// The tree itself is never changed: tests that need an edited `.config`, a stale image or
/// other modules make a small tree of their own (its `.config` and a link to its bzImage).
enum TestKernel {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["LAUNCH_TEST_KERNEL_DIR"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return root.appendingPathComponent(".cache/test-kernel/linux-source-6.1")
    }()

    /// True when the tree has been built (a bzImage and its release).
    static let built = FileManager.default.fileExists(atPath: directory.appendingPathComponent("arch/x86/boot/bzImage").path)
        && FileManager.default.fileExists(atPath: directory.appendingPathComponent("include/config/kernel.release").path)

    /// Set by Scripts/test: then a missing tree fails these tests instead of skipping them.
    static let required = ProcessInfo.processInfo.environment["LAUNCH_REQUIRE_TEST_KERNEL"] == "1"

    /// The built tree; a failed requirement (with the fix) when it is absent.
    static var tree: URL {
        get throws {
            try #require(built, "no built kernel tree at \(directory.path): run Scripts/build-test-kernel")
            return directory
        }
    }

    static var release: String {
        get throws {
            try String(contentsOf: tree.appendingPathComponent("include/config/kernel.release"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// A tree of its own in `folder`: the test tree's Makefile, its `.config` passed
    /// through `edit` (with the original's time, so it is not newer than the image), and a
    /// link to (or copy of) its bzImage.
    static func copy(into folder: URL, edit: (String) -> String = { $0 }) throws -> URL {
        let source = try tree
        let fm = FileManager.default
        let copy = folder.appendingPathComponent("linux")
        try fm.createDirectory(at: copy.appendingPathComponent("arch/x86/boot"), withIntermediateDirectories: true)
        try fm.copyItem(at: source.appendingPathComponent("Makefile"), to: copy.appendingPathComponent("Makefile"))
        let config = try String(contentsOf: source.appendingPathComponent(".config"), encoding: .utf8)
        try Data(edit(config).utf8).write(to: copy.appendingPathComponent(".config"))
        let configTime = try fm.attributesOfItem(atPath: source.appendingPathComponent(".config").path)[.modificationDate]
        try fm.setAttributes([.modificationDate: configTime as Any], ofItemAtPath: copy.appendingPathComponent(".config").path)
        let image = source.appendingPathComponent("arch/x86/boot/bzImage"), target = copy.appendingPathComponent("arch/x86/boot/bzImage")
        // A hard link where the file system allows (its times are never changed here), else a copy.
        if (try? fm.linkItem(at: image, to: target)) == nil { try fm.copyItem(at: image, to: target) }
        return copy
    }

    /// `.config` text without `names` (written as "is not set", as make writes them).
    static func unsetting(_ names: [String]) -> (String) -> String {
        { text in
            text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
                for name in names where line.hasPrefix("CONFIG_\(name)=") { return "# CONFIG_\(name) is not set" }
                return String(line)
            }.joined(separator: "\n")
        }
    }
}

/// Runs `launch ARGS` from the checkout, as CLITests does.
private func launch(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let run = try TestProcess.run([try Fixture.launchExecutable] + arguments, currentDirectory: TestKernel.root)
    return (run.status, run.stdoutText, run.stderrText)
}

/// What shows that a run failed before booting: exit 65, and neither an initramfs built
/// nor QEMU started (with -v, launch logs both).
private func expectFailedBeforeBooting(_ outcome: (status: Int32, stdout: String, stderr: String), sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(outcome.status == 65, "\(outcome.stderr)", sourceLocation: sourceLocation)
    #expect(!outcome.stderr.contains("initramfs:"), "\(outcome.stderr)", sourceLocation: sourceLocation)
    #expect(!outcome.stderr.contains("QEMU started"), "\(outcome.stderr)", sourceLocation: sourceLocation)
}

/// Runs `launch run -v Profiles/hello.json --kernel-tree COPY -- true` on a copy of the test
/// tree whose `.config` went through `edit` and which `prepare` may change further.
private func runOnCopy(edit: @escaping (String) -> String = { $0 }, prepare: (URL) throws -> Void = { _ in },
                       _ check: ((status: Int32, stdout: String, stderr: String), URL) throws -> Void) throws {
    let folder = try Fixture.temporaryDirectory("kt")
    defer { try? FileManager.default.removeItem(at: folder) }
    let tree = try TestKernel.copy(into: folder, edit: edit)
    try prepare(tree)
    try check(try launch(["run", "-v", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", tree.path, "--", "true"]), tree)
}

@Suite("A kernel built from source, booted with --kernel-tree (slow: builds on Scripts/build-test-kernel, boots under TCG)",
       .serialized, .enabled(if: TestKernel.built || TestKernel.required, "no built kernel tree: run Scripts/build-test-kernel"))
struct KernelTreeBootTests {
    @Test("a guest booted with --kernel-tree runs the tree's kernel: uname -r is the tree's release")
    func bootsTheTreesKernel() throws {
        let outcome = try launch(["run", "-q", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", try TestKernel.tree.path, "--", "uname", "-r"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == (try TestKernel.release) + "\n")
    }

    @Test("a bzImage taken out of its tree is checked against the IKCONFIG copy inside it, and boots")
    func embeddedConfig() throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("bzImage")
        try FileManager.default.copyItem(at: try TestKernel.tree.appendingPathComponent("arch/x86/boot/bzImage"), to: image)
        let outcome = try launch(["run", "-v", "Profiles/hello.json", "--accel", "tcg", "--kernel", image.path, "--", "true"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("kernel config: the IKCONFIG copy in \(image.path) has what this guest needs"), "\(outcome.stderr)")
    }

    @Test("a kernel whose config can't be found is said in one line, every launch, and boots unchecked")
    func noConfig() throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The tree's vmlinux without its IKCONFIG marker, out of the tree: no .config, no /boot/config-<release>.
        var vmlinux = try Data(contentsOf: try TestKernel.tree.appendingPathComponent("vmlinux"))
        let marker = try #require(vmlinux.range(of: Data("IKCFG_ST".utf8)))
        vmlinux.replaceSubrange(marker, with: Data("XXXXXXXX".utf8))
        let kernel = folder.appendingPathComponent("vmlinux-test")
        try vmlinux.write(to: kernel)
        for _ in 0..<2 {
            let outcome = try launch(["run", "-v", "Profiles/hello.json", "--accel", "tcg", "--kernel", kernel.path, "--", "true"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let lines = outcome.stderr.split(separator: "\n").filter { $0.hasPrefix("launch: kernel config: none found for \(kernel.path) (looked at ") }
            #expect(lines.count == 1, "\(outcome.stderr)")
            #expect(lines.first?.hasSuffix("IKCONFIG in \(kernel.path)); not checked against what the guest needs") == true)
        }
    }

    @Test("a tree without CONFIG_VIRTIO_CONSOLE and CONFIG_VIRTIO_MMIO fails before booting, naming both")
    func missingOptions() throws {
        try runOnCopy(edit: TestKernel.unsetting(["VIRTIO_CONSOLE", "VIRTIO_MMIO"])) { outcome, tree in
            expectFailedBeforeBooting(outcome)
            #expect(outcome.stderr.contains("CONFIG_VIRTIO_CONSOLE is not set and no module for it was given: enable it (=y) or pass --modules"))
            #expect(outcome.stderr.contains("CONFIG_VIRTIO_MMIO is not set and no module for it was given: enable it (=y) or pass --modules"))
            #expect(outcome.stderr.contains("launch kconfig --apply \(tree.path)"))
        }
    }

    @Test("a 32-bit configuration (CONFIG_64BIT off) fails before booting with the panic it would cause")
    func wordSize() throws {
        try runOnCopy(edit: TestKernel.unsetting(["64BIT", "X86_64"])) { outcome, _ in
            expectFailedBeforeBooting(outcome)
            #expect(outcome.stderr.contains("CONFIG_64BIT is not set: this is a 32-bit x86 kernel"))
            #expect(outcome.stderr.contains("Failed to execute /init (error -8)"))
        }
    }

    @Test("a bzImage older than the tree's vmlinux (make vmlinux alone) fails before booting: stale bzImage")
    func staleImage() throws {
        // Only its time matters to the check: a vmlinux newer than the bzImage.
        try runOnCopy(prepare: { try Data("newer vmlinux".utf8).write(to: $0.appendingPathComponent("vmlinux")) }) { outcome, tree in
            expectFailedBeforeBooting(outcome)
            #expect(outcome.stderr.contains("stale bzImage: \(tree.path)/arch/x86/boot/bzImage is older than \(tree.path)/vmlinux"))
            #expect(outcome.stderr.contains("run make bzImage"))
        }
    }

    @Test("modules of another release fail before booting, naming both releases")
    func moduleRelease() throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        let modules = folder.appendingPathComponent("mods/lib/modules/6.1.0-other")
        try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
        try Data().write(to: modules.appendingPathComponent("modules.dep"))
        let outcome = try launch(["run", "-v", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", try TestKernel.tree.path,
                                  "--modules", folder.appendingPathComponent("mods").path, "--", "true"])
        expectFailedBeforeBooting(outcome)
        #expect(outcome.stderr.contains("the modules in \(modules.path) are for kernel 6.1.0-other, but the kernel \(try TestKernel.tree.path)/arch/x86/boot/bzImage is \(try TestKernel.release)"))
    }
}

@Suite("launch kconfig --apply on a real tree (slow: copies the test kernel's tree, runs make tinyconfig)",
       .serialized, .enabled(if: TestKernel.built || TestKernel.required, "no built kernel tree: run Scripts/build-test-kernel"))
struct KconfigApplyTests {
    /// A hard-link copy of the test tree after `make tinyconfig`. Nothing in it is written in
    /// place: Kconfig writes .config by rename, and the files a test edits are replaced, not changed.
    private func tinyCopy(in folder: URL) throws -> URL {
        let copy = folder.appendingPathComponent("linux")
        try Fixture.run(["/bin/cp", "-al", try TestKernel.tree.path, copy.path])
        for name in [".config", ".config.old"] { try? FileManager.default.removeItem(at: copy.appendingPathComponent(name)) }
        try Fixture.run(["/usr/bin/make", "-C", copy.path, "-s", "tinyconfig"])
        return copy
    }

    @Test("every option of the fragment is =y after --apply on a tinyconfig tree; one whose dependency is off is named with it")
    func applies() throws {
        let folder = try Fixture.temporaryDirectory("ka")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tree = try tinyCopy(in: folder)
        let applied = try launch(["kconfig", "--apply", tree.path])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("every one is =y after make olddefconfig"), "\(applied.stdout)")
        let config = try String(contentsOf: tree.appendingPathComponent(".config"), encoding: .utf8)
        for line in ["CONFIG_64BIT=y", "CONFIG_VIRTIO_CONSOLE=y", "CONFIG_9P_FS=y", "CONFIG_INET=y", "CONFIG_PVH=y"] {
            #expect(config.contains("\n\(line)\n"), "\(line)")
        }

        // 9P_FS made to depend on BROKEN as well (the file replaced, not edited: it is a hard link).
        let kconfig = tree.appendingPathComponent("fs/9p/Kconfig")
        let text = try String(contentsOf: kconfig, encoding: .utf8).replacingOccurrences(of: "depends on INET && NET_9P", with: "depends on INET && NET_9P && BROKEN")
        try FileManager.default.removeItem(at: kconfig)
        try Data(text.utf8).write(to: kconfig)
        for name in [".config", ".config.old"] { try? FileManager.default.removeItem(at: tree.appendingPathComponent(name)) }
        try Fixture.run(["/usr/bin/make", "-C", tree.path, "-s", "tinyconfig"])
        let dropped = try launch(["kconfig", "--apply", tree.path])
        #expect(dropped.status == 65)
        #expect(dropped.stderr.contains("1 option did not stick after make olddefconfig"), "\(dropped.stderr)")
        #expect(dropped.stderr.contains("CONFIG_9P_FS=y did not stick (now: not set): it depends on NETWORK_FILESYSTEMS && INET && NET_9P && BROKEN, and CONFIG_BROKEN is off"), "\(dropped.stderr)")
    }
}

@Suite("--kernel-tree that can't be booted: said before anything starts")
struct KernelTreeRefusalTests {
    @Test("a tree that doesn't exist says so")
    func nonexistent() throws {
        let outcome = try launch(["run", "Profiles/hello.json", "--kernel-tree", "/nonexistent/linux", "--", "true"])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.contains("--kernel-tree /nonexistent/linux: the kernel tree /nonexistent/linux does not exist"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("build the kernel"))
    }

    @Test("a tree for another arch says the tree's arch and the profile's, not 'build the kernel first'", arguments: [
        ("#\n# Linux/arm64 6.1.192 Kernel Configuration\n#\nCONFIG_ARM64=y\nCONFIG_64BIT=y\n", "Profiles/hello.json",
         "is configured for arm64 (its .config), but the profile's arch (the host's: the profile sets none) is x86_64", "Profiles/arm64.json"),
        ("# Linux/x86 6.1.192 Kernel Configuration\nCONFIG_X86=y\nCONFIG_64BIT=y\n", "Profiles/arm64.json",
         "is configured for x86 (its .config), but the profile's arch is aarch64", "an x86_64 profile"),
    ])
    func otherArch(config: String, profile: String, says: String, fix: String) throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(config.utf8).write(to: folder.appendingPathComponent(".config"))
        let outcome = try launch(["run", profile, "--kernel-tree", folder.path, "--", "true"])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.contains("the kernel tree \(folder.path) \(says)"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains(fix))
        #expect(!outcome.stderr.contains("build"))
    }

    @Test("a tree configured but not built has its .config checked: what could not boot is named before minutes of make, with launch kconfig --apply as the fix")
    func configuredNotBuilt() throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        // make tinyconfig's kind of config: 32-bit, little else; virtio_console as a module
        // the tree's own make modules would build (so not a problem).
        let config = "# Linux/x86 6.1.192 Kernel Configuration\nCONFIG_X86=y\n# CONFIG_64BIT is not set\nCONFIG_MODULES=y\nCONFIG_VIRTIO_CONSOLE=m\n"
        try Data(config.utf8).write(to: folder.appendingPathComponent(".config"))
        let outcome = try launch(["run", "Profiles/hello.json", "--kernel-tree", folder.path, "--", "true"])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.contains("the kernel tree \(folder.path) is configured but not built"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("- CONFIG_64BIT is not set"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("- CONFIG_VIRTIO_MMIO is not set"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("CONFIG_VIRTIO_CONSOLE"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("fix: launch kconfig --apply \(folder.path) (adds what the guest needs), then make -j"), "\(outcome.stderr)")
    }

    @Test("a tree whose .config can boot the guest but isn't built is told only to build it",
          .enabled(if: TestKernel.built || TestKernel.required, "no built kernel tree: run Scripts/build-test-kernel"))
    func goodConfigNotBuilt() throws {
        let folder = try Fixture.temporaryDirectory("kt")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: try TestKernel.tree.appendingPathComponent(".config"), to: folder.appendingPathComponent(".config"))
        let outcome = try launch(["run", "Profiles/hello.json", "--kernel-tree", folder.path, "--", "true"])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.contains("is configured but not built"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("could not boot"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("fix: build it: make -j"), "\(outcome.stderr)")
    }
}

@Suite("launch kconfig, run as a user would")
struct KconfigCommandTests {
    @Test("with a profile it prints only what that profile uses, each option after the comment saying why")
    func profileFragment() throws {
        let outcome = try launch(["kconfig", "Profiles/q35.json"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("CONFIG_VIRTIO_PCI=y") && lines.contains("CONFIG_VIRTIO_CONSOLE=y"))
        #expect(!lines.contains("CONFIG_VIRTIO_MMIO=y") && !lines.contains("CONFIG_SERIAL_AMBA_PL011=y"))
        for (index, line) in lines.enumerated() where line.hasPrefix("CONFIG_") {
            #expect(lines[index - 1].hasPrefix("# "), "\(line)")
        }
    }

    @Test("--arch aarch64 prints the arm64 table; a machine of the other arch is refused")
    func arches() throws {
        let arm64 = try launch(["kconfig", "--arch", "aarch64"])
        #expect(arm64.status == 0)
        #expect(arm64.stdout.contains("CONFIG_SERIAL_AMBA_PL011_CONSOLE=y") && !arm64.stdout.contains("CONFIG_64BIT=y"))
        let refused = try launch(["kconfig", "--arch", "aarch64", "--machine", "microvm"])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("--machine microvm is not a machine of aarch64"))
    }

    @Test("--apply to a folder that doesn't exist, or without a .config, says so (exit 65)")
    func applyRefusals() throws {
        let missing = try launch(["kconfig", "--apply", "/nonexistent/linux"])
        #expect(missing.status == 65)
        #expect(missing.stderr.contains("the kernel tree /nonexistent/linux does not exist"), "\(missing.stderr)")
        let folder = try Fixture.temporaryDirectory("kc")
        defer { try? FileManager.default.removeItem(at: folder) }
        let bare = try launch(["kconfig", "--apply", folder.path])
        #expect(bare.status == 65)
        #expect(bare.stderr.contains("has no .config to merge into"), "\(bare.stderr)")
    }
}
