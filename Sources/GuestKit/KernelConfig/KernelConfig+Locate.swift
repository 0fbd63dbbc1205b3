import Foundation

extension KernelConfig {
    /// The configuration of the kernel file at `kernel`, from the first place that has it:
    /// the `.config` of the build tree it lies in, `config-<release>` next to it (how
    /// distributions install kernels), `/boot/config-<release>`, or the IKCONFIG copy
    /// inside the image. Returns nil and the places looked at when none has it.
    /// Blocks while a bzImage's payload is decompressed (only when nothing else has it).
    public static func locate(kernel: URL, release: String?) -> (config: KernelConfig?, searched: [String]) {
        var searched: [String] = []
        if let tree = KernelTree.containing(kernel: kernel), let config = tree.config { return (config, []) }
        if let release {
            let resolved = kernel.resolvingSymlinksInPath()
            let beside = [kernel.deletingLastPathComponent(), resolved.deletingLastPathComponent(), URL(fileURLWithPath: "/boot")]
            var seen: Set<String> = []
            for folder in beside {
                let file = folder.appendingPathComponent("config-\(release)").path
                guard seen.insert(file).inserted else { continue }
                searched.append(file)
                if let text = try? String(contentsOfFile: file, encoding: .utf8) { return (KernelConfig(parsing: text, source: file), searched) }
            }
        } else {
            searched.append("config-<release> (the kernel's release is unknown)")
        }
        searched.append("IKCONFIG in \(kernel.path)")
        if let text = IKConfig.configText(ofKernel: kernel) {
            return (KernelConfig(parsing: text, source: "the IKCONFIG copy in \(kernel.path)"), searched)
        }
        return (nil, searched)
    }
}
