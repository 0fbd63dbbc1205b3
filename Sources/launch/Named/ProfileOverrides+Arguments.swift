import Foundation

extension ProfileOverrides {
    /// These overrides as command-line arguments again (paths made absolute), for the
    /// supervisor `launch up` starts: it loads the profile the same way.
    var arguments: [String] {
        var args: [String] = []
        func add(_ flag: String, _ value: String?) { if let value { args += [flag, value] } }
        add("--accel", accel?.rawValue)
        add("--kernel", kernel.map { $0 == "auto" ? $0 : absolutePath($0) })
        add("--initrd", initrd.map(absolutePath))
        add("--append", append)
        add("--memory", memory)
        add("--cpus", cpus.map(String.init))
        add("--kernel-tree", kernelTree.map(absolutePath))
        add("--timeout", timeout)
        add("--boot-timeout", bootTimeout)
        add("--modules", modules.map(absolutePath))
        if noFastBoot { args.append("--no-fast-boot") }
        add("--rootfs", rootfs.map { $0 == "host" || $0.hasPrefix("disk:") ? $0 : absolutePath($0) })
        for dir in rwdir { add("--rwdir", absolutePath(dir)) }
        if rootOverlay { args.append("--root-overlay") }
        return args
    }
}
