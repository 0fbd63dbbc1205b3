import Foundation
import QEMULaunch

/// Builds (or finds in the cache) the guest kit's initramfs: static busybox,
/// the kernel modules a run needs with their dependencies, and `/init`.
package enum InitramfsBuilder {
    package struct Image: Sendable, Hashable, Codable {
        package var url: URL
        /// True when it came from the cache and nothing was built.
        package var cached: Bool
        /// Module names to load before the ports exist, dependencies first.
        package var bootModules: [String]
        /// Module names to load after, dependencies first.
        package var laterModules: [String]
        /// Module names the init's power-button watcher loads, dependencies first
        /// (`launch.button=` on the kernel command line).
        package var powerButtonModules: [String]
        /// Asked-for modules the kernel has built in (nothing to load).
        package var builtin: [String]
        /// Optional modules (pvpanic, power button) this kernel has neither as a
        /// module nor built in: left out, and said so in the launch's log.
        package var missingOptional: [String]
        /// Modules under `/lib/modules/<release>/` for the guest's modprobe (0 = no such folder).
        package var modprobeModules = 0
        /// Why not every module of the release is there, when it was asked for.
        package var modprobeNote: String?
    }

    /// Bumped whenever the layout or the init changes, so old cache entries are not reused.
    /// (The request fingerprint also covers the init script itself.)
    static let formatVersion = "guestkit-initramfs-3"

    /// - Parameters:
    ///   - busybox: a static busybox for the guest's arch.
    ///   - arch: the guest's arch; the busybox must be built for it.
    ///   - modulesDirectory: `/lib/modules/<release>` of the guest kernel; nil when it has none
    ///     (then every driver must be built in).
    ///   - bootModules: needed for the virtio-serial ports (transport + virtio_console).
    ///   - laterModules: needed for shares, disks, network.
    ///   - optionalModules: nice to have (pvpanic): loaded when this kernel has them.
    ///   - powerButtonModules: what the init's power-button watcher needs (`button`, `evdev`,
    ///     `gpio_keys`); optional too. The watcher loads them alongside the port setup.
    package static func image(busybox: String, arch: Profile.Arch, modulesDirectory: URL?, bootModules: [String],
                             laterModules: [String], optionalModules: [String] = [],
                             powerButtonModules: [String] = [], moduleTree: ModuleTree? = nil) throws(LaunchError) -> Image {
        try checkStaticBusybox(busybox, arch: arch)
        // The request's fingerprint finds a built image without reading modules.dep, whose
        // parse is most of a warm launch's own time: modules.dep's identity stands for the
        // module files, since installing or rebuilding modules rewrites it (depmod).
        var request = Fingerprint()
        request.add(formatVersion)
        request.add(GuestInit.script)
        request.add(file: busybox)
        request.add(arch.rawValue)
        if let modulesDirectory {
            request.add(file: modulesDirectory.appendingPathComponent("modules.dep").path)
        }
        if let moduleTree {
            request.add("tree \(moduleTree.release) \(moduleTree.everyModule) \(moduleTree.budgetBytes)")
            for module in moduleTree.extra { request.add(file: module.path.path) }
        }
        request.add((["boot"] + bootModules + ["later"] + laterModules + ["optional"] + optionalModules
                     + ["power"] + powerButtonModules).joined(separator: ","))
        let index = CacheDirectory.root.appendingPathComponent("initramfs/request-\(request.hex).json")
        if let data = try? Data(contentsOf: index), var known = try? JSONDecoder().decode(Image.self, from: data),
           FileManager.default.fileExists(atPath: known.url.path) {
            known.cached = true
            return known
        }
        var resolvedBoot: [ResolvedModule] = []
        var resolvedLater: [ResolvedModule] = []
        var resolvedPower: [ResolvedModule] = []
        var builtin: [String] = []
        var missingOptional: [String] = []
        var treeContents: ModuleTreeContents?
        if let modulesDirectory {
            do {
                let index = try ModuleIndex(modulesDirectory: modulesDirectory)
                let boot = try index.resolution(of: bootModules)
                func present(_ names: [String]) -> [String] {
                    let found = names.filter { index.contains($0) || index.isBuiltin($0) }
                    missingOptional += names.filter { !found.contains($0) }
                    return found
                }
                let later = try index.resolution(of: bootModules + laterModules + present(optionalModules))
                let power = try index.resolution(of: present(powerButtonModules))
                resolvedBoot = boot.modules
                resolvedLater = later.modules
                resolvedPower = power.modules
                builtin = later.builtin + power.builtin.filter { !later.builtin.contains($0) }
                if let moduleTree { treeContents = try moduleTreeContents(moduleTree, index: index) }
            } catch {
                // The build tree's own advice is the cause's; "install the modules" would mislead.
                let fix: String? = if case .buildTree = error { nil } else { "install the modules of the guest kernel, or pass --modules DIR" }
                throw LaunchError(.hostProblem, "cannot resolve the guest's kernel modules", fix: fix, cause: error)
            }
        }
        let bootNames = resolvedBoot.map(\.name)
        let laterNames = resolvedLater.map(\.name).filter { !bootNames.contains($0) }
        // A dependency both lists share is loaded by both (the watcher runs alongside the
        // setup script); each loader takes "already loaded" as success.
        let powerNames = resolvedPower.map(\.name).filter { !bootNames.contains($0) }
        var resolvedAll = resolvedLater
        for module in resolvedPower where !resolvedAll.contains(module) { resolvedAll.append(module) }

        var fingerprint = Fingerprint()
        fingerprint.add(formatVersion)
        fingerprint.add(GuestInit.script)
        fingerprint.add(file: busybox)
        for module in resolvedAll { fingerprint.add(file: module.path.path) }
        if let moduleTree {
            if modulesDirectory == nil { treeContents = try? moduleTreeContents(moduleTree, index: nil) }
            fingerprint.add("tree \(moduleTree.release)")
            for (path, module) in treeContents?.modules ?? [] { fingerprint.add(path); fingerprint.add(file: module.path.path) }
            for module in moduleTree.extra { fingerprint.add(file: module.path.path) }
        }
        let url = CacheDirectory.root.appendingPathComponent("initramfs/\(fingerprint.hex).cpio")
        let result = Image(url: url, cached: true, bootModules: bootNames, laterModules: laterNames,
                           powerButtonModules: powerNames, builtin: builtin, missingOptional: missingOptional,
                           modprobeModules: (treeContents?.modules.count ?? 0) + (treeContents?.extra.count ?? 0),
                           modprobeNote: treeContents?.note)
        defer { if let data = try? JSONEncoder().encode(result) { try? writeAtomically(data, to: index) } }
        if FileManager.default.fileExists(atPath: url.path) { return result }

        do {
            var archive = CpioArchive()
            for dir in ["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/mnt", "/etc", "/lib/modules"] {
                try archive.addDirectory(dir)
            }
            try archive.addCharacterDevice("/dev/console", major: 5, minor: 1, mode: 0o600)
            try archive.addCharacterDevice("/dev/null", major: 1, minor: 3, mode: 0o666)
            try archive.addFile("/bin/busybox", contentsOf: URL(fileURLWithPath: busybox), mode: 0o755)
            try archive.addSymlink("/bin/sh", target: "busybox")
            try archive.addFile("/init", contents: Data(GuestInit.script.utf8), mode: 0o755)
            let index = try modulesDirectory.map { try ModuleIndex(modulesDirectory: $0) }
            for module in resolvedAll {
                let bytes = try index!.loadDecompressed(module)
                try archive.addFile("/lib/modules/\(module.name).ko", contents: bytes, mode: 0o644)
            }
            if let moduleTree, let treeContents { try add(treeContents, release: moduleTree.release, index: index, to: &archive) }
            try writeAtomically(archive.finish(), to: url)
        } catch {
            throw LaunchError(.hostProblem, "building the guest initramfs failed", fix: "check that \(CacheDirectory.root.path) is writable", cause: error)
        }
        var built = result
        built.cached = false
        return built
    }

    /// A dynamically linked busybox can't run in an initramfs that has no libc.
    package static func checkStaticBusybox(_ path: String, arch: Profile.Arch) throws(LaunchError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LaunchError.missing(path, package: "busybox-static", purpose: "as the guest's shell and tools")
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 64)) ?? Data()
        guard header.count == 64, header.starts(with: [0x7f, 0x45, 0x4c, 0x46]), header[4] == 2 else {
            throw LaunchError(.hostProblem, "\(path) is not a 64-bit ELF program", fix: "install busybox-static")
        }
        func u16(_ o: Int) -> Int { Int(header[o]) | Int(header[o + 1]) << 8 }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(header[o + $1]) << (8 * $1) } }
        // e_machine: 62 = x86_64, 183 = aarch64. A busybox of the wrong arch can't run as the guest's init.
        let machine = u16(18)
        let expected = arch == .x86_64 ? 62 : 183
        if machine != expected {
            throw LaunchError(.hostProblem, "\(path) is not an \(arch.rawValue) program (ELF machine \(machine)), so it can't be an \(arch.rawValue) guest's shell",
                              fix: arch == .x86_64 ? "install busybox-static" : "set guestKit.busybox to an \(arch.rawValue) static busybox (Scripts/fetch-guest-arm64 fetches one)")
        }
        let phoff = u64(32), phentsize = u16(54), phnum = u16(56)
        try? handle.seek(toOffset: phoff)
        let table = (try? handle.read(upToCount: phentsize * phnum)) ?? Data()
        for i in 0..<phnum where table.count >= (i + 1) * phentsize {
            let base = table.startIndex + i * phentsize
            let type = UInt32(table[base]) | UInt32(table[base + 1]) << 8 | UInt32(table[base + 2]) << 16 | UInt32(table[base + 3]) << 24
            if type == 3 { // PT_INTERP: needs a dynamic loader the initramfs doesn't have
                throw LaunchError(.hostProblem, "\(path) is dynamically linked; the guest has no libc",
                                  fix: "use a static build: " + LaunchError.installFix("Debian and Ubuntu: busybox-static"))
            }
        }
    }
}
