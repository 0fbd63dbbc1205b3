import Foundation

/// A declarative description of one VM, as written in a profile's JSON file.
///
/// Keys are the public contract; see `Profiles/profile.schema.json` and the
/// README's profile reference. Decoding collects every problem it finds (with
/// its JSON path) instead of stopping at the first.
public struct Profile: Sendable, Hashable {
    /// The VM's name (`name`): 1-64 letters, digits, `.`, `_` or `-`. It names the VM's state
    /// folder and appears in messages.
    public var name: String
    /// Guest architecture; nil means the host's.
    public var arch: Arch?
    /// Machine type; nil means microvm on x86_64 and virt on aarch64.
    public var machine: MachineKind?
    /// `accel`: which accelerator to use; `.auto` takes KVM only when a probe guest really runs under it.
    public var accel: AccelChoice = .auto
    /// `cpus`: the number of vCPUs (`-smp`).
    public var cpus: Int = 1
    /// `memory`: guest RAM (`-m`).
    public var memory: MemorySize = .mebibytes(512)
    /// Path to a kernel image, or "auto" for the newest /boot/vmlinuz-*.
    public var kernel: String?
    /// `initrd`: your own initramfs, booted as is; the guest kit's is not built then, so there is no `command`.
    public var initrd: String?
    /// Extra kernel arguments, appended after the launcher's own.
    public var cmdline: String?
    /// `shares`: host folders the guest mounts over virtiofs or 9p.
    public var shares: [Share] = []
    /// `disks`: disk images attached as virtio block devices, in order.
    public var disks: [Disk] = []
    /// `network`: none, or user-mode networking with port forwards.
    public var network: Network = .init()
    /// argv to run in the guest (guest kit); nil = just boot.
    public var command: [String]?
    /// `firmware`: direct kernel boot, or UEFI with a variable store kept in the VM's state folder.
    public var firmware: Firmware = .none
    /// `onReboot`: what a guest reboot does: end the VM (the default), or reboot it.
    public var onReboot: RebootAction = .exit
    /// virtio transport: auto = mmio on microvm, PCI elsewhere.
    public var transport: TransportChoice = .auto
    /// Extra named virtio-serial ports, each exposed as a Unix socket in the runtime dir.
    public var consoles: [String] = []
    /// Lock guest RAM in host memory (`-overcommit mem-lock=on`): no swapping, needed for
    /// some real-time and VFIO setups; RLIMIT_MEMLOCK must cover guest RAM.
    public var lockMemory: Bool = false
    /// CPU model override (`-cpu`); nil picks one per accelerator.
    public var cpu: String?
    /// Folder under which the VM's private runtime dir is made; nil = $XDG_RUNTIME_DIR or /tmp.
    public var runtimeDir: String?
    /// `qemu`: another QEMU binary, and extra arguments appended to its argv.
    public var qemu: QEMUOptions = .init()
    /// `virtiofsd`: another virtiofsd binary, extra arguments, its cache mode.
    public var virtiofsd: VirtiofsdOptions = .init()
    /// `timeouts`: the boot, run and per-shutdown-step deadlines.
    public var timeouts: Timeouts = .init()
    /// Files the guest kit builds its initramfs from, for a guest that isn't the host's
    /// (another arch, or a kernel whose modules aren't under /lib/modules).
    public var guestKit: GuestKitOptions = .init()
    /// The guest's root filesystem for a guest-kit command: the host's, a folder, or a disk's
    /// root partition (see `RootFS`); nil = the busybox initramfs.
    public var rootfs: RootFS?
    /// `ready`: when `launch up` counts your own OS as up (see `Readiness`); nil = see `effectiveReadiness`.
    public var ready: Readiness?
    /// `ssh`: how `launch ssh` reaches the guest's sshd (see `SSHAccess`).
    public var ssh: SSHAccess?

