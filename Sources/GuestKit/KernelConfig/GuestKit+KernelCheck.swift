import Foundation
import Logging
import QEMULaunch

extension GuestKit {
    /// The check before a boot: a build tree's image older than what it was built from,
    /// modules of another release, and the kernel's configuration against what the guest
    /// needs. Every problem at once, as one `.invalidProfile` error; recommended options
    /// that are off are warnings. A kernel whose configuration can't be found is said in
    /// one line and not checked. Blocks (reads files; may decompress an image for IKCONFIG).
    static func checkKernel(_ kernel: URL, release: String?, guest: KernelRequirements.Guest,
                            modulesDirectory: URL?, logger: Logger) throws(LaunchError) {
        var problems: [String] = []
        if let tree = KernelTree.containing(kernel: kernel), let stale = tree.staleness(of: kernel) {
            problems.append(stale)
        }
        var modules: KernelConfigCheck.OfferedModules?
        if let modulesDirectory {
            let folder = modulesDirectory.lastPathComponent
            // A release folder is named after its release (depmod's layout); a folder named otherwise says nothing.
            if let release, folder != release, folder.first?.isNumber == true {
                problems.append("the modules in \(modulesDirectory.path) are for kernel \(folder), but the kernel \(kernel.path) is \(release): the guest can't load them (their version magic differs); pass this kernel's modules (make modules_install INSTALL_MOD_PATH=DIR in its tree, then --modules DIR)")
            }
            if let index = try? ModuleIndex(modulesDirectory: modulesDirectory) {
                modules = .init(folder: modulesDirectory.path) { index.contains($0) || index.isBuiltin($0) }
            }
        }
        let (found, searched) = KernelConfig.locate(kernel: kernel, release: release)
        if let config = found {
            let report = KernelConfigCheck.check(config, guest: guest, modules: modules)
            problems += report.problems
            for warning in report.warnings { logger.warning("kernel config: \(warning)") }
            if problems.isEmpty { logger.debug("kernel config: \(config.source) has what this guest needs") }
        } else {
            logger.info("kernel config: none found for \(kernel.path) (looked at \(searched.joined(separator: ", "))); not checked against what the guest needs")
        }
        guard !problems.isEmpty else { return }
        let tree = KernelTree.containing(kernel: kernel)
        throw LaunchError(
            .invalidProfile,
            "the kernel \(kernel.path) can't boot this guest\(found.map { " (config: \($0.source))" } ?? ""): \(problems.count) problem\(problems.count == 1 ? "" : "s")",
            fix: tree.map { "`launch kconfig --apply \($0.root.path)` adds every option this guest needs to its .config; then rebuild (make -j\(ProcessInfo.processInfo.activeProcessorCount) \(kernel.lastPathComponent)\(found?["MODULES"] == .yes ? " modules" : ""))" }
                ?? "`launch kconfig` prints the options this guest needs, as a fragment for scripts/kconfig/merge_config.sh")
    }
}
