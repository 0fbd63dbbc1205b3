/// One plan being built: the decisions every section shares, then one method per
/// device family, each adding its argv words and the choices it made, in argv order.
/// Pure, like `Planner.plan`, which drives it.
struct Planning {
    /// The profile with every `auto` share resolved.
    let profile: Profile
    let host: HostFacts
    let options: PlanOptions
    let arch: Profile.Arch
    let machine: Profile.MachineKind
    let transport: Plan.Transport
    /// What this QEMU binary is, from the host facts; nil when not probed (then only
    /// options every QEMU takes), or when the profile names another binary.
    let capabilities: QEMUCapabilities?
    /// The shares served by virtiofsd, with their index in `profile.shares`.
    let virtiofsShares: [(offset: Int, element: Profile.Share)]
    let sockets: Plan.Sockets
    /// UEFI firmware for this arch, when the profile asks for it and the machine has it.
    let firmware: UEFIFirmware?

    private(set) var accelerator: Accelerator = .tcg
    private(set) var choices: [Plan.Choice] = []
    private var args: ArgvBuilder
    private var cmdline: [String] = []
    private var firmwareVars: Plan.FirmwareVars?
    private var virtiofsdArgv: [[String]] = []
    private var virtiofsdViews: [Plan.ReadOnlyView?] = []
    private var prepare: [[String]] = []
    private var persistentOverlays: [Plan.PersistentOverlay] = []

    init(profile: Profile, host: HostFacts, options: PlanOptions) {
        self.profile = profile
        self.host = host
        self.options = options
        arch = profile.arch ?? host.arch
        machine = profile.machine ?? Planner.defaultMachine(arch: arch, firmware: profile.firmware)
        transport = Planner.transport(machine: machine, requested: profile.transport)
        capabilities = profile.qemu.binary == nil || host.qemu[arch]?.path == profile.qemu.binary
            ? host.qemu[arch]?.capabilities : nil
        virtiofsShares = profile.shares.enumerated().filter { $0.element.transport == .virtiofs }.map { ($0.offset, $0.element) }
        let run = options.runtimeDir
        sockets = Plan.Sockets(
            qmp: run + "/qmp.sock",
            console: run + "/console.sock",
            virtiofs: virtiofsShares.indices.map { run + "/fs\($0).sock" },
            // A name given twice is the validator's problem, and no plan is made; until then the first wins.
            ports: Dictionary(Self.portNames(profile, options).enumerated().map { ($0.element, run + "/port\($0.offset).sock") },
                              uniquingKeysWith: { first, _ in first })
        )
        // (microvm has no UEFI at all: the validator says so.)
        firmware = profile.firmware == .uefi && machine != .microvm ? host.firmware[arch] : nil
        args = ArgvBuilder(transport: transport)
    }

    /// Port names in socket order: the caller's protocol ports first, then the profile's.
    static func portNames(_ profile: Profile, _ options: PlanOptions) -> [String] {
        options.guestPorts + profile.consoles
    }

    // MARK: - decisions and their problems

    /// The accelerator and why; a refused one is a problem (and TCG stands in for it).
    mutating func chooseAccelerator(_ problems: inout [ProfileProblem]) {
        switch Planner.chooseAccelerator(profile.accel, guest: arch, host: host) {
        case .success(let choice):
            accelerator = choice.accelerator
            choices.append(choice.explanation)
        case .failure(let problem):
            problems.append(problem)
            accelerator = .tcg
        }
    }

    /// The machine, transport, QEMU version and share transports, one line each.
    mutating func describeTarget(shareChoices: [Plan.Choice]) {
        choices.append(Plan.Choice(
            topic: "machine", value: machine.rawValue,
            reason: profile.machine == nil ? "default for \(arch.rawValue)" : "from the profile"))
        choices.append(Plan.Choice(
            topic: "transport", value: transport == .mmio ? "virtio-mmio" : "virtio-pci",
            reason: profile.transport == .auto ? "default for \(machine.rawValue)" : "from the profile"))
        if let capabilities {
            choices.append(Plan.Choice(topic: "qemu", value: capabilities.shortVersion, reason: "read from \(host.qemu[arch]?.path ?? "the binary")'s --version and help"))
        }
        choices += shareChoices
    }

