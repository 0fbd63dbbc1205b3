/// How the kernel is entered, which changes what microvm needs.
public enum KernelEntry: String, Sendable, Hashable, Codable {
    /// bzImage / Image: the kernel's own setup code runs (and decompresses itself).
    case standard
    /// An uncompressed ELF vmlinux with the PVH entry note, booted directly.
    case pvh
}

public struct PlanOptions: Sendable, Hashable {
    /// The VM's private runtime dir (made later by the supervisor).
    public var runtimeDir: String
    public var kernelEntry: KernelEntry
    /// Kernel arguments added by the caller (the guest kit), before the profile's own `cmdline`.
    public var kernelArguments: [String]
    /// Start with vCPUs stopped (`-S`) so every console is attached before the
    /// guest's first instruction; the supervisor then sends `cont`.
    public var startPaused: Bool
    /// Virtio-serial ports a caller's own protocol needs (the guest kit's session
    /// ports), planned before the profile's `consoles`.
    public var guestPorts: [String]
    /// The VM's state folder (`VMStateFolder.path`): its UEFI variables and persistent
    /// overlays; nil = UEFI variables in the runtime dir, lost at exit (persistent overlays need one).
    public var stateDirectory: String?
    /// The VM's UUID (`-uuid`) and NIC MAC; nil = QEMU's defaults (no UUID, 52:54:00:12:34:56).
    public var identity: MachineIdentity?
    /// The fd (in QEMU) of the launcher's own QMP connection, one end of a socketpair;
    /// nil = none (a plan for people to run by hand: they use `qmp.sock`).
    public var controlFileDescriptor: Int32?
    /// QEMU's gdb stub for a kernel debugger; nil = none.
    public var gdb: GDBStub?
    /// Keep a panicked guest alive, stopped, for a memory dump, instead of ending QEMU.
    public var holdOnPanic = false

    public init(runtimeDir: String, kernelEntry: KernelEntry = .standard, kernelArguments: [String] = [],
                startPaused: Bool = true, guestPorts: [String] = [], stateDirectory: String? = nil,
                identity: MachineIdentity? = nil, controlFileDescriptor: Int32? = nil) {
        self.guestPorts = guestPorts
        self.identity = identity
        self.controlFileDescriptor = controlFileDescriptor
        self.stateDirectory = stateDirectory
        self.runtimeDir = runtimeDir
        self.kernelEntry = kernelEntry
        self.kernelArguments = kernelArguments
        self.startPaused = startPaused
    }
}