    /// The file this profile was read from and what was wrong with its JSON, when it was
    /// read by ``loadDeferringProblems(contentsOf:)`` (each value at a problem's path is a
    /// stand-in default); nil for a profile made in code or decoded strictly. Preparing a
    /// launch lists these problems with the rest and refuses the profile while there are any.
    /// Not part of the profile's value: profiles that differ only here are equal.
    public internal(set) var decodingProblems: ProfileProblems? {
        get { decoding.problems }
        set { decoding.problems = newValue }
    }
    private var decoding = DecodingRecord()

    /// Where a profile came from, carried along without taking part in equality.
    private struct DecodingRecord: Sendable, Hashable {
        var problems: ProfileProblems?
        static func == (lhs: Self, rhs: Self) -> Bool { true }
        func hash(into hasher: inout Hasher) {}
    }

    /// A profile with every default: the host's arch and default machine, `accel` auto,
    /// 1 vCPU, 512 MiB, no kernel yet (set ``kernel`` before starting it). Planning it
    /// (``Machine/start(_:options:)``, ``Planner``) checks it against the host first and
    /// reports every problem at once.
    public init(name: String) { self.name = name }

    /// A guest architecture, as QEMU names it (`qemu-system-x86_64`, `qemu-system-aarch64`).
    public enum Arch: String, Sendable, Hashable, Codable, CaseIterable {
        /// 64-bit x86 (`x86_64`) and 64-bit Arm (`aarch64`).
        case x86_64, aarch64
    }

    /// A QEMU machine type.
    public enum MachineKind: String, Sendable, Hashable, Codable, CaseIterable {
        /// `microvm`: x86's minimal machine, virtio-mmio only, the fastest to boot; `q35` and `pc`:
        /// x86 PCs (PCI; needed for UEFI); `virt`: the aarch64 machine.
        case microvm, q35, pc, virt
    }

    /// What the profile asks for as accelerator; the plan records the one chosen (``Accelerator``).
    public enum AccelChoice: String, Sendable, Hashable, Codable, CaseIterable {
        /// `auto`: KVM when it really runs guests here, else TCG (with a warning when KVM was present
        /// but unusable); `kvm`, `hvf`: that one, or an error saying why not; `tcg`: emulation.
        case auto, kvm, hvf, tcg
    }

    /// How the guest boots.
    public enum Firmware: String, Sendable, Hashable, Codable, CaseIterable {
        /// `none`: QEMU loads the kernel directly (`-kernel`); `uefi`: OVMF or AAVMF, found through
        /// QEMU's firmware descriptors.
        case none, uefi
    }

    /// What a guest reboot does to the VM.
    public enum RebootAction: String, Sendable, Hashable, Codable, CaseIterable {
        /// `exit`: the reboot ends the VM (QEMU's `-no-reboot`), as a run that ends with its
        /// command expects; `reboot`: the guest reboots and the VM goes on (a long-lived VM).
        case exit, reboot
    }

    /// Which virtio transport the devices use.
    public enum TransportChoice: String, Sendable, Hashable, Codable, CaseIterable {
        /// `auto`: virtio-mmio on microvm, PCI on q35, pc and virt; `mmio` asks for virtio-mmio on
        /// virt. A transport the machine can't have (PCI on microvm, mmio on q35 or pc) is a
        /// profile problem.
        case auto, mmio, pci
    }

    /// A host folder shared with the guest (`shares[N]`).
    public struct Share: Sendable, Hashable {
        /// The mount tag the guest mounts it by; unique within the profile.
        public var tag: String
        /// The host folder to share; relative paths resolve against the profile's folder when loaded.
        public var path: String
        /// Where the guest kit mounts it; default `/mnt/<tag>`.
        public var guestPath: String?
        /// Whether the guest may only read it: enforced on the host (a read-only bind for the C
        /// virtiofsd, `--readonly` for the Rust one, `readonly=on` for 9p), whatever the guest mounts.
        public var readOnly: Bool = false
        /// How it is served: virtiofs (needs a virtiofsd), 9p (QEMU serves it) or auto.
        public var transport: ShareTransport = .virtiofs

