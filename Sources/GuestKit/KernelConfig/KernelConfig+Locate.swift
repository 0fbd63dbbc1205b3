import Foundation

extension KernelConfig {
    /// The configuration of the kernel file at `kernel`, from the first place that has it:
    /// the `.config` of the build tree it lies in, `config-<release>` next to it (how
    /// distributions install kernels), `/boot/config-<release>`, or the IKCONFIG copy
    /// inside the image. Returns nil and the places looked at when none has it.
    /// Blocks while a bzImage's payload is decompressed (only when nothing else has it).
    public static func locate(kernel: URL, release: String?) -> (config: KernelConfig?, searched: [String]) {
        var (file, searched) = configFile(kernel: kernel, release: release)
        if let file, let text = try? String(contentsOfFile: file, encoding: .utf8) {
            return (KernelConfig(parsing: text, source: file), searched)
        }
        searched.append("IKCONFIG in \(kernel.path)")
        if let text = IKConfig.configText(ofKernel: kernel) {
            return (KernelConfig(parsing: text, source: "the IKCONFIG copy in \(kernel.path)"), searched)
        }
        return (nil, searched)
    }

    /// The config file of the kernel at `kernel` (a tree's `.config`, or `config-<release>`
    /// beside it or in /boot), without reading it; nil when there is none, with the paths tried.
    static func configFile(kernel: URL, release: String?) -> (path: String?, searched: [String]) {
        if let tree = KernelTree.containing(kernel: kernel) { return (tree.root.appendingPathComponent(".config").path, []) }
        guard let release else { return (nil, ["config-<release> (the kernel's release is unknown)"]) }
        var searched: [String] = []
        let folders = [kernel.deletingLastPathComponent(), kernel.resolvingSymlinksInPath().deletingLastPathComponent(), URL(fileURLWithPath: "/boot")]
        for folder in folders {
            let file = folder.appendingPathComponent("config-\(release)").path
            guard !searched.contains(file) else { continue }
            searched.append(file)
            if FileManager.default.isReadableFile(atPath: file) { return (file, searched) }
        }
        return (nil, searched)
    }
}