/// Turns a profile into a `Plan`. Pure: no filesystem, no processes.
public enum Planner {
    public static func plan(_ profile: Profile, host: HostFacts, options: PlanOptions) throws(ProfileProblems) -> Plan {
        var problems = ProfileValidator.hostProblems(profile, host: host, runtimeDir: options.runtimeDir)
        let arch = profile.arch ?? host.arch
        let machine = profile.machine ?? defaultMachine(arch: arch, firmware: profile.firmware)
        var choices: [Plan.Choice] = []
        // `"transport": "auto"` shares become virtiofs or 9p here, each said in one line.
        let (profile, shareChoices) = resolvingShareTransports(profile, host: host)
        // What this QEMU binary is; nil when not probed (then only options every QEMU takes).
        let capabilities = profile.qemu.binary == nil || host.qemu[arch]?.path == profile.qemu.binary
            ? host.qemu[arch]?.capabilities : nil

        // Accelerator.
        let accel: Accelerator
        switch chooseAccelerator(profile.accel, guest: arch, host: host) {
        case .success(let choice):
            accel = choice.accelerator
            choices.append(choice.explanation)
        case .failure(let problem):
            problems.append(problem)
            accel = .tcg
        }
        choices.append(Plan.Choice(
            topic: "machine", value: machine.rawValue,
            reason: profile.machine == nil ? "default for \(arch.rawValue)" : "from the profile"))

        let transport = Self.transport(machine: machine, requested: profile.transport)
        choices.append(Plan.Choice(
            topic: "transport", value: transport == .mmio ? "virtio-mmio" : "virtio-pci",
            reason: profile.transport == .auto ? "default for \(machine.rawValue)" : "from the profile"))
        if let capabilities {
            choices.append(Plan.Choice(topic: "qemu", value: capabilities.shortVersion, reason: "read from \(host.qemu[arch]?.path ?? "the binary")'s --version and help"))
        }

        choices += shareChoices
        let qemuBinary = profile.qemu.binary ?? host.qemu[arch]?.path ?? arch.qemuSystemBinary
        let virtiofsShares = profile.shares.enumerated().filter { $0.element.transport == .virtiofs }
        if !virtiofsShares.isEmpty, profile.virtiofsd.binary == nil, host.virtiofsd == nil {
            problems.append(ProfileProblem(
                path: "shares[\(virtiofsShares[0].offset)].transport",
                message: "a virtiofs share needs virtiofsd, and none was found on this host" + noVirtiofsdReason(capabilities),
                fix: installVirtiofsdFix + ", set virtiofsd.binary, or use \"transport\": \"9p\" (or \"auto\": 9p when no virtiofsd is found)"))
        }
        if profile.kernel == "auto" {
            problems.append(ProfileProblem(path: "kernel", message: "\"auto\" must be resolved to a file before planning",
                                           fix: "resolve it with KernelLocator.newest() (Machine.start and GuestKit do)"))
        }
        if machine == .microvm, options.kernelEntry == .pvh, host.tscKHz == nil {
            problems.append(ProfileProblem(path: "kernel", message: "microvm boots a PVH vmlinux only with tsc_early_khz, and this host's TSC frequency is unknown (the guest would hang calibrating it)",
                                           fix: "boot the bzImage instead (--no-fast-boot), or use machine \"pc\" or \"q35\""))
        }
        var firmware: UEFIFirmware?
        // (microvm has no UEFI at all: the validator already says so.)
        if profile.firmware == .uefi && machine != .microvm {
            firmware = host.firmware[arch]
            if firmware == nil {
                problems.append(ProfileProblem(path: "firmware", message: "no UEFI firmware for \(arch.rawValue) was found (looked at QEMU's firmware descriptors and the usual paths)",
                                               fix: arch == .x86_64 ? "install it: sudo apt-get install ovmf" : "install it: sudo apt-get install qemu-efi-aarch64"))
            }
        }
        if machine == .microvm, let first = virtiofsShares.first, let capabilities, seabiosOnly(capabilities) {
            problems.append(ProfileProblem(path: "shares[\(first.offset)].transport", message: microvmCantShareMemory(capabilities),
                                           fix: "use \"transport\": \"9p\" (or \"auto\"), machine \"q35\" or \"pc\", or a QEMU that ships qboot.rom (upstream and Debian's do)"))
        }
        if let virtiofsd = host.virtiofsd, virtiofsd.flavor == .legacyC, !host.isRoot, let first = virtiofsShares.first {
            problems.append(ProfileProblem(path: "shares[\(first.offset)].transport",
                                           message: "the C virtiofsd (\(virtiofsd.path)) runs only as root, and this launcher is not root",
                                           fix: "run as root, install the Rust virtiofsd (package virtiofsd on Debian 13 / Ubuntu 24.04), or use \"transport\": \"9p\""))
        }
        if options.stateDirectory == nil, let persistent = profile.disks.indices.first(where: { profile.disks[$0].overlay == .persistent }) {
            problems.append(ProfileProblem(path: "disks[\(persistent)].overlay", message: "a persistent overlay lives in the VM's state folder, and the plan was given none",
                                           fix: "plan with PlanOptions.stateDirectory set to VMStateFolder(vmName:).path (Machine.start does)"))
        }
        if !problems.isEmpty { throw ProfileProblems(source: profile.name, problems: problems) }

        let run = options.runtimeDir
        let sockets = Plan.Sockets(
            qmp: run + "/qmp.sock",
            console: run + "/console.sock",
            virtiofs: virtiofsShares.indices.map { run + "/fs\($0).sock" },
            ports: Dictionary(uniqueKeysWithValues: portNames(profile, options).enumerated().map { ($0.element, run + "/port\($0.offset).sock") })
        )

        var args = ArgvBuilder(transport: transport)
        args.add(qemuBinary)
        // No default devices, no /etc/qemu config: the argv is the whole machine.
        args.add("-nodefaults", "-no-user-config", "-display", "none")
        args.add("-name", "guest=" + QEMUSyntax.optionValue(profile.name))
        if let identity = options.identity {
            // The SMBIOS system UUID, the same on every run of this VM. Without -uuid a q35
            // guest has no /sys/class/dmi/id/product_uuid at all (QEMU 7.2); microvm has no SMBIOS.
            args.add("-uuid", identity.uuid)
            choices.append(Plan.Choice(topic: "identity", value: "uuid \(identity.uuid), mac \(identity.mac)",
                                       reason: "kept in the VM's state folder"))
        }

        // Machine options. Every option set here exists with the same meaning in QEMU 7.2 and
        // 10.0 (their `-machine TYPE,help`, recorded in Tests/QEMULaunchTests/Fixtures); what
        // changed is microvm's firmware, below.
        var machineOptions = [machine.rawValue]
        var microvmBios: String?
        let needsSharedMemory = !virtiofsShares.isEmpty
        switch machine {
        case .microvm:
            if accel == .tcg {
                // QEMU 7.2 TCG: without the legacy PIT and PIC the guest hangs in TSC calibration.
                machineOptions += ["pit=on", "pic=on", "rtc=on"]
            } else {
                // With KVM the in-kernel LAPIC timer is enough; PIT/PIC only slow the boot.
                machineOptions += ["pit=off", "pic=off", "rtc=on"]
            }
            // ACPI stays on: with acpi=off a guest poweroff only halts and QEMU never exits.
            machineOptions.append("isa-serial=on")
            switch microvmFirmware(capabilities) {
            case .defaultQboot:
                // qboot loads the kernel from fw_cfg itself: QEMU's option ROMs are dead weight
                // (Debian 12's QEMU 7.2 links bios-microvm.bin to qboot.rom).
                machineOptions.append("x-option-roms=off")
                choices.append(Plan.Choice(topic: "microvm firmware", value: "qboot, option ROMs off", reason: "its bios-microvm.bin is qboot, which loads the kernel itself"))
            case .explicitQboot:
                // Debian's QEMU 10.0.2 makes bios-microvm.bin SeaBIOS, which boots a -kernel only
                // through the linuxboot/pvh option ROMs (with x-option-roms=off the guest never
                // starts) and resets the guest at once when RAM is a memory backend (virtiofs; seen
                // with 7.2 too). qboot, upstream's microvm default, still ships and does both.
                microvmBios = "qboot.rom"
                machineOptions.append("x-option-roms=off")
                choices.append(Plan.Choice(topic: "microvm firmware", value: "qboot.rom (-bios), option ROMs off",
                                           reason: "this QEMU's bios-microvm.bin is \(capabilities?.microvmFirmware == .seabios ? "SeaBIOS" : "not qboot"), which needs option ROMs and can't boot with shared guest memory"))
            case .optionROMs:
                // Unknown firmware and no qboot: keep the option ROMs, which every microvm firmware boots with.
                choices.append(Plan.Choice(topic: "microvm firmware", value: "bios-microvm.bin, option ROMs on",
                                           reason: capabilities == nil ? "QEMU not probed: the setting that boots with every firmware" : "no qboot.rom in this QEMU's data dirs"))
            }
        case .virt:
            switch accel {
            // HVF on Apple silicon has no in-kernel GICv3 before QEMU 9.2: use GICv2.
            case .hvf: machineOptions.append("gic-version=2")
            case .kvm: machineOptions.append("gic-version=host")
            case .tcg: machineOptions.append("gic-version=3")
            }
        case .q35, .pc:
            break
        }
        if needsSharedMemory {
            // vhost-user (virtiofsd) maps guest RAM: it must be a shared memfd.
            machineOptions.append("memory-backend=mem")
        }
        args.add("-machine", machineOptions.joined(separator: ","))
        if let microvmBios { args.add("-bios", microvmBios) }
        args.add("-accel", accel.rawValue)
        args.add("-cpu", profile.cpu ?? cpuModel(arch: arch, accel: accel))
        args.add("-smp", String(profile.cpus))
        args.add("-m", profile.memory.qemuArgument)
        if needsSharedMemory {
            args.add("-object", "memory-backend-memfd,id=mem,size=\(profile.memory.qemuArgument),share=on")
        }
        if profile.lockMemory {
            args.add("-overcommit", "mem-lock=on")
        }
        if transport == .mmio {
            // QEMU 7.2: virtio-mmio devices are legacy virtio unless told otherwise, and
            // libvhost-user (virtiofsd) refuses legacy devices. Still the default in 10.0.2
            // (`-device virtio-mmio,help`: force-legacy default on).
            args.add("-global", "virtio-mmio.force-legacy=false")
        }

        // Kernel and firmware.
        var firmwareVars: Plan.FirmwareVars?
        if let firmware {
            let vars = (options.stateDirectory ?? run) + "/" + VMStateFolder.firmwareVarsFile
            firmwareVars = Plan.FirmwareVars(template: firmware.varsTemplate, path: vars)
            // Code read-only and shared by every VM; the variable store is this VM's own, writable.
            args.add("-drive", "if=pflash,format=raw,unit=0,readonly=on,file=\(QEMUSyntax.optionValue(firmware.code))")
            args.add("-drive", "if=pflash,format=raw,unit=1,file=\(QEMUSyntax.optionValue(vars))")
            choices.append(Plan.Choice(topic: "firmware", value: "UEFI \(firmware.code)",
                                       reason: options.stateDirectory == nil ? "variables in the runtime dir: not kept after this run" : "variables kept in \(vars)",
                                       isWarning: options.stateDirectory == nil))
        }
        var cmdline: [String] = []
        if let kernel = profile.kernel {
            // -kernel, -initrd and -append take the whole string: no comma escaping here.
            args.add("-kernel", kernel)
            if let initrd = profile.initrd { args.add("-initrd", initrd) }
            cmdline.append(arch == .aarch64 ? "console=ttyAMA0" : "console=ttyS0")
            if options.holdOnPanic {
                // The panicked kernel waits (panic=0) instead of rebooting, so there is a
                // guest to dump; the supervisor sees the panic (console or pvpanic), dumps, quits.
                cmdline.append("panic=0")
            } else {
                // A panic reboots at once, and -no-reboot turns that reboot into QEMU's exit.
                cmdline.append("panic=-1")
            }
            if options.gdb != nil {
                // A randomized kernel base would not match the addresses in vmlinux's symbols
                // (a bzImage booted through its decompressor picks one; PVH entry never does).
                cmdline.append("nokaslr")
            }
            if machine == .microvm, options.kernelEntry == .pvh || accel == .tcg, let khz = host.tscKHz {
                // microvm has no HPET or PM timer to calibrate the TSC against, only the PIT:
                // with PVH the guest hangs calibrating, and under TCG on a loaded host the PIT
                // calibration fails ("Unable to calibrate against PIT") and the boot stalls
                // (both seen on QEMU 7.2). Telling the kernel the host's TSC rate skips it.
                cmdline.append("tsc_early_khz=\(khz)")
            }
            cmdline += options.kernelArguments
            if let extra = profile.cmdline, !extra.isEmpty { cmdline.append(extra) }
            args.add("-append", cmdline.joined(separator: " "))
        }

        // Serial console, drained by the supervisor.
        args.add("-chardev", "socket,id=console,path=\(QEMUSyntax.optionValue(sockets.console)),server=on,wait=off")
        args.add("-serial", "chardev:console")

        // virtio-serial ports.
        let ports = portNames(profile, options)
        if !ports.isEmpty {
            args.add("-device", args.device("virtio-serial") + ",id=vser0")
            for (index, name) in ports.enumerated() {
                args.add("-chardev", "socket,id=port\(index),path=\(QEMUSyntax.optionValue(sockets.ports[name]!)),server=on,wait=off")
                args.add("-device", "virtserialport,bus=vser0.0,chardev=port\(index),name=\(QEMUSyntax.optionValue(name))")
            }
        }

        // Shares.
        var virtiofsdArgv: [[String]] = []
        var virtiofsdViews: [Plan.ReadOnlyView?] = []
        var fsIndex = 0
        for (index, share) in profile.shares.enumerated() {
            switch share.transport {
            case .virtiofs:
                let socket = sockets.virtiofs[fsIndex]
                args.add("-chardev", "socket,id=fs\(fsIndex),path=\(QEMUSyntax.optionValue(socket))")
                args.add("-device", args.device("vhost-user-fs") + ",chardev=fs\(fsIndex),tag=\(QEMUSyntax.optionValue(share.tag))")
                var served = share
                var view: Plan.ReadOnlyView?
                if share.readOnly, (host.virtiofsd?.flavor ?? .rust) == .legacyC || (share.path == "/" && host.isRoot) {
                    // The C virtiofsd has no read-only mode: it serves a read-only bind of the
                    // folder made in a mount namespace of its own (Plan.ReadOnlyView). `/` goes
                    // through one for either daemon: a sandbox that pivots into the shared folder
                    // can't pivot into its namespace's root (seen with the C one; the bind costs
                    // the Rust one nothing, and it keeps --readonly).
                    view = Plan.ReadOnlyView(source: share.path, view: run + "/ro\(fsIndex)")
                    served.path = view!.view
                }
                virtiofsdViews.append(view)
                virtiofsdArgv.append(virtiofsdCommand(share: served, socket: socket, profile: profile, host: host))
                fsIndex += 1
            case .ninep, .auto:
                // (`auto` never gets here: resolvingShareTransports made it virtiofs or 9p.)
                var fsdev = "local,id=p9fs\(index),path=\(QEMUSyntax.optionValue(share.path)),security_model=none"
                if share.readOnly { fsdev += ",readonly=on" }
                args.add("-fsdev", fsdev)
                args.add("-device", args.device("virtio-9p") + ",fsdev=p9fs\(index),mount_tag=\(QEMUSyntax.optionValue(share.tag))")
            }
        }
        if let virtiofsd = host.virtiofsd, !virtiofsShares.isEmpty {
            choices.append(Plan.Choice(topic: "virtiofsd", value: virtiofsd.flavor.rawValue,
                                       reason: "detected from \(virtiofsd.path)'s --help"))
            if virtiofsd.flavor == .rust && !host.isRoot {
                choices.append(Plan.Choice(topic: "virtiofsd", value: "sandbox none",
                                           reason: "not root: virtiofsd can't sandbox itself in namespaces; the guest sees only the shared folder, but the daemon runs unconfined",
                                           isWarning: true))
            } else {
                choices.append(Plan.Choice(topic: "virtiofsd", value: "sandbox namespace", reason: "root: mount, pid and net namespaces around the shared folder"))
            }
            if virtiofsd.flavor == .legacyC, virtiofsShares.contains(where: { $0.element.readOnly }) {
                choices.append(Plan.Choice(topic: "virtiofsd", value: "read-only shares served from read-only bind mounts",
                                           reason: "the C virtiofsd has no read-only mode: each runs in a mount namespace of its own where its folder is bound read-only, so the host's kernel refuses every write"))
            }
        }

        // Disks.
        var prepare: [[String]] = []
        var persistentOverlays: [Plan.PersistentOverlay] = []
        for (index, disk) in profile.disks.enumerated() {
            var file = disk.path
            var format = disk.format.rawValue
            if disk.overlay == .persistent, let state = options.stateDirectory {
                // Made (or checked against its base) by Machine.start before QEMU runs; not a
                // `prepare` command, since only the first run makes it.
                let overlay = Plan.PersistentOverlay(
                    disk: index, base: disk.path, baseFormat: disk.format,
                    path: state + "/" + VMStateFolder.overlayFile(disk: index),
                    baseRecord: state + "/" + VMStateFolder.baseRecordFile(disk: index))
                persistentOverlays.append(overlay)
                choices.append(Plan.Choice(topic: "disks[\(index)]", value: "persistent overlay \(overlay.path)",
                                           reason: "the guest's writes are kept between runs; \(disk.path) is never written"))
                file = overlay.path
                format = "qcow2"
            } else if disk.ephemeral {
                let overlay = run + "/disk\(index).qcow2"
                prepare.append([host.qemuImg ?? "qemu-img", "create", "-q", "-f", "qcow2",
                                "-F", disk.format.rawValue, "-b", disk.path, overlay])
                file = overlay
                format = "qcow2"
            }
            var drive = "file=\(QEMUSyntax.optionValue(file)),if=none,id=disk\(index),format=\(format)"
            if disk.readOnly { drive += ",readonly=on" }
            args.add("-drive", drive)
            args.add("-device", args.device("virtio-blk") + ",drive=disk\(index)")
        }

        // Network.
        if profile.network.mode == .user {
            var netdev = "user,id=net0"
            for forward in profile.network.forwards {
                // Loopback unless the profile says otherwise: a forward must not open the guest to the network by default.
                netdev += ",hostfwd=\(forward.proto.rawValue):\(forward.address):\(forward.host)-:\(forward.guest)"
            }
            args.add("-netdev", netdev)
            var nic = args.device("virtio-net") + ",netdev=net0"
            if let mac = options.identity?.mac { nic += ",mac=" + mac }
            args.add("-device", nic)
        }

        // Entropy, so the guest never blocks on getrandom() early in boot.
        args.add("-object", "rng-random,id=rng0,filename=/dev/urandom")
        args.add("-device", args.device("virtio-rng") + ",rng=rng0")
        // pvpanic turns a guest panic into a GUEST_PANICKED QMP event.
        if arch == .x86_64 {
            args.add("-device", "pvpanic")
        } else if transport == .pci {
            args.add("-device", "pvpanic-pci")
        }

        if let fd = options.controlFileDescriptor {
            // The launcher's QMP connection is an inherited, already connected socket:
            // QEMU 7.2 can hang a client that connects to a monitor's listening socket
            // while QEMU is still starting (the main loop blocks in accept(); seen here,
            // fixed upstream in "monitor/qmp: cleanup SocketChardev listener sources early").
            args.add("-chardev", "socket,id=control,fd=\(fd)")
            args.add("-mon", "chardev=control,mode=control")
        }
        // A monitor socket for other tools (and for plans run by hand).
        args.add("-chardev", "socket,id=qmp,path=\(QEMUSyntax.optionValue(sockets.qmp)),server=on,wait=off")
        args.add("-mon", "chardev=qmp,mode=control")
        // The launcher owns the VM's lifetime: a guest reboot ends the run.
        args.add("-no-reboot")
        if options.startPaused { args.add("-S") }
        if let gdb = options.gdb {
            args.add("-gdb", gdb.qemuArgument)
            choices.append(Plan.Choice(topic: "gdb", value: "stub on 127.0.0.1:\(gdb.port)",
                                       reason: gdb.waitForDebugger ? "vCPUs held at the first instruction until the debugger continues; nokaslr" : "the guest runs at once; nokaslr"))
        }
        if options.holdOnPanic {
            // pvpanic's GUEST_PANICKED pauses the VM instead of ending QEMU (QEMU's default
            // action is shutdown), so it can be dumped. -action exists since QEMU 6.0.
            args.add("-action", "panic=pause")
        }
        args.argv += profile.qemu.extraArgs

        if options.kernelEntry == .pvh {
            choices.append(Plan.Choice(topic: "kernel", value: "vmlinux (PVH entry)", reason: "booted directly, no in-guest decompression"))
        }

        return Plan(
            qemu: args.argv, virtiofsd: virtiofsdArgv, prepare: prepare,
            cmdline: cmdline.joined(separator: " "), runtimeDir: run, sockets: sockets,
            arch: arch, machine: machine, accelerator: accel, transport: transport, choices: choices,
            firmwareVars: firmwareVars, persistentOverlays: persistentOverlays,
            virtiofsTags: virtiofsShares.map(\.element.tag), virtiofsdViews: virtiofsdViews)
    }