    /// What stops this host from running the profile as decided: no virtiofsd, an
    /// unresolved kernel, an unknown TSC rate for PVH on microvm, no UEFI firmware, ...
    func problems() -> [ProfileProblem] {
        var problems: [ProfileProblem] = []
        if let first = virtiofsShares.first, profile.virtiofsd.binary == nil, host.virtiofsd == nil {
            problems.append(ProfileProblem(
                path: "shares[\(first.offset)].transport",
                message: "a virtiofs share needs virtiofsd, and none was found on this host" + Planner.noVirtiofsdReason(capabilities),
                fix: Planner.installVirtiofsdFix + ", set virtiofsd.binary, or use \"transport\": \"9p\" (or \"auto\": 9p when no virtiofsd is found)"))
        }
        if profile.kernel == "auto" {
            problems.append(ProfileProblem(path: "kernel", message: "\"auto\" must be resolved to a file before planning",
                                           fix: "prepare the launch with Machine.prepare (Machine.start and GuestKit do), which resolves it"))
        }
        if machine == .microvm, options.kernelEntry == .pvh, host.tscKHz == nil {
            problems.append(ProfileProblem(path: "kernel", message: "microvm boots a PVH vmlinux only with tsc_early_khz, and this host's TSC frequency is unknown (the guest would hang calibrating it)",
                                           fix: "boot the bzImage instead (--no-fast-boot), or use machine \"pc\" or \"q35\""))
        }
        if profile.firmware == .uefi && machine != .microvm && firmware == nil {
            problems.append(ProfileProblem(path: "firmware", message: "no UEFI firmware for \(arch.rawValue) was found (looked at QEMU's firmware descriptors and the usual paths)",
                                           fix: LaunchError.installFix(arch == .x86_64 ? "Debian and Ubuntu: ovmf; Fedora: edk2-ovmf"
                                                                                          : "Debian and Ubuntu: qemu-efi-aarch64; Fedora: edk2-aarch64")))
        }
        if machine == .microvm, let first = virtiofsShares.first, let capabilities, Planner.seabiosOnly(capabilities) {
            problems.append(ProfileProblem(path: "shares[\(first.offset)].transport", message: Planner.microvmCantShareMemory(capabilities),
                                           fix: "use \"transport\": \"9p\" (or \"auto\"), machine \"q35\" or \"pc\", or a QEMU that ships qboot.rom (upstream and Debian's do)"))
        }
        if let virtiofsd = host.virtiofsd, virtiofsd.flavor == .legacyC, !host.isRoot, let first = virtiofsShares.first {
            problems.append(ProfileProblem(path: "shares[\(first.offset)].transport",
                                           message: "the C virtiofsd (\(virtiofsd.path)) runs only as root, and this launcher is not root",
                                           fix: "run as root, install the package that ships the Rust virtiofsd (Debian 13, Ubuntu 24.04 and Fedora: virtiofsd), or use \"transport\": \"9p\""))
        }
        if options.stateDirectory == nil, let persistent = profile.disks.indices.first(where: { profile.disks[$0].overlay == .persistent }) {
            problems.append(ProfileProblem(path: "disks[\(persistent)].overlay", message: "a persistent overlay lives in the VM's state folder, and the plan was given none",
                                           fix: "plan with PlanOptions.stateDirectory set to VMStateFolder(vmName:).path (Machine.start does)"))
        }
        return problems
    }

    // MARK: - sections, in argv order

    /// The binary, no defaults, the VM's name and identity.
    mutating func header() {
        args.add(Planner.qemuBinary(profile, host: host))
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
    }

