import Foundation
import LaunchSupport
import Logging
import QEMULaunch

/// A kernel build tree's modules, installed with `make modules_install` into the
/// launcher's cache once per build, so `--kernel-tree` needs no `--modules`.
///
/// Installed rather than read in place: `modules_install` lays the files out as the
/// guest's modprobe expects, and its depmod writes the real `modules.dep`,
/// `modules.alias` and `modules.symbols`; `INSTALL_MOD_STRIP=1` drops the debug info,
/// so every module of the build fits in the initramfs (gdb reads the tree's own
/// unstripped `.ko` files). The tree itself is never written.
package enum ModuleCache {
    /// The tree's `include/config/kernel.release`: the release its modules are for.
    package static func release(ofTree tree: URL) -> String? {
        guard let text = try? String(contentsOf: tree.appendingPathComponent("include/config/kernel.release"), encoding: .utf8) else { return nil }
        let release = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return release.isEmpty ? nil : release
    }

    /// The module files `modules.order` lists (as `.ko`, relative to the tree); empty
    /// when the tree builds no modules.
    static func builtModules(ofTree tree: URL) -> [String] {
        guard let text = try? String(contentsOf: tree.appendingPathComponent("modules.order"), encoding: .utf8) else { return [] }
        // 6.1 lists `fs/minix/minix.ko`; later kernels list the `.o`.
        return text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { $0.hasSuffix(".o") ? String($0.dropLast(2)) + ".ko" : $0 }
    }

    /// The release folder with the tree's installed modules, installing them first
    /// when this build's are not in the cache yet; nil when the tree built no modules.
    /// Blocks (runs make): call it off the cooperative pool.
    ///
    /// The cache key is the release plus the identity (size, mtime, inode) of
    /// `modules.order` and of every `.ko` it lists, so rebuilt modules are installed again.
    package static func installedModules(ofTree tree: URL, guestArch: Profile.Arch, hostArch: Profile.Arch,
                                         logger: Logger) throws(LaunchError) -> URL? {
        let modules = builtModules(ofTree: tree)
        guard !modules.isEmpty else { return nil }
        guard let release = release(ofTree: tree) else {
            throw LaunchError(.hostProblem, "the kernel tree \(tree.path) lists modules (modules.order) but has no include/config/kernel.release",
                              fix: "build the tree (make -C \(tree.path) modules), or pass --modules with installed modules")
        }
        var key = Fingerprint()
        key.add("modules-install-1")
        key.add(release)
        key.add(guestArch.rawValue)
        key.add(file: tree.appendingPathComponent("modules.order").path)
        var missing: [String] = []
        for module in modules {
            let path = tree.appendingPathComponent(module).path
            if !FileManager.default.fileExists(atPath: path) { missing.append(module) }
            key.add(file: path)
        }
        if !missing.isEmpty {
            throw LaunchError(.hostProblem, "the kernel tree \(tree.path) lists modules that were not built: \(missing.prefix(5).joined(separator: " "))\(missing.count > 5 ? " and \(missing.count - 5) more" : "")",
                              fix: "build them: make -C \(tree.path) modules")
        }
        let root = CacheDirectory.root.appendingPathComponent("modules/\(release)-\(key.hex)")
        let folder = root.appendingPathComponent("lib/modules/\(release)")
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent("modules.dep").path) { return folder }

        // Into a folder of its own, renamed into place when complete: two launches
        // installing at once never mix their files, and a half install is never used.
        let staging = CacheDirectory.root.appendingPathComponent("modules/.install-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: staging) }
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        } catch {
            throw LaunchError(.hostProblem, "can't create \(staging.path)", fix: "check that \(CacheDirectory.root.path) is writable", cause: error)
        }
        var argv = ["make", "-s", "-C", tree.path, "INSTALL_MOD_PATH=\(staging.path)", "modules_install"]
        // The host's strip reads only the host's ELF: a foreign tree's modules stay as built.
        if guestArch == hostArch { argv.insert("INSTALL_MOD_STRIP=1", at: argv.count - 1) }
        if guestArch == .aarch64 { argv.insert("ARCH=arm64", at: argv.count - 1) }
        guard let make = HostProbe.findProgram("make") else {
            throw LaunchError.missing("make", package: "make", purpose: "to install the kernel tree's modules (make modules_install)")
        }
        argv[0] = make
        let started = ContinuousClock.now
        let result = try ChildProcess.run(name: "make", argv: argv, timeout: .seconds(600), outputLimit: 64 << 10)
        let installed = staging.appendingPathComponent("lib/modules/\(release)")
        guard result.status.isSuccess, !result.timedOut else {
            throw LaunchError(.hostProblem, "installing the kernel tree's modules failed (make modules_install \(result.timedOut ? "ran past 10 min" : "\(result.status)"))",
                              fix: "run the command below yourself to see why",
                              details: ["  command: \(QEMUSyntax.shellLine(argv))"] + result.output.split(separator: "\n").suffix(10).map { "    \($0)" })
        }
        guard FileManager.default.fileExists(atPath: installed.appendingPathComponent("modules.dep").path) else {
            // kbuild skips depmod (with a warning) when the host has none.
            throw LaunchError.missing("depmod", package: "kmod", purpose: "to index the kernel tree's modules (make modules_install runs it)")
        }
        // Links into the tree (`build`, `source`) would let the initramfs builder walk it.
        for link in ["build", "source"] { try? FileManager.default.removeItem(at: installed.appendingPathComponent(link)) }
        do {
            try FileManager.default.createDirectory(at: root.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.moveItem(at: staging, to: root)
        } catch {
            // Another launch installed the same build first: use theirs.
            if !FileManager.default.fileExists(atPath: folder.appendingPathComponent("modules.dep").path) {
                throw LaunchError(.hostProblem, "can't move the installed modules to \(root.path)", cause: error)
            }
        }
        logger.info("kernel modules: installed \(modules.count) module\(modules.count == 1 ? "" : "s") of \(tree.path) (\(release)) into \(folder.path) in \(formatDuration(started.duration(to: .now)))")
        return folder
    }
}
