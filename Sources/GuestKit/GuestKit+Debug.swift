import Foundation
import Logging
import QEMULaunch

/// What a kernel developer's run adds: the kernel's log level, a symbol file for gdb
/// and crash dumps, and every module of the build (plus their own) for `modprobe`.
extension GuestKit {
    /// The vmlinux with symbols for this kernel: the tree's (`--kernel-tree`), else the
    /// one Debian's `linux-image-<release>-dbg` installs; nil when neither is there.
    public static func symbolFile(_ options: Options, release: String? = nil) -> String? {
        var candidates: [String] = []
        if let tree = options.kernelTree { candidates.append(tree.appendingPathComponent("vmlinux").path) }
        if let release { candidates.append("/usr/lib/debug/boot/vmlinux-\(release)") }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// `quiet` (a session's default: kernel chatter on an emulated UART costs boot
    /// time), or `loglevel=N` without it when a log level is asked for.
    static func logLevelArguments(_ options: Options, session: Bool) -> [String] {
        if let level = options.kernelLogLevel { return ["loglevel=\(level)"] }
        return session && options.quietKernel ? ["quiet"] : []
    }

    /// The modules folder of a kernel tree's build, installed into the cache (nil
    /// when the tree built no modules). Runs make off the cooperative pool.
    static func treeModules(_ tree: URL, arch: Profile.Arch, host: HostFacts, logger: Logger) async throws(LaunchError) -> URL? {
        let result: Swift.Result<URL?, LaunchError> = await onOwnThread {
            Swift.Result { () throws(LaunchError) in
                try ModuleCache.installedModules(ofTree: tree, guestArch: arch, hostArch: host.arch, logger: logger)
            }
        }
        return try result.get()
    }

    /// What the guest's modprobe gets: every module of a kernel tree's build (`everyModule`:
    /// `modulesDirectory` holds them), and the developer's own modules, each checked against
    /// the kernel first. nil = neither.
    static func modprobeTree(_ options: Options, release: String?, kernel: String, modulesDirectory: URL?,
                             everyModule: Bool, memory: MemorySize) throws(LaunchError) -> InitramfsBuilder.ModuleTree? {
        guard everyModule || !options.extraModules.isEmpty else { return nil }
        guard let release else {
            throw LaunchError(.invalidProfile, "the release of the kernel \(kernel) is unknown, so modules can't be matched to it",
                              fix: "boot a bzImage, Image or vmlinux that carries its version string")
        }
        // A module of the kernel's own build, for the whole vermagic (SMP, preempt, ...).
        var reference: String?
        if let modulesDirectory, let index = try? ModuleIndex(modulesDirectory: modulesDirectory),
           let first = index.moduleNames.first, let line = index.line(of: first) {
            let url = line.path.hasPrefix("/") ? URL(fileURLWithPath: line.path) : modulesDirectory.appendingPathComponent(line.path)
            reference = (try? ModuleInfo.read(url))?.vermagic
        }
        var extra: [ModuleInfo] = []
        for file in options.extraModules {
            let module = try ModuleInfo.read(file)
            try module.checkBuilt(for: release, kernel: kernel, reference: reference)
            if extra.contains(where: { $0.name == module.name }) {
                throw LaunchError(.invalidProfile, "--module: two modules named \(module.name) (\(file.path))", fix: "give each module once")
            }
            extra.append(module)
        }
        return InitramfsBuilder.ModuleTree(release: release, everyModule: everyModule, extra: extra, budgetBytes: memory.bytes / 4)
    }
}
