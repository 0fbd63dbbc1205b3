import Foundation
import Logging
import QEMULaunch

extension GuestKit {
    /// A profile made ready to boot with the guest kit.
    public struct Prepared: Sendable {
        /// The profile as it boots: the guest kit's initramfs, the resolved (or extracted) kernel, its shares.
        public var profile: Profile
        /// The host facts it was prepared against.
        public var host: HostFacts
        /// How the kernel starts: its own entry, or the PVH entry of an extracted vmlinux.
        public var kernelEntry: KernelEntry
        /// The kernel command-line words the guest kit adds (modules to load, the session, the log level).
        public var kernelArguments: [String]
        /// The shell snippet the init runs once at boot (modules, shares), read over `launch.ctl`.
        public var setupScript: String
        /// The virtio-serial ports of the guest kit's session (none for a console shell).
        public var guestPorts: [String]
        /// With a `rootfs`: where the session's commands run.
        package var root: GuestRootCommand?
        package var initramfs: InitramfsBuilder.Image?
        /// Warm start: how this run saves or restores its guest; nil = it boots as always.
        package var warmStart: WarmStartSetup? = nil
    }

    /// Resolves the kernel, picks fast boot, builds (or reuses) the initramfs and
    /// writes the setup script. Also used by `launch plan` to show the real argv.
    ///
    /// - Parameters:
    ///   - profile: the VM to boot; its `command` (or `options.command`) decides nothing here.
    ///   - options: where the kernel's modules and the busybox come from, fast boot, the logger.
    ///   - sessionSlots: commands the session runs at once; 0 = no session (a shell on
    ///     the console, or the profile's own initrd).
    public static func prepare(_ profile: Profile, options: Options, sessionSlots: Int) async throws(LaunchError) -> Prepared {
        let logger = options.logger
        var profile = profile
        if let command = options.command { profile.command = command }
        // A profile that already shows a problem is refused with every problem, before anything is built.
        try await Machine.refuseEarly(profile, options: machineOptions(options))
        let session = sessionSlots > 0
        profile = try profile.resolvingAutoKernel(logger: logger)
        // Warm start, decided before `auto` shares are resolved: a snapshot needs them over 9p.
        var snapshotMode = options.snapshot ?? (profile.snapshot == .auto ? .auto : .off)
        if snapshotMode != .off {
            if let reason = WarmStart.blocker(profile, session: session, options: options) {
                logger.warning("snapshot: off for this run, booting: \(reason)")
                snapshotMode = .off
            } else {
                let served = WarmStart.servingAutoSharesOver9p(profile)
                profile = served.profile
                for line in served.lines { logger.info("\(line)") }
            }
        }
        let host = await AcceleratorHealth.hostFacts(for: profile, given: options.host, logger: logger)
        // "transport": "auto" shares become virtiofs or 9p now: the init mounts them and
        // the initramfs carries their modules. One line each says which and why.
        let shares = Planner.resolvingShareTransports(profile, host: host)
        profile = shares.profile
        for choice in shares.choices { logger.info("\(choice.topic): \(choice.value) (\(choice.reason))") }
        guard let kernel = profile.kernel else {
            guard profile.firmware == .uefi else {
                throw LaunchError(.invalidProfile, "the guest kit boots a kernel directly, and the profile has none", fix: "add \"kernel\": \"auto\" or a path")
            }
            // UEFI with no kernel: the firmware boots the disks by its boot order (the user's
            // own OS, its own bootloader); the guest kit stays out, as with an own initrd.
            if session || profile.command != nil {
                throw LaunchError(.invalidProfile, "a command runs through the guest kit, which needs a kernel to boot, and this UEFI profile has none (it boots its disk's own OS)",
                                  fix: "add \"kernel\": \"auto\" (or a path) to run a command, or remove \"command\" to boot the disk through the firmware")
            }
            logger.info("boot: UEFI firmware, by its boot order (no kernel in the profile: the disk's own OS, no guest kit)")
            return Prepared(profile: profile, host: host, kernelEntry: .standard, kernelArguments: [], setupScript: "",
                            guestPorts: [], root: nil, initramfs: nil)
        }
        // A user-supplied initrd is used as is: the guest kit stays out of the way.
        if profile.initrd != nil {
            if session {
                throw LaunchError(.invalidProfile, "a command runs through the guest kit's own initramfs, but the profile sets \"initrd\"",
                                  fix: "remove \"initrd\" to run a command, or remove \"command\" to boot your initrd")
            }
            return Prepared(profile: profile, host: host, kernelEntry: .standard,
                            kernelArguments: logLevelArguments(options, session: false), setupScript: "",
                            guestPorts: [], root: nil, initramfs: nil)
        }

        let inspected = try? KernelImage.inspect(URL(fileURLWithPath: kernel))
        // The kernel's own arch decides what can boot it: infer the guest arch from it,
        // or refuse a mismatch before QEMU prints something cryptic.
        if let kernelArch = inspected?.arch.flatMap({ Profile.Arch(rawValue: $0.rawValue) }) {
            if let arch = profile.arch, arch != kernelArch {
                throw LaunchError(.invalidProfile, "the kernel \(kernel) is an \(kernelArch.rawValue) image, but the profile's arch is \(arch.rawValue)",
                                  fix: "set \"arch\": \"\(kernelArch.rawValue)\", or use a \(arch.rawValue) kernel")
            }
            if profile.arch == nil && kernelArch != host.arch {
                profile.arch = kernelArch
                logger.info("arch: \(kernelArch.rawValue) (from the kernel image; this \(host.arch.rawValue) host will emulate it)")
            }
        }
        let decisions = Planner.decisions(profile, host: host)

        // A root filesystem for the command: its shares join the profile's (so the plan serves
        // them), and the setup script mounts it and runs the command in it.
        var root: (guestRoot: GuestRoot, workingDirectory: String, environment: [(String, String)])?
        if let rootfs = profile.rootfs, session {
            root = try rootSetup(&profile, rootfs, arch: decisions.arch, host: host, options: options)
        } else if profile.rootfs != nil {
            logger.warning("rootfs: used by commands only; the console shell runs in the guest kit's busybox initramfs")
        }

        // Modules for exactly this kernel.
        let release = inspected?.release ?? releaseFromFileName(kernel)
        var modulesDirectory = options.modulesDirectory
            ?? profile.guestKit.modules.map { modulesFolder(URL(fileURLWithPath: $0), release: release) }
        var treeInstalled = false
        if modulesDirectory == nil, let tree = options.kernelTree {
            modulesDirectory = try await treeModules(tree, arch: decisions.arch, host: host, logger: logger)
            treeInstalled = modulesDirectory != nil
        }
        if modulesDirectory == nil, let release {
            let candidate = URL(fileURLWithPath: "/lib/modules/\(release)")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("modules.dep").path) {
                modulesDirectory = candidate
            }
        }
        // The kernel against what this guest needs, before anything is built or booted:
        // a config gap would otherwise surface as a boot that never reports in.
        var guest = KernelRequirements.Guest(profile: profile, hostArch: host.arch)
        (guest.machines, guest.transports, guest.session) = ([decisions.machine], [decisions.transport], session)
        if let root { guest.rootFilesystems = root.guestRoot.modules.filter { ["ext4", "xfs", "btrfs"].contains($0) } }
        let (kernelFile, kernelRelease, offered, required) = (URL(fileURLWithPath: kernel), release, modulesDirectory, guest)
        let checked: Swift.Result<Bool, LaunchError> = await onOwnThread {
            Swift.Result { () throws(LaunchError) in
                try checkKernel(kernelFile, release: kernelRelease, guest: required, modulesDirectory: offered, logger: logger)
            }
        }
        let configChecked = try checked.get()
        // (A config that was checked proved the drivers built in, or the modules given have them.)
        if modulesDirectory == nil, !configChecked {
            logger.warning("kernel modules: none found for \(release ?? "this kernel") (looked in /lib/modules/\(release ?? "?")); assuming the virtio drivers are built in. Pass --modules DIR if they are not.")
        }