    /// `-machine` with its options, microvm's firmware, and the accelerator.
    mutating func machineAndFirmwareOptions() {
        // Every option set here exists with the same meaning in QEMU 7.2 and 10.0 (their
        // `-machine TYPE,help`, recorded in Tests/QEMULaunchTests/Fixtures); what changed is
        // microvm's firmware, below.
        var machineOptions = [machine.rawValue]
        var microvmBios: String?
        switch machine {
        case .microvm:
            if accelerator == .tcg {
                // QEMU 7.2 TCG: without the legacy PIT and PIC the guest hangs in TSC calibration.
                machineOptions += ["pit=on", "pic=on", "rtc=on"]
            } else {
                // With KVM the in-kernel LAPIC timer is enough; PIT/PIC only slow the boot.
                machineOptions += ["pit=off", "pic=off", "rtc=on"]
            }
            // ACPI stays on: with acpi=off a guest poweroff only halts and QEMU never exits.
            machineOptions.append("isa-serial=on")
            switch Planner.microvmFirmware(capabilities) {
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
            switch accelerator {
            // HVF on Apple silicon has no in-kernel GICv3 before QEMU 9.2: use GICv2.
            case .hvf: machineOptions.append("gic-version=2")
            case .kvm: machineOptions.append("gic-version=host")
            case .tcg: machineOptions.append("gic-version=3")
            }
        case .q35, .pc:
            break
        }
        if !virtiofsShares.isEmpty {
            // vhost-user (virtiofsd) maps guest RAM: it must be a shared memfd.
            machineOptions.append("memory-backend=mem")
        }
        args.add("-machine", machineOptions.joined(separator: ","))
        if let microvmBios { args.add("-bios", microvmBios) }
        args.add("-accel", accelerator.rawValue)
    }

    /// CPU model and count, memory (shared for virtiofsd, locked when asked), the mmio global.
    mutating func processorsAndMemory() {
        args.add("-cpu", profile.cpu ?? Planner.cpuModel(arch: arch, accel: accelerator))
        args.add("-smp", String(profile.cpus))
        args.add("-m", profile.memory.qemuArgument)
        if !virtiofsShares.isEmpty {
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
    }

    /// UEFI code and the VM's own variable store as pflash drives.
    mutating func uefi() {
        guard let firmware else { return }
        let vars = (options.stateDirectory ?? options.runtimeDir) + "/" + VMStateFolder.firmwareVarsFile
        firmwareVars = Plan.FirmwareVars(template: firmware.varsTemplate, path: vars)
        // Code read-only and shared by every VM; the variable store is this VM's own, writable.
        args.add("-drive", "if=pflash,format=raw,unit=0,readonly=on,file=\(QEMUSyntax.optionValue(firmware.code))")
        args.add("-drive", "if=pflash,format=raw,unit=1,file=\(QEMUSyntax.optionValue(vars))")
        choices.append(Plan.Choice(topic: "firmware", value: "UEFI \(firmware.code)",
                                   reason: options.stateDirectory == nil ? "variables in the runtime dir: not kept after this run" : "variables kept in \(vars)",
                                   isWarning: options.stateDirectory == nil))
    }

    /// `-kernel`, `-initrd` and the kernel command line.
    mutating func kernel() {
        guard let kernel = profile.kernel else { return }
        // -kernel, -initrd and -append take the whole string: no comma escaping here.
        args.add("-kernel", kernel)
        if let initrd = profile.initrd { args.add("-initrd", initrd) }
        cmdline.append(arch == .aarch64 ? "console=ttyAMA0" : "console=ttyS0")
        if options.holdOnPanic {
            // The panicked kernel waits 20 s (of guest time: none pass while the vCPUs are
            // stopped for the dump) instead of rebooting at once, so there is a guest to dump;
            // the supervisor sees the panic (console or pvpanic), stops it, dumps, quits. A
            // panic nobody saw (no printk, no pvpanic) still ends in the reboot -no-reboot ends.
            cmdline.append("panic=20")
        } else {
            // A panic reboots at once, and -no-reboot turns that reboot into QEMU's exit.
            cmdline.append("panic=-1")
        }
        if options.gdb != nil {
            // A randomized kernel base would not match the addresses in vmlinux's symbols
            // (a bzImage booted through its decompressor picks one; PVH entry never does).
            cmdline.append("nokaslr")
        }
        if machine == .microvm, options.kernelEntry == .pvh || accelerator == .tcg, let khz = host.tscKHz {
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

    /// The serial console and the virtio-serial ports (the caller's, then the profile's).
    mutating func consolesAndPorts() {
        // Serial console, drained by the supervisor.
        args.add("-chardev", "socket,id=console,path=\(QEMUSyntax.optionValue(sockets.console)),server=on,wait=off")
        args.add("-serial", "chardev:console")
        let ports = Self.portNames(profile, options)
        guard !ports.isEmpty else { return }
        args.add("-device", args.device("virtio-serial") + ",id=vser0")
        for (index, name) in ports.enumerated() {
            args.add("-chardev", "socket,id=port\(index),path=\(QEMUSyntax.optionValue(sockets.ports[name]!)),server=on,wait=off")
            args.add("-device", "virtserialport,bus=vser0.0,chardev=port\(index),name=\(QEMUSyntax.optionValue(name))")
        }
    }

    /// virtiofs shares (a vhost-user device and a virtiofsd each) and 9p shares.
    mutating func shares() {
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
                    let bind = Plan.ReadOnlyView(source: share.path, view: options.runtimeDir + "/ro\(fsIndex)")
                    view = bind
                    served.path = bind.view
                }
                virtiofsdViews.append(view)
                virtiofsdArgv.append(Planner.virtiofsdCommand(share: served, socket: socket, profile: profile, host: host))
                fsIndex += 1
            case .ninep, .auto:
                // (`auto` never gets here: resolvingShareTransports made it virtiofs or 9p.)
                var fsdev = "local,id=p9fs\(index),path=\(QEMUSyntax.optionValue(share.path)),security_model=none"
                if share.readOnly { fsdev += ",readonly=on" }
                args.add("-fsdev", fsdev)
                args.add("-device", args.device("virtio-9p") + ",fsdev=p9fs\(index),mount_tag=\(QEMUSyntax.optionValue(share.tag))")
            }
        }
        describeVirtiofsd()
    }

    /// Which virtiofsd serves the shares, and how it is sandboxed.
    private mutating func describeVirtiofsd() {
        guard let virtiofsd = host.virtiofsd, !virtiofsShares.isEmpty else { return }
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

    /// virtio-blk disks, through a persistent overlay in the state folder or an ephemeral one.
    mutating func disks() {
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
                let overlay = options.runtimeDir + "/disk\(index).qcow2"
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
    }

    /// User-mode networking with its port forwards, and the NIC.
    mutating func network() {
        guard profile.network.mode == .user else { return }
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

    /// A virtio RNG, and pvpanic where the machine has a bus for it.
    mutating func entropyAndPanic() {
        // Entropy, so the guest never blocks on getrandom() early in boot.
        args.add("-object", "rng-random,id=rng0,filename=/dev/urandom")
        args.add("-device", args.device("virtio-rng") + ",rng=rng0")
        // pvpanic turns a guest panic into a GUEST_PANICKED QMP event.
        if arch == .x86_64 {
            args.add("-device", "pvpanic")
        } else if transport == .pci {
            args.add("-device", "pvpanic-pci")
        }
    }

    /// The launcher's QMP connection (an inherited fd) and `qmp.sock` for other tools.
    mutating func monitors() {
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
    }

    /// No reboot (unless the profile lets the guest reboot), paused vCPUs, then the
    /// profile's own extra arguments, last.
    mutating func lifetimeAndExtras() {
        // The launcher owns the VM's lifetime: a guest reboot ends the run, unless the
        // profile says `"onReboot": "reboot"` (a long-lived VM that reboots like a machine).
        if profile.onReboot == .exit { args.add("-no-reboot") }
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
    }

    /// The plan the sections built.
    func finished() -> Plan {
        Plan(
            qemu: args.argv, virtiofsd: virtiofsdArgv, prepare: prepare,
            cmdline: cmdline.joined(separator: " "), runtimeDir: options.runtimeDir, sockets: sockets,
            arch: arch, machine: machine, accelerator: accelerator, transport: transport, choices: choices,
            firmwareVars: firmwareVars, persistentOverlays: persistentOverlays,
            virtiofsTags: virtiofsShares.map(\.element.tag), virtiofsdViews: virtiofsdViews)
    }
}
