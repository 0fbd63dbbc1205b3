import Foundation
import LaunchSupport
import Logging
import QEMULaunch

extension GuestKit {
    /// The check before a boot: a build tree's image older than what it was built from,
    /// modules of another release, and the kernel's configuration against what the guest
    /// needs. Every problem at once, as one `.invalidProfile` error; recommended options
    /// that are off are warnings. A kernel whose configuration can't be found is said in
    /// one line and not checked. Blocks (reads files; may decompress an image for IKCONFIG).
    /// - Returns: true when a configuration was found and checked (and passed).
    @discardableResult
    static func checkKernel(_ kernel: URL, release: String?, guest: KernelRequirements.Guest,
                            modulesDirectory: URL?, logger: Logger) throws(LaunchError) -> Bool {
        let started = ContinuousClock.now
        var problems: [String] = []
        if let tree = KernelTree.containing(kernel: kernel), let stale = tree.staleness(of: kernel) {
            problems.append(stale)
        }
        if let modulesDirectory, let release {
            let folder = modulesDirectory.lastPathComponent
            // A release folder is named after its release (depmod's layout); a folder named otherwise says nothing.
            if folder != release, folder.first?.isNumber == true {
                problems.append("the modules in \(modulesDirectory.path) are for kernel \(folder), but the kernel \(kernel.path) is \(release): the guest can't load them (their version magic differs); pass this kernel's modules (make modules_install INSTALL_MOD_PATH=DIR in its tree, then --modules DIR)")
            }
        }
        /// The modules offered, read only when the verdict isn't cached. A folder that was given
        /// but can't be read (a build tree, no modules.dep) is that error, with its own advice,
        /// not "no modules were given".
        func modules() throws(LaunchError) -> KernelConfigCheck.OfferedModules? {
            guard let modulesDirectory else { return nil }
            let index: ModuleIndex
            do { index = try ModuleIndex(modulesDirectory: modulesDirectory) } catch {
                throw LaunchError(.hostProblem, "cannot resolve the guest's kernel modules", cause: error)
            }
            return .init(folder: modulesDirectory.path) { index.contains($0) || index.isBuiltin($0) }
        }
        // A verdict is kept per kernel, config file, module index and option list: "has what
        // this guest needs" (parsing a distribution's config and modules.dep costs a warm launch
        // a few hundred ms), or "no config" (looking for IKCONFIG decompresses the image).
        let options = KernelRequirements.options(for: guest)
        var key = Fingerprint()
        key.add("kernel-config-check-2")
        key.add(guest.arch.rawValue)
        key.add(KernelRequirements.fragment(options))
        key.add(file: kernel.path)
        let (configFile, searchedFiles) = KernelConfig.configFile(kernel: kernel, release: release)
        if let configFile { key.add(file: configFile) }
        if let modulesDirectory { key.add(file: modulesDirectory.appendingPathComponent("modules.dep").path) }
        let verdictFile = CacheDirectory.root.appendingPathComponent("kernel-config/\(key.hex)")
        let noConfig = "none"
        func sayNoConfig(_ searched: [String]) {
            logger.info("kernel config: none found for \(kernel.path) (looked at \(searched.joined(separator: ", "))); not checked against what the guest needs")
        }
        var found: KernelConfig?
        switch (try? String(contentsOf: verdictFile, encoding: .utf8)).map({ $0 == noConfig }) {
        case true?:
            sayNoConfig(searchedFiles + ["IKCONFIG in \(kernel.path)"])
        case false? where problems.isEmpty:
            logger.debug("kernel config: has what this guest needs (verdict cached at \(verdictFile.path))")
            return true
        default:
            let (config, searched) = KernelConfig.locate(kernel: kernel, release: release)
            found = config
            guard let config else {
                sayNoConfig(searched)
                try? writeAtomically(Data(noConfig.utf8), to: verdictFile)
                break
            }
            let report = KernelConfigCheck.check(config, guest: guest, modules: try modules())
            problems += report.problems
            for warning in report.warnings { logger.warning("kernel config: \(warning)") }
            if report.problems.isEmpty {
                logger.debug("kernel config: \(config.source) has what this guest needs (checked in \(formatDuration(started.duration(to: .now))))")
                // Warnings are said again on the next launch: only a verdict without any is kept.
                if report.warnings.isEmpty { try? writeAtomically(Data(config.source.utf8), to: verdictFile) }
            }
        }
        guard !problems.isEmpty else { return found != nil }
        // Config gaps share one fix; a stale image or other modules carry theirs in their line.
        let configGaps = found != nil && problems.contains { $0.hasPrefix("CONFIG_") || $0.hasPrefix("the kernel is configured") }
        let tree = KernelTree.containing(kernel: kernel)
        var fix: String?
        if configGaps {
            fix = tree.map { "`launch kconfig --apply \($0.root.path)` adds every option this guest needs to its .config; then rebuild (make -j\(ProcessInfo.processInfo.activeProcessorCount) \(kernel.lastPathComponent)\(found?["MODULES"] == .yes ? " modules" : ""))" }
                ?? "`launch kconfig` prints the options this guest needs, as a fragment for scripts/kconfig/merge_config.sh"
        }
        throw LaunchError(
            .invalidProfile,
            "the kernel \(kernel.path) can't boot this guest\(found.map { " (config: \($0.source))" } ?? ""): \(problems.count) problem\(problems.count == 1 ? "" : "s")"
                + problems.map { "\n  - \($0)" }.joined(),
            fix: fix)
    }
}
