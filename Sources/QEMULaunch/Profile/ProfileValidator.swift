/// Checks of a decoded profile against a host's facts and the files on it.
public enum ProfileValidator {
    /// Longest socket file name the planner puts in a runtime dir ("port99.sock").
    static let longestSocketName = 12
    /// `launch-` + 6 random characters (mkdtemp).
    static let runtimeDirNameLength = 13

    /// Console ports a profile may ask for: virtio-serial has 31, and callers' own
    /// protocols (`PlanOptions.guestPorts`, like the guest kit's session) need room too.
    public static let maxConsoles = 26

    /// The port-name prefix kept for the ports callers add (`PlanOptions.guestPorts`):
    /// a profile's console can never take one of their names. QEMULaunch reserves the
    /// prefix without knowing any protocol; the guest kit names its session ports under it.
    public static let reservedPortPrefix = "launch."

    /// The usable bytes of a Unix socket path (sun_path minus the NUL) on `os`.
    public static func socketPathLimit(_ os: HostFacts.OS) -> Int { os == .linux ? 107 : 103 }

    /// Whether QEMU will lock guest RAM: `lockMemory`, or extra args asking for it (mem-lock, VFIO).
    public static func needsLockedMemory(_ profile: Profile) -> Bool {
        profile.lockMemory || profile.qemu.extraArgs.contains { $0.contains("mem-lock=on") || $0.hasPrefix("vfio-pci") }
    }

    /// Every problem of `profile` on `host`, looking at its files now (`HostFiles.read(for:)`);
    /// empty when it can be planned. For checking a profile early, before anything is
    /// prepared (`Machine.refuseEarly`, before the guest kit builds anything); planning runs the
    /// same checks from the facts it was given (`problems(_:host:files:runtimeDir:)`).
    public static func hostProblems(_ profile: Profile, host: HostFacts, runtimeDir: String? = nil) -> [ProfileProblem] {
        problems(profile, host: host, files: HostFiles.read(for: profile), runtimeDir: runtimeDir)
    }