        /// A share of `path` under `tag`; by default read-write, over virtiofs, at `/mnt/<tag>`.
        public init(tag: String, path: String, guestPath: String? = nil, readOnly: Bool = false,
                    transport: ShareTransport = .virtiofs) {
            self.tag = tag
            self.path = path
            self.guestPath = guestPath
            self.readOnly = readOnly
            self.transport = transport
        }

        /// Where the guest kit mounts it: ``guestPath``, or `/mnt/<tag>`.
        public var mountPoint: String { guestPath ?? "/mnt/\(tag)" }
    }

    /// How a share reaches the guest.
    public enum ShareTransport: String, Sendable, Hashable, Codable, CaseIterable {
        /// virtiofs through a virtiofsd: the fastest; a host without a virtiofsd refuses the profile.
        case virtiofs
        /// 9p served by QEMU itself (`virtio-9p`): slower, needs nothing else.
        case ninep = "9p"
        /// virtiofs when this host can serve it (a usable virtiofsd, a QEMU with
        /// vhost-user-fs), else 9p; the plan says which and why in one line.
        case auto
    }

    /// A disk image attached as a virtio block device (`disks[N]`).
    public struct Disk: Sendable, Hashable {
        /// The image file; relative paths resolve against the profile's folder when loaded.
        public var path: String
        /// The image's format as QEMU reads it.
        public var format: DiskFormat = .raw
        /// Attach it read-only: the guest can't write it.
        public var readOnly: Bool = false
        /// Writes go to a throw-away qcow2 overlay in the runtime dir.
        public var ephemeral: Bool = false
        /// `.persistent`: writes go to a qcow2 overlay in the VM's state folder, kept between runs.
        public var overlay: DiskOverlay = .none

        /// A disk at `path`; by default raw, read-write, written in place.
        public init(path: String, format: DiskFormat = .raw, readOnly: Bool = false, ephemeral: Bool = false,
                    overlay: DiskOverlay = .none) {
            self.path = path
            self.format = format
            self.readOnly = readOnly
            self.ephemeral = ephemeral
            self.overlay = overlay
        }
    }

    /// A disk image format.
    public enum DiskFormat: String, Sendable, Hashable, Codable, CaseIterable {
        /// A plain image, or QEMU's copy-on-write format.
        case raw, qcow2
    }

    /// Where a disk's writes go between runs.
    public enum DiskOverlay: String, Sendable, Hashable, Codable, CaseIterable {
        /// The guest writes to the image itself (or to an ephemeral overlay).
        case none
        /// The guest writes to a qcow2 overlay kept in the VM's state folder; the image is never written.
        case persistent
    }

    /// The guest's network (`network`).
    public struct Network: Sendable, Hashable {
        /// No network, or QEMU's user-mode network (a NATed virtio NIC, no root needed).
        public var mode: NetworkMode = .none
        /// Host ports forwarded into the guest (user mode only).
        public var forwards: [Forward] = []
        /// A network of `mode` with `forwards`.
        public init(mode: NetworkMode = .none, forwards: [Forward] = []) {
            self.mode = mode
            self.forwards = forwards
        }
    }

    /// Whether the guest has a network.
    public enum NetworkMode: String, Sendable, Hashable, Codable, CaseIterable {
        /// `none`: no NIC; `user`: one virtio NIC on QEMU's user-mode network (slirp).
        case none, user
    }

    /// A host port forwarded to a guest port (`hostfwd`).
    public struct Forward: Sendable, Hashable {
        /// The host port QEMU listens on, at ``address``.
        public var host: Int
        /// The guest port the connections go to.
        public var guest: Int
        /// Whether TCP or UDP is forwarded (`protocol` in the JSON).
        public var proto: ForwardProtocol = .tcp
        /// The host address to listen on; loopback unless set (e.g. "0.0.0.0" for every interface).
        public var address: String = "127.0.0.1"
        /// Forwards `host` to `guest` over `proto`, listening on `address` (loopback by default).
        public init(host: Int, guest: Int, proto: ForwardProtocol = .tcp, address: String = "127.0.0.1") {
            self.host = host
            self.guest = guest
            self.proto = proto
            self.address = address
        }
    }