    /// The machine, transport and accelerator a plan would use, for callers that
    /// prepare files before planning (the guest kit picks modules and boot files by them).
    public static func decisions(_ profile: Profile, host: HostFacts) -> (arch: Profile.Arch, machine: Profile.MachineKind, transport: Plan.Transport, accelerator: Accelerator?) {
        let arch = profile.arch ?? host.arch
        let machine = profile.machine ?? defaultMachine(arch: arch, firmware: profile.firmware)
        let accel = try? chooseAccelerator(profile.accel, guest: arch, host: host).get().accelerator
        return (arch, machine, transport(machine: machine, requested: profile.transport), accel)
    }

    /// `profile` with every `"transport": "auto"` share made virtiofs or 9p for this host,
    /// and one line per such share saying which and why. virtiofs when a virtiofsd is
    /// there and can run (the C one only as root) and QEMU has vhost-user-fs; else 9p,
    /// with what to install for virtiofs. Shares that name a transport are kept as they are.
    public static func resolvingShareTransports(_ profile: Profile, host: HostFacts) -> (profile: Profile, choices: [Plan.Choice]) {
        guard profile.shares.contains(where: { $0.transport == .auto }) else { return (profile, []) }
        let arch = profile.arch ?? host.arch
        let capabilities = host.qemu[arch]?.capabilities
        let machine = profile.machine ?? defaultMachine(arch: arch, firmware: profile.firmware)
        let device = (transport(machine: machine, requested: profile.transport) == .mmio ? "vhost-user-fs-device" : "vhost-user-fs-pci")
        // Why virtiofs can't be served here, or nil when it can.
        var obstacle: String?
        if profile.virtiofsd.binary == nil, host.virtiofsd == nil {
            obstacle = "no virtiofsd on this host" + noVirtiofsdReason(capabilities)
        } else if let virtiofsd = host.virtiofsd, virtiofsd.flavor == .legacyC, !host.isRoot {
            obstacle = "the C virtiofsd \(virtiofsd.path) runs only as root"
        } else if let capabilities, !capabilities.devices.contains(device) {
            obstacle = "this QEMU has no \(device)"
        } else if machine == .microvm, let capabilities, seabiosOnly(capabilities) {
            obstacle = microvmCantShareMemory(capabilities)
        }
        var resolved = profile
        var choices: [Plan.Choice] = []
        for index in resolved.shares.indices where resolved.shares[index].transport == .auto {
            let tag = resolved.shares[index].tag
            if let obstacle {
                resolved.shares[index].transport = .ninep
                choices.append(Plan.Choice(topic: "shares[\(index)] \"\(tag)\"", value: "9p",
                                           reason: "auto: \(obstacle); for virtiofs, \(installVirtiofsdFix)"))
            } else {
                resolved.shares[index].transport = .virtiofs
                let daemon = profile.virtiofsd.binary ?? host.virtiofsd.map { "\($0.path), \($0.flavor.rawValue) flavor" } ?? "virtiofsd"
                choices.append(Plan.Choice(topic: "shares[\(index)] \"\(tag)\"", value: "virtiofs", reason: "auto: virtiofsd found (\(daemon))"))
            }
        }
        return (resolved, choices)
    }