        // Fast boot: a PVH vmlinux instead of a self-decompressing bzImage under TCG.
        var entry = KernelEntry.standard
        if case .elf(_, true)? = inspected?.format {
            entry = .pvh
        } else if options.fastBoot, decisions.accelerator == .tcg, decisions.arch == .x86_64,
                  case .bzImage? = inspected?.format {
            // Extraction runs a decompressor and reads tens of MB: off the cooperative pool.
            if let vmlinux = await onOwnThread({ FastBoot.vmlinux(for: kernel, logger: logger) }) {
                profile.kernel = vmlinux.path
                entry = .pvh
                logger.info("fast boot: booting the kernel's PVH vmlinux directly (TCG would spend seconds decompressing the bzImage; --no-fast-boot turns this off)")
            }
        }

        let transportModule = decisions.transport == .mmio ? "virtio_mmio" : "virtio_pci"
        var boot = [transportModule]
        if session { boot.append("virtio_console") }
        var later: [String] = []
        if profile.shares.contains(where: { $0.transport == .virtiofs }) { later.append("virtiofs") }
        if profile.shares.contains(where: { $0.transport == .ninep }) { later += ["9pnet_virtio", "9p"] }
        if !profile.disks.isEmpty { later.append("virtio_blk") }
        if profile.network.mode == .user { later.append("virtio_net") }
        if let root { later += root.guestRoot.modules.filter { !later.contains($0) } }
        // pvpanic's ISA device is described in ACPI on pc/q35 (the pvpanic-mmio driver binds it).
        // Optional: a panic is also caught from the console and the reset panic=-1 makes.
        var optional: [String] = []
        if decisions.arch == .x86_64 && decisions.machine != .microvm { optional.append("pvpanic_mmio") }
        if decisions.arch == .aarch64 && decisions.transport == .pci { optional.append("pvpanic_pci") }

