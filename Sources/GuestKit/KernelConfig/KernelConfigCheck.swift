import Foundation
import QEMULaunch

/// Compares a kernel's configuration with what a guest needs (``KernelRequirements``)
/// and the modules it is given, before anything boots: every problem at once, each with
/// its fix. Pure: the caller reads the config and the module index.
public enum KernelConfigCheck {
    /// What the check found.
    public struct Report: Sendable, Hashable {
        /// Problems that would stop the guest: the launch fails with all of them.
        public var problems: [String] = []
        /// Recommended options that are off: said, and the launch goes on.
        public var warnings: [String] = []
    }

    /// Which modules the guest is given: names that can be loaded, and names built in.
    public struct OfferedModules: Sendable {
        /// The release folder (`/lib/modules/<release>`), for messages.
        public var folder: String
        /// Whether a module of that name (as the kernel spells it) is in the folder, or built in.
        public var contains: @Sendable (String) -> Bool

        /// Modules in `folder`, answered by `contains`.
        public init(folder: String, contains: @escaping @Sendable (String) -> Bool) {
            self.folder = folder
            self.contains = contains
        }
    }

    /// - Parameters:
    ///   - config: the kernel's configuration.
    ///   - guest: what the guest uses; its `arch` is the profile's.
    ///   - modules: the modules given to the guest kit, nil when none.
    public static func check(_ config: KernelConfig, guest: KernelRequirements.Guest, modules: OfferedModules?) -> Report {
        var report = Report()
        // Another arch's kernel: nothing else in the list would mean anything.
        if let kernelArch = config.kernelArch, kernelArch != (guest.arch == .x86_64 ? "x86" : "arm64") {
            report.problems.append("the kernel is configured for \(kernelArch) (\(config.source)), but the profile's arch is \(guest.arch.rawValue): use \(kernelArch == "arm64" ? "an aarch64 profile (like Profiles/arm64.json)" : "an x86_64 profile") or a kernel built for \(guest.arch.rawValue)")
            return report
        }
        for option in KernelRequirements.options(for: guest) where option.need != .optional {
            let value = config[option.name]
            if option.name == "64BIT", config.isX86Without64Bit {
                report.problems.append("CONFIG_64BIT is not set: this is a 32-bit x86 kernel (make tinyconfig's default), and the guest kit's busybox is a 64-bit static program, so the boot would end in \"Failed to execute /init (error -8)\": set CONFIG_64BIT=y")
                continue
            }
            let offered = option.module.flatMap { module in modules.map { $0.contains(module) } } ?? false
            // A module in the folder counts even when the .config read says "not set": it may be older than those modules.
            let satisfied = switch value {
            case .yes?, .text?: true
            case .module?: option.module != nil && offered
            case nil: offered
            }
            if satisfied { continue }
            let line: String
            switch (value, option.module, modules) {
            case (.module?, nil, _):
                line = "\(option.symbol)=m, but it must be built in: set \(option.symbol)=y (\(option.why))"
            case (.module?, let module?, nil):
                line = "\(option.symbol)=m and no modules were given: pass --modules (the folder of make modules_install INSTALL_MOD_PATH=DIR), or build it in (=y) (\(module): \(option.why))"
            case (.module?, let module?, let modules?):
                line = "\(option.symbol)=m, but the modules in \(modules.folder) have no \(module): install this kernel's modules there (make modules_install), or build it in (=y) (\(option.why))"
            case (_, nil, _):
                line = "\(option.symbol) is not set: enable it (=y) (\(option.why))"
            case (_, let module?, nil):
                line = "\(option.symbol) is not set and no module for it was given: enable it (=y) or pass --modules (\(module): \(option.why))"
            case (_, let module?, let modules?):
                line = "\(option.symbol) is not set and the modules in \(modules.folder) have no \(module): enable it (=y) (\(option.why))"
            }
            switch option.need {
            case .required: report.problems.append(line)
            case .recommended: report.warnings.append("recommended: " + line)
            case .optional: break
            }
        }
        return report
    }
}