    enum MicrovmBoot: Equatable {
        /// bios-microvm.bin is qboot: no -bios, option ROMs off.
        case defaultQboot
        /// `-bios qboot.rom`, option ROMs off.
        case explicitQboot
        /// The default firmware with QEMU's option ROMs (SeaBIOS can't share guest memory).
        case optionROMs
    }

    /// How a microvm of this QEMU boots a -kernel. Unprobed: the default firmware with option ROMs,
    /// which boots on every version (shared memory included when it is qboot, as on 7.2).
    static func microvmFirmware(_ capabilities: QEMUCapabilities?) -> MicrovmBoot {
        guard let capabilities else { return .optionROMs }
        if capabilities.microvmFirmware == .qboot { return .defaultQboot }
        return capabilities.hasQboot ? .explicitQboot : .optionROMs
    }

    /// microvm can boot only SeaBIOS here: it resets the guest at once when guest RAM is a
    /// memory backend (seen with Debian's SeaBIOS 1.16 bios-microvm.bin on QEMU 7.2 and 10.0.2).
    static func seabiosOnly(_ capabilities: QEMUCapabilities) -> Bool {
        capabilities.microvmFirmware == .seabios && !capabilities.hasQboot
    }

    static func microvmCantShareMemory(_ capabilities: QEMUCapabilities) -> String {
        "this QEMU's microvm firmware (bios-microvm.bin) is SeaBIOS, which resets the guest at once when its RAM is the shared memory backend virtiofs needs, and it has no qboot.rom to boot instead"
    }