        // The power button, so the shutdown ladder's ACPI step (QMP system_powerdown) powers
        // the guest off cleanly. ACPI's button driver serves microvm (GED, PNP0C0C), q35 and
        // pc (fixed feature) and an aarch64 virt booted with UEFI; virt without firmware
        // wires the button to PL061 GPIO 3, reported by gpio_keys (Debian arm64 6.1 builds
        // gpio-pl061 in and gpio_keys as a module). evdev gives the init its /dev/input/eventN.
        var powerButton = ["button", "evdev"]
        if decisions.arch == .aarch64 { powerButton = ["gpio_pl061", "gpio_keys"] + powerButton }

        let busybox = options.busybox ?? profile.guestKit.busybox ?? "/bin/busybox"
        if decisions.arch != host.arch && options.busybox == nil && profile.guestKit.busybox == nil {
            throw LaunchError(.invalidProfile, "an \(decisions.arch.rawValue) guest needs an \(decisions.arch.rawValue) static busybox, and the host's /bin/busybox is \(host.arch.rawValue)",
                              fix: "set guestKit.busybox in the profile (Scripts/fetch-guest-arm64 fetches Debian's arm64 busybox-static and kernel)")
        }
        // Building reads and decompresses modules and writes the archive: off the cooperative pool.
        let (bootModules, laterModules, optionalModules, powerButtonModules) = (boot, later, optional, powerButton)
        let modules = modulesDirectory
        let moduleTree = try modprobeTree(options, release: release, kernel: kernel, modulesDirectory: modulesDirectory,
                                          everyModule: treeInstalled, memory: profile.memory)
        let built: Swift.Result<InitramfsBuilder.Image, LaunchError> = await onOwnThread {
            Swift.Result { () throws(LaunchError) in
                try InitramfsBuilder.image(busybox: busybox, arch: decisions.arch, modulesDirectory: modules,
                                           bootModules: bootModules, laterModules: laterModules, optionalModules: optionalModules,
                                           powerButtonModules: powerButtonModules, moduleTree: moduleTree)
            }
        }
        let image = try built.get()
        var choice = "initramfs: \(image.url.path) (\(image.cached ? "cached" : "built"); modules: \((image.bootModules + image.laterModules).joined(separator: " "))"
        if !image.powerButtonModules.isEmpty { choice += "; power button: \(image.powerButtonModules.joined(separator: " "))" }
        if !image.builtin.isEmpty { choice += "; built in: \(image.builtin.joined(separator: " "))" }
        if !image.missingOptional.isEmpty { choice += "; not in this kernel: \(image.missingOptional.joined(separator: " "))" }
        logger.info("\(choice))")
        if let moduleTree {
            var line = "modprobe: \(image.modprobeModules) module\(image.modprobeModules == 1 ? "" : "s") in the guest's /lib/modules/\(moduleTree.release)"
            if moduleTree.everyModule, image.modprobeNote == nil { line += " (every module of \(options.kernelTree?.path ?? modulesDirectory?.path ?? "?"))" }
            if !moduleTree.extra.isEmpty { line += "; yours: \(moduleTree.extra.map(\.name).joined(separator: " "))" }
            logger.info("\(line)")
            if let note = image.modprobeNote { logger.warning("modprobe: \(note)") }
        }
        profile.initrd = image.url.path

