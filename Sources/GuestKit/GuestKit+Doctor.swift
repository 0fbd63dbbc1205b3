import Foundation
import LaunchSupport
import QEMULaunch

extension GuestKit {
    /// The guest kit's part of `launch doctor`: busybox, the kernels under /boot
    /// (format, arch, PVH fast boot, modules), and the cache folder.
    package static func hostChecks(host: HostFacts, bootFolder: String = "/boot") -> [HostCheck] {
        var checks: [HostCheck] = []
        do {
            try InitramfsBuilder.checkStaticBusybox("/bin/busybox", arch: host.arch)
            checks.append(HostCheck("busybox", .ok, "/bin/busybox is a static \(host.arch.rawValue) program"))
        } catch {
            checks.append(HostCheck("busybox", .fail, error.message, fix: error.fix ?? LaunchError.installFix("Debian and Ubuntu: busybox-static")))
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: bootFolder)) ?? []).filter { $0.hasPrefix("vmlinuz-") }.sorted()
        if names.isEmpty {
            checks.append(HostCheck("kernels", .fail, "no \(bootFolder)/vmlinuz-*: \"kernel\": \"auto\" (the bundled profiles) needs one",
                                    fix: KernelLocator.installFix))
        }
        for name in names {
            let path = "\(bootFolder)/\(name)"
            let release = String(name.dropFirst("vmlinuz-".count))
            guard let image = try? KernelImage.inspect(URL(fileURLWithPath: path)) else {
                checks.append(HostCheck("kernel \(release)", .warn, "\(path) is not readable", fix: "run as a user who can read \(bootFolder) (Ubuntu makes kernels root-only)"))
                continue
            }
            var parts = ["\(image.format)", image.arch?.rawValue ?? "unknown arch"]
            let config = (try? String(contentsOfFile: "\(bootFolder)/config-\(release)", encoding: .utf8)) ?? ""
            if config.contains("CONFIG_PVH=y") { parts.append("PVH entry: fast boot under TCG") }
            let hasModules = FileManager.default.fileExists(atPath: "/lib/modules/\(release)/modules.dep")
            parts.append(hasModules ? "modules in /lib/modules/\(release)" : "no modules in /lib/modules/\(release)")
            // Its config against every guest the guest kit can boot on that arch (the check a launch makes).
            var configProblems: [String] = []
            if !config.isEmpty, let arch = image.arch.flatMap({ Profile.Arch(rawValue: $0.rawValue) }) {
                let index = try? ModuleIndex(kernelRelease: release)
                let modules = index.map { index in KernelConfigCheck.OfferedModules(folder: index.modulesDirectory.path) { index.contains($0) || index.isBuiltin($0) } }
                configProblems = KernelConfigCheck.check(KernelConfig(parsing: config, source: "\(bootFolder)/config-\(release)"), guest: .everything(arch: arch), modules: modules).problems
                if configProblems.isEmpty { parts.append("config-\(release) has every option guests need") }
            }
            var fix: String?
            if !hasModules { fix = "reinstall its package (linux-image-\(release)) so the guest kit finds its virtio modules" }
            if !configProblems.isEmpty {
                parts.append("its config lacks what some guests need: \(configProblems.joined(separator: "; "))")
                fix = [fix, "boot another kernel, or rebuild this one with what `launch kconfig` prints"].compactMap { $0 }.joined(separator: "; ")
            }
            checks.append(HostCheck("kernel \(release)", fix == nil ? .ok : .warn, parts.joined(separator: ", "), fix: fix))
        }
        let cache = CacheDirectory.root
        try? FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        if access(cache.path, W_OK) == 0 {
            checks.append(HostCheck("cache", .ok, "\(cache.path) is writable"))
        } else {
            checks.append(HostCheck("cache", .fail, "\(cache.path) is not writable: the initramfs can't be built",
                                    fix: "set LAUNCH_CACHE_DIR to a writable folder"))
        }
        checks.append(snapshotCheck(SnapshotCache.standard))
        return checks
    }

    /// The warm-start snapshots in the cache: how many, their space against the bound, which
    /// profiles they are of.
    static func snapshotCheck(_ cache: SnapshotCache) -> HostCheck {
        let entries = cache.entries()
        let bytes = entries.reduce(Int64(0)) { $0 + $1.bytes }
        let bound = "bound \(byteCount(UInt64(cache.limitBytes))), least recently used evicted first; LAUNCH_SNAPSHOT_CACHE_LIMIT sets it"
        guard !entries.isEmpty else {
            return HostCheck("snapshots", .ok, "none in \(cache.folder.path) (\(bound))")
        }
        let profiles = Set(entries.compactMap { $0.record?.profile }).sorted()
        return HostCheck("snapshots", .ok, "\(entries.count) in \(cache.folder.path), \(byteCount(UInt64(bytes))) (\(bound)); profiles: \(profiles.joined(separator: " "))")
    }
}