    /// Every problem of `profile` on `host` with `files` on it; empty when it can be planned.
    /// Pure: it reads nothing, `files` says what is at each path. `runtimeDir` is the VM's
    /// runtime dir when known (else one `RuntimeDirectory` would make under the base is assumed).
    public static func problems(_ profile: Profile, host: HostFacts, files: HostFiles, runtimeDir: String? = nil) -> [ProfileProblem] {
        var problems: [ProfileProblem] = []
        func add(_ path: String, _ message: String, _ fix: String? = nil) {
            problems.append(ProfileProblem(path: path, message: message, fix: fix))
        }
        let isFile = files.isFile
        let isDirectory = files.isDirectory

        if let rootfs = profile.rootfs { problems += rootfs.problems(in: profile, files: files) }
        problems += profile.reachabilityProblems(arch: profile.arch ?? host.arch)
        if profile.name == "." || profile.name == ".." {
            // It names the VM's state folder, which must be a folder of its own.
            add("name", "\"\(profile.name)\" is not a usable VM name: it would name the folder of every VM's state", "use a name with a letter or digit")
        } else if !isUsableVMName(profile.name) {
            add("name", "\"\(profile.name)\" is not a usable VM name", "use 1-64 letters, digits, '.', '_' or '-'")
        }
        if !(1...255).contains(profile.cpus) {
            add("cpus", "\(profile.cpus) CPUs is out of range", "use 1 to 255")
        }
        if profile.memory.bytes < 32 << 20 {
            add("memory", "\(profile.memory) is too little memory for a Linux guest", "use at least \"32M\" (\"256M\" or more is comfortable)")
        } else if profile.memory.bytes % (1 << 20) != 0 {
            add("memory", "\(profile.memory) is not a whole number of MiB", "round it to MiB, like \"512M\"")
        }

        let arch = profile.arch ?? host.arch
        let machine = profile.machine ?? Planner.defaultMachine(arch: arch, firmware: profile.firmware)
        switch (arch, machine) {
        case (.x86_64, .virt):
            add("machine", "the virt machine is for aarch64; an x86_64 guest can't have it", "use \"microvm\", \"q35\" or \"pc\"")
        case (.aarch64, .microvm), (.aarch64, .q35), (.aarch64, .pc):
            add("machine", "the \(machine.rawValue) machine is x86-only; an aarch64 guest can't have it", "use \"virt\"")
        default: break
        }
        switch (machine, profile.transport) {
        case (.microvm, .pci):
            add("transport", "microvm has no PCI bus here: its devices are virtio-mmio", "use \"transport\": \"mmio\" (or \"auto\"), or machine \"q35\"")
        case (.q35, .mmio), (.pc, .mmio):
            add("transport", "\(machine.rawValue) has no virtio-mmio bus: its devices are PCI", "use \"transport\": \"pci\" (or \"auto\"), or machine \"microvm\"")
        default: break
        }
        // The accelerator is checked where it is chosen (Planner.chooseAccelerator).
        if profile.firmware == .uefi && machine == .microvm {
            add("firmware", "microvm boots only a kernel directly; it has no UEFI firmware", "use machine \"q35\" for UEFI")
        }

        // Boot files.
        if let kernel = profile.kernel {
            if kernel != "auto" && !isFile(kernel) {
                add("kernel", "no kernel file at \(kernel)", "give the path of a bzImage/vmlinux/Image, or \"auto\" for the newest /boot/vmlinuz-*")
            }
        } else if profile.firmware == .none {
            add("kernel", "no kernel given, and firmware is \"none\" (direct kernel boot needs one)", "add \"kernel\": \"auto\" or a path")
        }
        if let initrd = profile.initrd, !isFile(initrd) {
            add("initrd", "no initrd file at \(initrd)", "fix the path or remove \"initrd\"")
        }

        // Shares.
        var tags: [String: Int] = [:]
        for (i, share) in profile.shares.enumerated() {
            let at = "shares[\(i)]"
            if share.tag.isEmpty {
                add("\(at).tag", "the mount tag is empty", "give a short tag like \"src\"")
            } else if share.tag.utf8.count > 36 {
                // virtio-fs limits the tag to 36 bytes (the device config field's size).
                add("\(at).tag", "the tag \"\(share.tag)\" is longer than 36 bytes", "use a shorter tag")
            }
            if let first = tags[share.tag] {
                add("\(at).tag", "duplicate tag \"\(share.tag)\" (also shares[\(first)].tag)", "give every share its own tag")
            } else {
                tags[share.tag] = i
            }
            if share.path.isEmpty {
                add("\(at).path", "the host path is empty", "name the host folder to share")
            } else if !isDirectory(share.path) {
                add("\(at).path", "no folder at \(share.path)", "create it or fix the path")
            }
            if let guestPath = share.guestPath, !guestPath.hasPrefix("/") {
                add("\(at).guestPath", "\"\(guestPath)\" is not an absolute guest path", "start it with /")
            }
        }

        // Disks.
        for (i, disk) in profile.disks.enumerated() {
            let at = "disks[\(i)]"
            if !isFile(disk.path) {
                add("\(at).path", "no disk image at \(disk.path)", "fix the path")
            }
            if disk.ephemeral && disk.readOnly {
                add("\(at)", "a disk can't be both ephemeral and readOnly", "keep one: ephemeral discards writes, readOnly forbids them")
            }
            if disk.overlay == .persistent && disk.readOnly {
                add("\(at).overlay", "a persistent overlay keeps the guest's writes, and readOnly forbids them",
                    "remove \"readOnly\" to keep writes in the VM's state folder, or remove \"overlay\" for a read-only disk")
            }
            if disk.overlay == .persistent && disk.ephemeral {
                add("\(at).overlay", "a persistent overlay keeps the guest's writes between runs, and ephemeral throws them away at exit",
                    "keep one: remove \"ephemeral\" or \"overlay\"")
            }
            if let finding = files.diskImages[disk.path], let problem = diskArchProblem(disk, finding, at: at, profile: profile, host: host) {
                problems.append(problem)
            }
        }

        // Network.
        var hostPorts: [String: Int] = [:]
        for (i, forward) in profile.network.forwards.enumerated() {
            let at = "network.forwards[\(i)]"
            if !(1...65535).contains(forward.host) { add("\(at).host", "port \(forward.host) is out of range", "use 1-65535") }
            if !(1...65535).contains(forward.guest) { add("\(at).guest", "port \(forward.guest) is out of range", "use 1-65535") }
            let key = "\(forward.proto.rawValue)/\(forward.host)"
            if let first = hostPorts[key] {
                add("\(at).host", "host port \(forward.host) is forwarded twice (also network.forwards[\(first)])", "use another host port")
            } else {
                hostPorts[key] = i
            }
        }
        if !profile.network.forwards.isEmpty && profile.network.mode != .user {
            add("network.forwards", "port forwards need \"mode\": \"user\"", "set network.mode to \"user\" or remove the forwards")
        }

        if let command = profile.command, command.isEmpty {
            add("command", "the command is an empty array", "give an argv like [\"uname\", \"-r\"], or remove \"command\"")
        }
        var portNames = Set<String>()
        for (i, name) in profile.consoles.enumerated() {
            if name.isEmpty || name.count > 63 || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
                add("consoles[\(i)]", "\"\(name)\" is not a usable port name", "use 1-63 letters, digits, '.', '_' or '-'")
            } else if name.hasPrefix(reservedPortPrefix) {
                add("consoles[\(i)]", "port names starting with \"\(reservedPortPrefix)\" are the launcher's own", "pick another name")
            } else if !portNames.insert(name).inserted {
                add("consoles[\(i)]", "duplicate port name \"\(name)\"", "give every port its own name")
            }
        }
        // virtio-serial has 31 ports (port 0 is the console's); a caller's protocol takes
        // some (the guest kit's session: 1 + 3 per concurrent command, at least 4).
        if profile.consoles.count > maxConsoles {
            add("consoles", "too many ports (\(profile.consoles.count))", "use at most \(maxConsoles)")
        }