        var arguments: [String] = []
        if !image.bootModules.isEmpty { arguments.append("launch.modules=" + image.bootModules.joined(separator: ",")) }
        if !image.powerButtonModules.isEmpty { arguments.append("launch.button=" + image.powerButtonModules.joined(separator: ",")) }
        if session {
            arguments.append(SessionProtocol.kernelArgument(slots: sessionSlots))
            if options.consoleShell { arguments.append(SessionProtocol.consoleShellArgument) }
        }
        // Kernel chatter on an emulated UART costs boot time; the console log keeps the rest.
        arguments += logLevelArguments(options, session: session)
        let rootCommand = root.map { GuestRootCommand(root: $0.guestRoot, workingDirectory: $0.workingDirectory, environment: $0.environment) }
        var script = setupScript(profile: profile, laterModules: image.laterModules, root: rootCommand)
        var warmStart: WarmStartSetup?
        if snapshotMode != .off {
            // The modules load before the guest is saved; the shares are mounted after (each run).
            var unshared = profile
            unshared.shares = []
            script = setupScript(profile: unshared, laterModules: image.laterModules, root: nil)
            warmStart = WarmStartSetup(mode: snapshotMode, mountScript: mountLines(profile.shares))
            arguments.insert(SessionProtocol.parkArgument, at: arguments.firstIndex { $0.hasPrefix("launch.session=") }.map { $0 + 1 } ?? arguments.count)
        }
        return Prepared(profile: profile, host: host, kernelEntry: entry, kernelArguments: arguments,
                        setupScript: script, guestPorts: session ? SessionProtocol.portNames(slots: sessionSlots) : [],
                        root: rootCommand, initramfs: image, warmStart: warmStart)
    }

    /// Where a session's commands run when the profile has a `rootfs`: the root, and the
    /// working directory and environment its commands get unless a command says otherwise.
    package struct GuestRootCommand: Sendable {
        package var root: GuestRoot
        package var workingDirectory: String
        package var environment: [(String, String)]
    }

    /// The session's boot setup: load modules, mount shares (or, with `root`, make the
    /// root filesystem with the shares inside it). Pure.
    package static func setupScript(profile: Profile, laterModules: [String], root: GuestRootCommand? = nil) -> String {
        let q = QEMUSyntax.shellQuote
        var lines: [String] = []
        for module in laterModules {
            // The power-button watcher may have loaded a dependency both need: loaded is loaded.
            lines.append("insmod /lib/modules/\(q(module)).ko || [ -d /sys/module/\(q(module)) ] || say \(q("insmod \(module) failed"))")
        }
        if let root {
            // The session's failure report for the boot setup: "error -" on launch.ctl (fd 5), then off.
            lines.append("launch_fail() { echo \"error - $*\" >&5; poweroff -f; }")
            lines.append(GuestRoot.functions)
            lines += root.root.bootLines
            return lines.joined(separator: "\n") + "\n"
        }
        lines += mountLines(profile.shares)
        return lines.joined(separator: "\n") + "\n"
    }

    /// The lines that mount `shares` at their guest paths (a failure reports on launch.ctl and powers off). Pure.
    static func mountLines(_ shares: [Profile.Share]) -> [String] {
        let q = QEMUSyntax.shellQuote
        var lines: [String] = []
        for share in shares {
            let dir = share.mountPoint
            var mount: String
            switch share.transport {
            case .virtiofs:
                mount = "mount -t virtiofs"
                if share.readOnly { mount += " -o ro" }
            case .ninep, .auto:
                // (`auto` never gets here: prepare resolved it to virtiofs or 9p.)
                // 9p2000.L with a large msize: the defaults (8 KiB) make every read a round trip.
                mount = "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144" + (share.readOnly ? ",ro" : "")
            }
            let failure = "error - mounting share \(share.tag) at \(dir) failed"
            lines.append("mkdir -p \(q(dir)) && \(mount) \(q(share.tag)) \(q(dir)) || { echo \(q(failure)) >&5; poweroff -f; }")
        }
        return lines
    }

    /// Adds a root filesystem's shares to `profile` and says what the guest does with them.
    static func rootSetup(_ profile: inout Profile, _ rootfs: Profile.RootFS, arch: Profile.Arch, host: HostFacts, options: Options) throws(LaunchError)
        -> (guestRoot: GuestRoot, workingDirectory: String, environment: [(String, String)]) {
        let logger = options.logger
        let hostEnvironment = ProcessInfo.processInfo.environment
        // virtiofs unless this host can't serve it: then 9p (QEMU serves it itself, read-only
        // with readonly=on), said in the rootfs line below.
        // ("auto" for the root is the same as leaving it out.)
        let requested = rootfs.transport == .auto ? nil : rootfs.transport
        var transport = requested ?? .virtiofs
        var fallback: String?
        if requested == nil, profile.virtiofsd.binary == nil {
            if host.virtiofsd == nil {
                transport = .ninep
                fallback = "no virtiofsd this user can run"
            } else if host.virtiofsd?.flavor == .legacyC, !host.isRoot {
                transport = .ninep
                fallback = "the C virtiofsd runs only as root"
            }
        }
        // The profile's own shares are mounted inside the root, at their guest paths.
        var mounts = profile.shares.map { GuestRoot.Mount(tag: $0.tag, path: $0.mountPoint, readOnly: $0.readOnly, transport: $0.transport) }
        var rwMounts: [GuestRoot.Mount] = []
        for (index, dir) in rootfs.rwdirs.enumerated() where FileManager.default.fileExists(atPath: dir) {
            // (A missing one is the validator's "rootfs.rwdirs[N]" problem.)
            let tag = GuestRoot.rwdirTag(index)
            profile.shares.append(Profile.Share(tag: tag, path: dir, readOnly: false, transport: transport))
            rwMounts.append(GuestRoot.Mount(tag: tag, path: dir, readOnly: false, transport: transport))
        }
        mounts = rwMounts + mounts
        let source: GuestRoot.Source
        var overlays: [String]?
        let workingDirectory: String
        let environment: [(String, String)]
        var how: String
        switch rootfs.source {
        case .host, .folder:
            var path = "/"
            if case .folder(let folder) = rootfs.source { path = folder }
            // A missing folder is the validator's "rootfs" problem, not a share the user never wrote.
            if FileManager.default.fileExists(atPath: path) {
                profile.shares.append(Profile.Share(tag: GuestRoot.rootTag, path: path, readOnly: true, transport: transport))
            }
            source = .share(tag: GuestRoot.rootTag, transport: transport)
            how = "\(transport.rawValue)\(fallback.map { " (not virtiofs: \($0))" } ?? ""), read-only (enforced on the host: \(transport == .ninep ? "QEMU's readonly=on" : host.virtiofsd?.flavor == .rust ? "virtiofsd --readonly" : "virtiofsd serves a read-only bind mount"))"
            if case .host = rootfs.source {
                workingDirectory = options.workingDirectory ?? FileManager.default.currentDirectoryPath
                environment = GuestRoot.hostEnvironment(hostEnvironment)
                // The user's home is where tools keep caches and histories: writable, not kept.
                var list = GuestRoot(source: source).overlays
                if let home = hostEnvironment["HOME"], home != "/", !list.contains(home) { list.append(home) }
                overlays = list
            } else {
                workingDirectory = options.workingDirectory ?? "/"
                environment = GuestRoot.foreignEnvironment(hostEnvironment)
            }
        case .disk(let index):
            guard profile.disks.indices.contains(index) else {
                throw LaunchError(.invalidProfile, "rootfs.disk: there is no disks[\(index)] (the profile has \(profile.disks.count))",
                                  fix: "add the disk to \"disks\" or fix the index")
            }
            let disk = profile.disks[index]
            let found: DiskRoot.Found
            switch DiskRoot.find(path: disk.path, format: disk.format, arch: arch) {
            case .success(let f): found = f
            case .failure(let problem):
                throw LaunchError(.invalidProfile, "\(problem.path): \(problem.message) (disks[\(index)] is \(disk.path))", fix: problem.fix)
            }
            source = .partition(uuid: found.uuid, filesystem: found.filesystem, readOnly: disk.readOnly)
            how = "partition \(found.partition) of \(disk.path) (\(found.filesystem), UUID \(found.uuid)), \(disk.readOnly ? "read-only" : disk.ephemeral ? "writes discarded at exit (ephemeral disk)" : "read-write: the guest's writes change the image")"
            workingDirectory = options.workingDirectory ?? "/"
            environment = GuestRoot.foreignEnvironment(hostEnvironment)
        }
        var guestRoot = GuestRoot(source: source, overlayAll: rootfs.overlay, overlays: overlays, mounts: mounts)
        guestRoot.workingDirectory = workingDirectory
        var line = "rootfs: \(rootfs.summary) over \(how)"
        if rootfs.overlay {
            line += "; a throw-away overlay over all of it"
        } else if case .partition(_, _, false) = source {
        } else {
            line += "; overlays (writes kept in guest RAM) on \(guestRoot.overlays.joined(separator: " ")) where present"
        }
        line += "; empty tmpfs on \(guestRoot.scratch.joined(separator: " "))"
        if !rootfs.rwdirs.isEmpty { line += "; read-write on the host: \(rootfs.rwdirs.joined(separator: " ")) (the guest's writes there change the host's files)" }
        line += "; command in \(workingDirectory) with \(environment.map(\.0).joined(separator: " "))"
        logger.info("\(line)")
        return (guestRoot, workingDirectory, environment)
    }

    /// A modules folder given as `/lib/modules/<release>` itself, an INSTALL_MOD_PATH root
    /// (`<root>/lib/modules/<release>`), or `lib/modules` holding one release.
    package static func modulesFolder(_ base: URL, release: String?) -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: base.appendingPathComponent("modules.dep").path) { return base }
        for folder in [base.appendingPathComponent("lib/modules"), base] {
            if let release, fm.fileExists(atPath: folder.appendingPathComponent("\(release)/modules.dep").path) {
                return folder.appendingPathComponent(release)
            }
            let releases = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
                fm.fileExists(atPath: folder.appendingPathComponent("\($0)/modules.dep").path)
            }
            if releases.count == 1 { return folder.appendingPathComponent(releases[0]) }
        }
        return base
    }

    static func releaseFromFileName(_ kernel: String) -> String? {
        let name = URL(fileURLWithPath: kernel).lastPathComponent
        for prefix in ["vmlinuz-", "vmlinux-", "bzImage-", "Image-"] where name.hasPrefix(prefix) {
            return String(name.dropFirst(prefix.count))
        }
        return nil
    }
}
