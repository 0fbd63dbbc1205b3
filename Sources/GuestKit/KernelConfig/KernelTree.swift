import Foundation
import QEMULaunch

/// A kernel build tree (where `make` ran): its `.config`, the image built for an arch,
/// and whether that image is older than what it was built from.
public struct KernelTree: Sendable {
    /// The top of the tree.
    public var root: URL
    /// Its `.config`, when it has one.
    public var config: KernelConfig?

    /// Opens the tree at `root`; a path that is not a folder is an error that says so.
    public init(_ root: URL) throws(LaunchError) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder) else {
            throw LaunchError(.invalidProfile, "the kernel tree \(root.path) does not exist",
                              fix: "give the top of a kernel build tree (the folder where you ran make)")
        }
        guard isFolder.boolValue else {
            throw LaunchError(.invalidProfile, "the kernel tree \(root.path) is a file, not a folder",
                              fix: "give the top of a kernel build tree (the folder where you ran make); a kernel image goes to --kernel")
        }
        self.root = root.standardizedFileURL
        let configFile = self.root.appendingPathComponent(".config")
        config = (try? String(contentsOf: configFile, encoding: .utf8)).map { KernelConfig(parsing: $0, source: configFile.path) }
    }

    /// The tree a kernel file lies in, when it is one a build makes
    /// (`arch/<arch>/boot/bzImage` or `Image`, or `vmlinux` at the top) next to a `.config`.
    public static func containing(kernel: URL) -> KernelTree? {
        let path = kernel.standardizedFileURL.path
        var top: String?
        if let range = path.range(of: "/arch/", options: .backwards), path.hasSuffix("/boot/bzImage") || path.hasSuffix("/boot/Image") {
            top = String(path[..<range.lowerBound])
        } else if kernel.lastPathComponent == "vmlinux" {
            top = kernel.standardizedFileURL.deletingLastPathComponent().path
        }
        guard let top, FileManager.default.fileExists(atPath: top + "/.config"),
              FileManager.default.fileExists(atPath: top + "/Makefile"),
              let tree = try? KernelTree(URL(fileURLWithPath: top)) else { return nil }
        return tree
    }

    /// Where a build for `arch` puts its boot image, relative to the tree: `arch/x86/boot/bzImage`, `arch/arm64/boot/Image`.
    static func bootImage(for arch: Profile.Arch) -> String {
        arch == .x86_64 ? "arch/x86/boot/bzImage" : "arch/arm64/boot/Image"
    }

    /// The image to boot for a guest of `arch`: the boot image, else `vmlinux`. A tree
    /// configured for another arch, or not built, is an error that says which and the fix.
    /// - Parameters:
    ///   - arch: the guest's arch.
    ///   - archSource: how the arch was chosen, for the message ("the profile's arch").
    ///   - guest: what the guest will use; with it, a tree configured but not built has its
    ///     `.config` checked too, so a config that could not boot the guest is said before
    ///     the developer spends minutes building it.
    public func image(for arch: Profile.Arch, archSource: String = "the profile's arch",
                      guest: KernelRequirements.Guest? = nil) throws(LaunchError) -> URL {
        let target = arch == .x86_64 ? "bzImage" : "Image"
        if let configArch = config?.kernelArch, configArch != (arch == .x86_64 ? "x86" : "arm64") {
            throw LaunchError(.invalidProfile, "the kernel tree \(root.path) is configured for \(configArch) (its .config), but \(archSource) is \(arch.rawValue)",
                              fix: configArch == "arm64" ? "boot it with an aarch64 profile (like Profiles/arm64.json, which sets \"arch\": \"aarch64\")" : "boot it with an x86_64 profile, or give a tree configured for \(arch.rawValue)")
        }
        let candidates = [Self.bootImage(for: arch), "vmlinux"].map { root.appendingPathComponent($0) }
        // (A folder with the image and no .config, like a copy of a build's output, still boots;
        // its config is then looked for as for any kernel.)
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found }
        let jobs = ProcessInfo.processInfo.activeProcessorCount
        guard let config else {
            throw LaunchError(.invalidProfile, "the kernel tree \(root.path) has no .config and no kernel image (neither \(candidates.map(\.path).joined(separator: " nor ")) exists)",
                              fix: "configure and build it (make tinyconfig; launch kconfig --apply \(root.path); make -j\(jobs) \(target)), or point at the folder where you ran make")
        }
        let build = "make -j\(jobs) \(target)\(config["MODULES"] == .yes ? " modules" : "")"
        let notBuilt = "the kernel tree \(root.path) is configured but not built: neither \(candidates.map(\.path).joined(separator: " nor ")) exists"
        if let guest, case let problems = unbootable(config, guest: guest), !problems.isEmpty {
            throw LaunchError(.invalidProfile, notBuilt + "; and its .config could not boot this guest:\n" + problems.map { "  - " + $0 }.joined(separator: "\n"),
                              fix: "launch kconfig --apply \(root.path) (adds what the guest needs), then \(build)")
        }
        throw LaunchError(.invalidProfile, notBuilt, fix: "build it: \(build)")
    }

    /// What in `config` would stop `guest`, counting as given the modules the tree's own
    /// `make modules` would build (a tree's modules go to the guest with `--kernel-tree`).
    private func unbootable(_ config: KernelConfig, guest: KernelRequirements.Guest) -> [String] {
        var offered: KernelConfigCheck.OfferedModules?
        if config["MODULES"] == .yes {
            let built = Set(KernelRequirements.options(for: guest).compactMap { config[$0.name] == .module ? $0.module : nil })
            offered = .init(folder: "\(root.path)'s modules") { built.contains($0) }
        }
        return KernelConfigCheck.check(config, guest: guest, modules: offered).problems
    }

    /// Why `image` (a file of this tree) is older than what it is built from, or nil:
    /// a boot image older than `vmlinux` (`make vmlinux` alone leaves the old one), or any
    /// image older than `.config` (configured again since the last build).
    public func staleness(of image: URL) -> String? {
        func modified(_ url: URL) -> Date? {
            (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
        }
        guard let built = modified(image) else { return nil }
        let name = image.lastPathComponent
        let target = name == "vmlinux" ? "vmlinux" : name
        let vmlinux = root.appendingPathComponent("vmlinux")
        if name != "vmlinux", let newer = modified(vmlinux), newer > built {
            return "stale \(name): \(image.path) is older than \(vmlinux.path) (\(Self.stamp(built)) against \(Self.stamp(newer))), so it holds an earlier build: run make \(target)"
        }
        let configFile = root.appendingPathComponent(".config")
        if let changed = modified(configFile), changed > built {
            return "stale \(name): \(image.path) is older than \(configFile.path) (\(Self.stamp(built)) against \(Self.stamp(changed))): the configuration changed after the last build; run make \(target)"
        }
        return nil
    }

    private static func stamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: date)
    }
}