    /// Why a host has no virtiofsd, when the QEMU version explains it.
    static func noVirtiofsdReason(_ capabilities: QEMUCapabilities?) -> String {
        guard let capabilities, capabilities.shipsLegacyVirtiofsd == false else { return "" }
        return " (QEMU \(capabilities.shortVersion): QEMU >= 8 ships no C virtiofsd)"
    }

    /// How to get a virtiofsd, for messages. Debian 12 has no Rust virtiofsd package (backports
    /// included) and Debian 13's needs glibc 2.39; its QEMU 7.2 ships the C one.
    static let installVirtiofsdFix = "install the Rust virtiofsd (Debian 13 / Ubuntu 24.04 / Fedora: sudo apt-get install virtiofsd or dnf install virtiofsd; Debian 12: Debian's QEMU 7.2 package qemu-system-common ships the C one at /usr/lib/qemu/virtiofsd, or build the Rust one: cargo install virtiofsd)"

    static func transport(machine: Profile.MachineKind, requested: Profile.TransportChoice) -> Plan.Transport {
        switch (machine, requested) {
        case (.microvm, _): return .mmio
        case (.q35, _), (.pc, _): return .pci
        case (.virt, .mmio): return .mmio
        case (.virt, _): return .pci
        }
    }

    public static func defaultMachine(arch: Profile.Arch, firmware: Profile.Firmware) -> Profile.MachineKind {
        switch arch {
        case .aarch64: return .virt
        case .x86_64: return firmware == .uefi ? .q35 : .microvm
        }
    }