    /// The protocol of a port forward.
    public enum ForwardProtocol: String, Sendable, Hashable, Codable, CaseIterable {
        /// `hostfwd=tcp:...` or `hostfwd=udp:...`.
        case tcp, udp
    }

    /// `qemu`: which QEMU, and what to add to its argv.
    public struct QEMUOptions: Sendable, Hashable {
        /// A path, or a name looked up on PATH; nil = `qemu-system-<arch>`.
        public var binary: String?
        /// Appended verbatim to QEMU's argv (each element one argument).
        public var extraArgs: [String] = []
        /// Options as given; the defaults change nothing.
        public init(binary: String? = nil, extraArgs: [String] = []) {
            self.binary = binary
            self.extraArgs = extraArgs
        }
    }

    /// `virtiofsd`: which virtiofsd, what to add to its argv, its cache mode.
    public struct VirtiofsdOptions: Sendable, Hashable {
        /// A path, or a name looked up on PATH; nil = the first virtiofsd found on PATH or in the usual folders.
        public var binary: String?
        /// Appended verbatim to every virtiofsd's argv.
        public var extraArgs: [String] = []
        /// virtiofsd's cache mode.
        public var cache: VirtiofsCache = .auto
        /// Options as given; the defaults change nothing.
        public init(binary: String? = nil, extraArgs: [String] = [], cache: VirtiofsCache = .auto) {
            self.binary = binary
            self.extraArgs = extraArgs
            self.cache = cache
        }
    }

    /// `guestKit`: the files the guest kit's initramfs is built from, for a guest that isn't the host's.
    /// It stays in QEMULaunch although only GuestKit reads it: the profile is one strict JSON
    /// schema (an unknown key is a problem, listed with the rest in one pass), so its decoder
    /// must know every section; the values are two paths and carry nothing of the guest kit's protocol.
    public struct GuestKitOptions: Sendable, Hashable {
        /// A static busybox for the guest's arch; nil = /bin/busybox (busybox-static).
        public var busybox: String?
        /// The guest kernel's modules: its `/lib/modules/<release>` folder or an
        /// INSTALL_MOD_PATH root; nil = /lib/modules/<the kernel's release>.
        public var modules: String?
        /// Options as given; nil keeps the host's files.
        public init(busybox: String? = nil, modules: String? = nil) {
            self.busybox = busybox
            self.modules = modules
        }
    }

    /// virtiofsd's cache mode (`--cache=` for the Rust daemon, `-o cache=` for the C one).
    public enum VirtiofsCache: String, Sendable, Hashable, Codable, CaseIterable {
        /// `auto`: the daemon's default (cached entries expire after a short timeout); `always`:
        /// cache aggressively (for folders only the guest changes); `never`: no caching (the guest
        /// sees host changes at once).
        case auto, always, never
    }

    /// `timeouts`: the deadlines of one run.
    public struct Timeouts: Sendable, Hashable {
        /// From spawn to the guest being up (QMP ready and, for commands, the command started).
        public var boot: TimeLimit = .init(.seconds(60))
        /// How long the command (or the whole VM when there is none) may run; nil = no limit.
        public var run: TimeLimit?
        /// Each step of the shutdown ladder gets this long.
        public var shutdown: TimeLimit = .init(.seconds(10))
        /// The defaults: 60 s to boot, no run limit, 10 s per shutdown step.
        public init() {}
    }
}

extension Profile.Arch {
    /// The architecture this program runs on.
    public static var host: Profile.Arch {
        #if arch(arm64)
        return .aarch64
        #else
        return .x86_64
        #endif
    }

    /// `qemu-system-<arch>`.
    public var qemuSystemBinary: String { "qemu-system-\(rawValue)" }
}
