import QEMULaunch

/// The one table of kernel options a guest booted by the guest kit needs, per arch,
/// machine, transport and feature, each with why and whether a module can stand in.
///
/// Each entry was checked against the Kconfig files of Linux 6.1 (`depends on`, `if`
/// blocks and menus: an option whose menu or dependency is off silently drops out of a
/// `.config`, so those are in the table too) and against what the launcher uses: the
/// planner's devices and kernel command line, the init script, the modules `prepare`
/// loads. `launch kconfig` prints it; ``KernelConfigCheck`` compares a kernel with it.
public enum KernelRequirements {
    /// What the guest uses, which decides the options it needs.
    public struct Guest: Sendable, Hashable {
        /// The guest's architecture.
        public var arch: Profile.Arch
        /// The machines it may run on (any of them: the options of each are included).
        public var machines: Set<Profile.MachineKind>
        /// The virtio transports its devices may sit on (virtio-mmio, PCI).
        public var transports: Set<Plan.Transport>
        /// virtiofs and/or 9p (`auto` shares count as both: either may be picked).
        public var shares: Set<Profile.ShareTransport> = []
        /// The guest kit's session: commands over virtio-serial ports.
        public var session = true
        /// Whether it has virtio-blk disks.
        public var disks = false
        /// Whether it has a network card.
        public var network = false
        /// Filesystems of a root partition (`rootfs: {"disk": N}`): `ext4`, `xfs`, `btrfs`.
        public var rootFilesystems: [String] = []
        /// tmpfs overlays over a read-only root (`rootfs` host or folder, or `overlay`).
        public var overlay = false
        /// The firmware it boots through (UEFI needs the kernel's EFI stub).
        public var firmware: Profile.Firmware = .none

        /// A guest of `arch` on any of `machines`, with devices on `transports`; the rest is set field by field.
        public init(arch: Profile.Arch, machines: Set<Profile.MachineKind>, transports: Set<Plan.Transport>) {
            self.arch = arch
            self.machines = machines
            self.transports = transports
        }

        /// Everything the guest kit can use on `arch` (and `machine`, or every machine of
        /// that arch): both transports where the machine has both, virtiofs and 9p, disks,
        /// network, overlays. What `launch kconfig` prints without a profile.
        public static func everything(arch: Profile.Arch, machine: Profile.MachineKind? = nil) -> Guest {
            let machines: Set<Profile.MachineKind> = machine.map { [$0] } ?? (arch == .x86_64 ? [.microvm, .q35, .pc] : [.virt])
            var transports: Set<Plan.Transport> = []
            for machine in machines {
                switch machine {
                case .microvm: transports.insert(.mmio)
                case .q35, .pc: transports.insert(.pci)
                case .virt: transports.formUnion([.mmio, .pci])
                }
            }
            var guest = Guest(arch: arch, machines: machines, transports: transports)
            guest.shares = [.virtiofs, .ninep]
            guest.disks = true
            guest.network = true
            guest.overlay = true
            return guest
        }

        /// What `profile` uses on a host of arch `hostArch` (the profile's arch when it sets one).
        public init(profile: Profile, hostArch: Profile.Arch) {
            let arch = profile.arch ?? hostArch
            let machine = profile.machine ?? Planner.defaultMachine(arch: arch, firmware: profile.firmware)
            let transport: Plan.Transport = switch (machine, profile.transport) {
            case (.microvm, _): .mmio
            case (.virt, .mmio): .mmio
            default: .pci
            }
            self.init(arch: arch, machines: [machine], transports: [transport])
            var shares = Set(profile.shares.map(\.transport))
            if let rootfs = profile.rootfs {
                switch rootfs.source {
                case .host, .folder:
                    shares.insert(rootfs.transport ?? .auto)
                    overlay = true
                case .disk:
                    // The partition's filesystem is read from the disk at launch; ext4 is the common case.
                    rootFilesystems = ["ext4"]
                }
                if !rootfs.rwdirs.isEmpty { shares.insert(rootfs.transport ?? .auto) }
                if rootfs.overlay { overlay = true }
            }
            if shares.remove(.auto) != nil { shares.formUnion([.virtiofs, .ninep]) }
            self.shares = shares
            session = profile.initrd == nil
            disks = !profile.disks.isEmpty
            network = profile.network.mode == .user
            firmware = profile.firmware
        }
    }