    /// Port names in socket order: the caller's protocol ports first, then the profile's.
    static func portNames(_ profile: Profile, _ options: PlanOptions) -> [String] {
        options.guestPorts + profile.consoles
    }

    static func cpuModel(arch: Profile.Arch, accel: Accelerator) -> String {
        switch (arch, accel) {
        case (_, .kvm), (_, .hvf): return "host"
        case (.x86_64, .tcg): return "max"
        // TCG: `max` emulates pointer authentication with QARMA, 5x slower to boot
        // (12.6 s vs 2.4 s measured on QEMU 7.2); cortex-a57 has none.
        case (.aarch64, .tcg): return "cortex-a57"
        }
    }

    struct AcceleratorChoice {
        var accelerator: Accelerator
        var explanation: Plan.Choice
    }

    static func chooseAccelerator(_ requested: Profile.AccelChoice, guest: Profile.Arch, host: HostFacts) -> Result<AcceleratorChoice, ProfileProblem> {
        let foreign = guest != host.arch
        func pick(_ a: Accelerator, _ reason: String, warn: Bool = false) -> Result<AcceleratorChoice, ProfileProblem> {
            .success(AcceleratorChoice(accelerator: a, explanation: Plan.Choice(topic: "accelerator", value: a.rawValue, reason: reason, isWarning: warn)))
        }
        func refuse(_ message: String, _ fix: String) -> Result<AcceleratorChoice, ProfileProblem> {
            .failure(ProfileProblem(path: "accel", message: message, fix: fix))
        }
        switch requested {
        case .tcg:
            return pick(.tcg, "from the profile")
        case .kvm, .hvf:
            let want: Accelerator = requested == .kvm ? .kvm : .hvf
            let needOS: HostFacts.OS = want == .kvm ? .linux : .macOS
            if host.os != needOS {
                return refuse("\(want.rawValue) is not available on \(host.os.rawValue)",
                              "use \"accel\": \"\(host.os == .linux ? "kvm" : "hvf")\", \"tcg\" or \"auto\"")
            }
            if foreign {
                return refuse("\(want.rawValue) can't run an \(guest.rawValue) guest on this \(host.arch.rawValue) host",
                              "use an \(host.arch.rawValue) kernel and images, or \"accel\": \"tcg\" (emulation is 10-100x slower)")
            }
            switch want == .kvm ? host.kvm : host.hvf {
            case .usable: return pick(want, "from the profile")
            case .absent(let why): return refuse("\(want.rawValue) was asked for, but \(why)", "use \"accel\": \"tcg\" or \"auto\"")
            case .unusable(let why, let fix): return refuse("\(want.rawValue) was asked for, but \(why)", fix)
            }
        case .auto:
            if foreign {
                return pick(.tcg, "\(guest.rawValue) guest on an \(host.arch.rawValue) host runs emulated, 10-100x slower than native", warn: true)
            }
            let (hw, status): (Accelerator, AcceleratorStatus) = host.os == .linux ? (.kvm, host.kvm) : (.hvf, host.hvf)
            switch status {
            case .usable: return pick(hw, "auto: \(hw.rawValue) is usable")
            case .absent(let why): return pick(.tcg, "auto: \(hw.rawValue) unavailable (\(why)); emulating", warn: true)
            case .unusable(let why, let fix): return pick(.tcg, "auto: \(hw.rawValue) unusable: \(why); emulating instead. \(fix)", warn: true)
            }
        }
    }