        // Locked memory: QEMU aborts at start when RLIMIT_MEMLOCK can't hold the guest's RAM.
        if needsLockedMemory(profile), let limit = host.memlockLimitBytes, limit < profile.memory.bytes {
            add(profile.lockMemory ? "lockMemory" : "qemu.extraArgs",
                "the guest's \(profile.memory) must be locked in RAM, but the locked-memory limit (ulimit -l) is \(limit >> 10) KiB",
                "raise it: `ulimit -l unlimited` in this shell (as root), `* hard memlock unlimited` and `* soft memlock unlimited` in /etc/security/limits.conf, or DefaultLimitMEMLOCK=infinity in /etc/systemd/system.conf (user sessions: /etc/systemd/user.conf); then log in again")
        }

        // Socket paths: sun_path holds 107 bytes on Linux (103 on macOS).
        let limit = socketPathLimit(host.os)
        if let runtimeDir {
            let longest = runtimeDir.utf8.count + 1 + longestSocketName
            if longest > limit {
                add(profile.runtimeDir == nil ? "$" : "runtimeDir",
                    "socket paths under \(runtimeDir) would be \(longest) bytes, over the \(limit)-byte Unix socket limit",
                    "set \"runtimeDir\" to a shorter folder, like /tmp")
            }
        } else {
            let base = profile.runtimeDir ?? host.runtimeBase
            let longest = base.utf8.count + 1 + runtimeDirNameLength + 1 + longestSocketName
            if longest > limit {
                add("runtimeDir", "socket paths under \(base) would be \(longest) bytes, over the \(limit)-byte Unix socket limit",
                    "set \"runtimeDir\" to a folder of at most \(limit - longest + base.utf8.count) bytes, like /tmp")
            }
        }
        return problems
    }

    /// A name usable for QEMU's -name and as the VM's state folder name (so never "." or "..").
    public static func isUsableVMName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name != "." && name != ".."
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// A disk image whose partitions (`finding`, from `HostFiles`) say it is for another
    /// arch than the guest's; an image that says nothing is no problem.
    static func diskArchProblem(_ disk: Profile.Disk, _ finding: DiskArch.Finding, at: String, profile: Profile, host: HostFacts) -> ProfileProblem? {
        let guest = profile.arch ?? host.arch
        guard case .partitions(let found) = finding,
              !found.contains(where: { $0.arch == guest }), let first = found.first else { return nil }
        let whose = profile.arch == nil ? "the guest arch is \(guest.rawValue) (the host's: the profile sets no \"arch\")"
                                        : "the profile's arch is \(guest.rawValue)"
        return ProfileProblem(
            path: "\(at).path",
            message: "the disk image \(disk.path) is made for \(first.arch.rawValue): its \(first), but \(whose)",
            fix: "use an \(guest.rawValue) image, or set \"arch\": \"\(first.arch.rawValue)\" with an \(first.arch.rawValue) kernel")
    }
}