    /// The options `guest` needs, in fragment order: the basics, the machine's, the
    /// transport's, then each feature's. Each name appears once.
    public static func options(for guest: Guest) -> [KernelOption] {
        var list: [KernelOption] = []
        func add(_ options: KernelOption...) {
            for option in options where !list.contains(where: { $0.name == option.name }) { list.append(option) }
        }
        let x86 = guest.arch == .x86_64

        // The kernel itself and the guest kit's initramfs.
        if x86 {
            add(KernelOption("64BIT", why: "an x86_64 guest: the guest kit's busybox is a 64-bit static program, which a 32-bit kernel (tinyconfig's default) can't run: the boot ends in \"Failed to execute /init (error -8)\""))
        }
        add(KernelOption("BLK_DEV_INITRD", why: "the guest kit's /init and busybox arrive as an initramfs (an uncompressed cpio archive: no RD_* decompressor is needed)"),
            KernelOption("BINFMT_ELF", why: "busybox is an ELF program"),
            KernelOption("BINFMT_SCRIPT", why: "/init is a #! shell script, run before any module could be loaded"),
            KernelOption("DEVTMPFS", why: "the init mounts devtmpfs on /dev: the console, the virtio ports, the disks"),
            KernelOption("PROC_FS", why: "the init mounts /proc and reads its parameters from /proc/cmdline"),
            KernelOption("SYSFS", why: "the init finds modules, the power button and disks through /sys"),
            KernelOption("TTY", why: "/dev/console and the serial console"),
            KernelOption("PRINTK", .recommended, why: "kernel messages on the console: the boot log and the reason of a panic"),
            KernelOption("SHMEM", .recommended, why: "the init mounts tmpfs on /tmp and /run; without SHMEM the kernel serves tmpfs from ramfs (no size limit) and TMPFS can't be set"),
            KernelOption("TMPFS", .recommended, why: "tmpfs for /tmp, /run and the rootfs overlays' writes (needs SHMEM)"),
            KernelOption("UNIX98_PTYS", .recommended, why: "the init mounts devpts on /dev/pts, for programs that open a pseudo-terminal"))

        // The serial console (`console=ttyS0` / `console=ttyAMA0` on the command line).
        if x86 {
            add(KernelOption("SERIAL_8250", why: "the serial console, ttyS0 (microvm's isa-serial, the pc/q35 COM1); it must be built in to be the console"),
                KernelOption("SERIAL_8250_CONSOLE", why: "console=ttyS0: kernel messages and the console shell on the serial port"))
        } else {
            add(KernelOption("SERIAL_AMBA_PL011", why: "the serial console, ttyAMA0 (virt's PL011 UART); it must be built in to be the console"),
                KernelOption("SERIAL_AMBA_PL011_CONSOLE", why: "console=ttyAMA0: kernel messages and the console shell on the serial port"))
        }

        // The machine: ACPI on x86 (microvm describes its virtio-mmio devices in ACPI, and
        // without ACPI a guest poweroff only halts, so QEMU never exits).
        if x86 {
            add(KernelOption("ACPI", why: "power-off that ends QEMU, and microvm's device list (QEMU puts its virtio-mmio devices in the DSDT when ACPI is on, and on the command line only with acpi=off)"))
            // Seen with tinyconfig + these options on microvm (QEMU 7.2), which has no PCI bus:
            // without PCI the kernel fails to load QEMU's ACPI tables ("ACPI Error:
            // AE_BAD_PARAMETER, During Region initialization", "Unable to load the System
            // Description Tables") and halts before the init. With PCI=y it boots (and says
            // "PCI: Fatal: No config space access function found", harmlessly).
            add(KernelOption("PCI", why: "x86 ACPI: without it the kernel can't load QEMU's ACPI tables (AE_BAD_PARAMETER during region initialization) and halts before the init, even on microvm, which has no PCI bus"))
        } else if guest.firmware == .uefi {
            add(KernelOption("ACPI", .recommended, why: "under UEFI, virt describes its devices and power button in ACPI"))
        }
        if guest.firmware == .uefi {
            add(KernelOption("EFI", why: "\"firmware\": \"uefi\": the firmware starts the kernel as an EFI program"),
                KernelOption("EFI_STUB", why: "\"firmware\": \"uefi\": the kernel's EFI entry point"))
        }

        // The virtio transport the devices sit on.
        add(KernelOption("VIRTIO_MENU", why: "the menu holding every virtio driver: off, they all drop out of .config"))
        if guest.transports.contains(.mmio) {
            add(KernelOption("VIRTIO_MMIO", module: "virtio_mmio", why: "virtio-mmio transport (\(x86 ? "microvm" : "virt with \"transport\": \"mmio\"")): every virtio device sits on it"))
        }
        if guest.transports.contains(.pci) {
            add(KernelOption("PCI", why: "the PCI bus the virtio-pci devices sit on"))
            if !x86 {
                add(KernelOption("PCI_HOST_GENERIC", why: "virt's PCIe host bridge (ECAM, from the device tree); built in, as the guest kit loads no module before it"))
            }
            add(KernelOption("VIRTIO_PCI", module: "virtio_pci", why: "virtio-pci transport (\(x86 ? "q35, pc" : "virt with \"transport\": \"pci\"")): every virtio device sits on it"))
        }

        // The guest kit's session: commands' streams and control on virtio-serial ports.
        if guest.session {
            add(KernelOption("VIRTIO_CONSOLE", module: "virtio_console", why: "the guest kit's exec and session ports (virtio-serial): without them no command runs, and the launch would wait for its boot timeout"))
        }

        // Shares.
        if guest.shares.contains(.virtiofs) {
            add(KernelOption("FUSE_FS", module: "fuse", why: "virtiofs shares are FUSE over virtio"),
                KernelOption("VIRTIO_FS", module: "virtiofs", why: "virtiofs shares (and a host or folder rootfs over virtiofs)"))
        }
        if guest.shares.contains(.ninep) {
            add(KernelOption("NET", why: "9p shares: the 9p transport lives in the networking stack (NET_9P is under NET)"),
                KernelOption("INET", why: "9p shares: 9P_FS depends on INET; without it 9P_FS silently drops out of .config"),
                KernelOption("NETWORK_FILESYSTEMS", why: "the menu holding 9P_FS"),
                KernelOption("NET_9P", module: "9pnet", why: "9p shares: the 9P2000 protocol"),
                KernelOption("NET_9P_VIRTIO", module: "9pnet_virtio", why: "9p shares: 9p over virtio"),
                KernelOption("9P_FS", module: "9p", why: "9p shares (and a host or folder rootfs over 9p)"))
        }
        if guest.overlay {
            add(KernelOption("OVERLAY_FS", module: "overlay", why: "rootfs overlays: writable tmpfs layers over a read-only root"))
        }

        // Disks and network.
        if guest.disks || !guest.rootFilesystems.isEmpty {
            add(KernelOption("BLOCK", why: "the block layer, for disks"),
                KernelOption("BLK_DEV", why: "the menu holding VIRTIO_BLK"),
                KernelOption("VIRTIO_BLK", module: "virtio_blk", why: "\"disks\": virtio-blk devices"))
        }
        for filesystem in guest.rootFilesystems {
            switch filesystem {
            case "ext4": add(KernelOption("EXT4_FS", module: "ext4", why: "an ext4 root partition (rootfs disk)"))
            case "xfs": add(KernelOption("XFS_FS", module: "xfs", why: "an xfs root partition (rootfs disk)"))
            case "btrfs": add(KernelOption("BTRFS_FS", module: "btrfs", why: "a btrfs root partition (rootfs disk)"))
            default: break
            }
        }
        if guest.network {
            add(KernelOption("NET", why: "\"network\": the networking stack"),
                KernelOption("INET", why: "\"network\": TCP/IP"),
                KernelOption("NETDEVICES", why: "the menu holding network drivers"),
                KernelOption("NET_CORE", why: "the menu holding VIRTIO_NET"),
                KernelOption("VIRTIO_NET", module: "virtio_net", why: "\"network\": the virtio-net device"))
        }

        // The power button: the shutdown ladder's ACPI step (QMP system_powerdown) powers the
        // guest off cleanly through it; without it a stop waits timeouts.shutdown, then quits.
        if x86 || guest.firmware == .uefi {
            add(KernelOption("INPUT", .recommended, why: "the power button is an input device"),
                KernelOption("ACPI_BUTTON", .recommended, module: "button", why: "the ACPI power button (microvm's GED, the q35/pc fixed-feature button): a clean stop"))
        } else {
            // virt without firmware wires the button to GPIO 3 of its PL061, reported by gpio-keys.
            add(KernelOption("INPUT", .recommended, why: "the power button is an input device"),
                KernelOption("GPIOLIB", .recommended, why: "virt's power button is a GPIO line"),
                KernelOption("GPIO_PL061", .recommended, module: "gpio_pl061", why: "virt's PL061 GPIO controller, which carries the power button"),
                KernelOption("INPUT_KEYBOARD", .recommended, why: "the menu holding KEYBOARD_GPIO"),
                KernelOption("KEYBOARD_GPIO", .recommended, module: "gpio_keys", why: "gpio-keys: reports virt's power button (GPIO 3) as a key"))
        }
        add(KernelOption("INPUT_EVDEV", .recommended, module: "evdev", why: "/dev/input/eventN, where the init waits for the power button"))

        // pvpanic: QEMU reports a guest panic as a QMP event at once; without it the panic is
        // still caught from the console. pc/q35 describe their ISA pvpanic in ACPI (microvm
        // doesn't); aarch64 virt has it on PCI.
        if x86 && !guest.machines.isDisjoint(with: [.q35, .pc]) {
            add(KernelOption("PVPANIC", .optional, why: "the menu holding the pvpanic drivers"),
                KernelOption("PVPANIC_MMIO", .optional, module: "pvpanic_mmio", why: "pc/q35's pvpanic device: a guest panic reaches QEMU at once (else it is caught from the console)"))
        } else if !x86 && guest.transports.contains(.pci) {
            add(KernelOption("PVPANIC", .optional, why: "the menu holding the pvpanic drivers"),
                KernelOption("PVPANIC_PCI", .optional, module: "pvpanic_pci", why: "virt's pvpanic-pci device: a guest panic reaches QEMU at once (else it is caught from the console)"))
        }

        // Fast boot: under TCG an x86 bzImage spends seconds decompressing itself; the
        // launcher boots the vmlinux inside it through its PVH entry instead.
        if x86 {
            add(KernelOption("HYPERVISOR_GUEST", .recommended, why: "the menu holding PVH"),
                KernelOption("PVH", .recommended, why: "fast boot: QEMU boots the extracted ELF vmlinux through its PVH entry (under TCG, seconds faster than a bzImage)"))
        }
        return list
    }
}