    static func virtiofsdCommand(share: Profile.Share, socket: String, profile: Profile, host: HostFacts) -> [String] {
        // The profile's binary wins; HostProbe.current(for:) detects that binary's flavor.
        let binary = profile.virtiofsd.binary ?? host.virtiofsd?.path ?? "virtiofsd"
        let flavor = host.virtiofsd?.flavor ?? .rust
        var argv = [binary]
        switch flavor {
        case .legacyC:
            let cache = profile.virtiofsd.cache == .never ? "none" : profile.virtiofsd.cache.rawValue
            // The strongest sandbox: mount, pid and net namespaces with pivot_root into the share
            // (needs root, like everything the C daemon does).
            argv += ["--socket-path=\(socket)", "-o", "source=\(QEMUSyntax.fuseOptionValue(share.path))",
                     "-o", "cache=\(cache)", "-o", "sandbox=namespace"]
        case .rust:
            argv += ["--socket-path=\(socket)", "--shared-dir=\(share.path)",
                     "--cache=\(profile.virtiofsd.cache.rawValue)",
                     // Namespaces as root; unprivileged, the Rust daemon can only run unsandboxed.
                     "--sandbox=\(host.isRoot ? "namespace" : "none")"]
            if share.readOnly { argv.append("--readonly") }
        }
        return argv + profile.virtiofsd.extraArgs
    }
}

/// Accumulates argv and names devices for the transport in use.
struct ArgvBuilder {
    var argv: [String] = []
    let transport: Plan.Transport

    mutating func add(_ words: String...) { argv += words }

    /// `virtio-blk` → `virtio-blk-device` (mmio) or `virtio-blk-pci`.
    func device(_ base: String) -> String {
        base + (transport == .mmio ? "-device" : "-pci")
    }
}
