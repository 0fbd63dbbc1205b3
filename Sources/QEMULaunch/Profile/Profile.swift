import Foundation

/// A declarative description of one VM, as written in a profile's JSON file.
///
/// Keys are the public contract; see `Profiles/profile.schema.json` and the
/// README's profile reference. Decoding collects every problem it finds (with
/// its JSON path) instead of stopping at the first.
public struct Profile: Sendable, Hashable {
    public var name: String
    /// Guest architecture; nil means the host's.
    public var arch: Arch?
    /// Machine type; nil means microvm on x86_64 and virt on aarch64.
    public var machine: MachineKind?
    public var accel: AccelChoice = .auto
    public var cpus: Int = 1
    public var memory: MemorySize = .mebibytes(512)
    /// Path to a kernel image, or "auto" for the newest /boot/vmlinuz-*.
    public var kernel: String?
    public var initrd: String?
    /// Extra kernel arguments, appended after the launcher's own.
    public var cmdline: String?
    public var shares: [Share] = []
    public var disks: [Disk] = []
    public var network: Network = .init()
    /// argv to run in the guest (guest kit); nil = just boot.
    public var command: [String]?
    public var firmware: Firmware = .none
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
    public var qemu: QEMUOptions = .init()
    public var virtiofsd: VirtiofsdOptions = .init()
    public var timeouts: Timeouts = .init()
    /// Files the guest kit builds its initramfs from, for a guest that isn't the host's
    /// (another arch, or a kernel whose modules aren't under /lib/modules).
    public var guestKit: GuestKitOptions = .init()
    /// The guest's root filesystem for a guest-kit command: the host's, a folder, or a disk's
    /// root partition (see `RootFS`); nil = the busybox initramfs.
    public var rootfs: RootFS?

    public init(name: String) { self.name = name }

    public enum Arch: String, Sendable, Hashable, Codable, CaseIterable {
        case x86_64, aarch64
    }

    public enum MachineKind: String, Sendable, Hashable, Codable, CaseIterable {
        case microvm, q35, pc, virt
    }

    public enum AccelChoice: String, Sendable, Hashable, Codable, CaseIterable {
        case auto, kvm, hvf, tcg
    }

    public enum Firmware: String, Sendable, Hashable, Codable, CaseIterable {
        case none, uefi
    }

    public enum TransportChoice: String, Sendable, Hashable, Codable, CaseIterable {
        case auto, mmio, pci
    }

    public struct Share: Sendable, Hashable {
        public var tag: String
        public var path: String
        /// Where the guest kit mounts it; default `/mnt/<tag>`.
        public var guestPath: String?
        public var readOnly: Bool = false
        public var transport: ShareTransport = .virtiofs

        public init(tag: String, path: String, guestPath: String? = nil, readOnly: Bool = false,
                    transport: ShareTransport = .virtiofs) {
            self.tag = tag
            self.path = path
            self.guestPath = guestPath
            self.readOnly = readOnly
            self.transport = transport
        }

        public var mountPoint: String { guestPath ?? "/mnt/\(tag)" }
    }

    public enum ShareTransport: String, Sendable, Hashable, Codable, CaseIterable {
        case virtiofs
        case ninep = "9p"
        /// virtiofs when this host can serve it (a usable virtiofsd, a QEMU with
        /// vhost-user-fs), else 9p; the plan says which and why in one line.
        case auto
    }

    public struct Disk: Sendable, Hashable {
        public var path: String
        public var format: DiskFormat = .raw
        public var readOnly: Bool = false
        /// Writes go to a throw-away qcow2 overlay in the runtime dir.
        public var ephemeral: Bool = false
        /// `.persistent`: writes go to a qcow2 overlay in the VM's state folder, kept between runs.
        public var overlay: DiskOverlay = .none

        public init(path: String, format: DiskFormat = .raw, readOnly: Bool = false, ephemeral: Bool = false,
                    overlay: DiskOverlay = .none) {
            self.path = path
            self.format = format
            self.readOnly = readOnly
            self.ephemeral = ephemeral
            self.overlay = overlay
        }
    }

    public enum DiskFormat: String, Sendable, Hashable, Codable, CaseIterable {
        case raw, qcow2
    }

    public enum DiskOverlay: String, Sendable, Hashable, Codable, CaseIterable {
        /// The guest writes to the image itself (or to an ephemeral overlay).
        case none
        /// The guest writes to a qcow2 overlay kept in the VM's state folder; the image is never written.
        case persistent
    }

    public struct Network: Sendable, Hashable {
        public var mode: NetworkMode = .none
        public var forwards: [Forward] = []
        public init(mode: NetworkMode = .none, forwards: [Forward] = []) {
            self.mode = mode
            self.forwards = forwards
        }
    }

    public enum NetworkMode: String, Sendable, Hashable, Codable, CaseIterable {
        case none, user
    }

    public struct Forward: Sendable, Hashable {
        public var host: Int
        public var guest: Int
        public var proto: ForwardProtocol = .tcp
        /// The host address to listen on; loopback unless set (e.g. "0.0.0.0" for every interface).
        public var address: String = "127.0.0.1"
        public init(host: Int, guest: Int, proto: ForwardProtocol = .tcp, address: String = "127.0.0.1") {
            self.host = host
            self.guest = guest
            self.proto = proto
            self.address = address
        }
    }

    public enum ForwardProtocol: String, Sendable, Hashable, Codable, CaseIterable {
        case tcp, udp
    }

    public struct QEMUOptions: Sendable, Hashable {
        /// A path, or a name looked up on PATH; nil = `qemu-system-<arch>`.
        public var binary: String?
        /// Appended verbatim to QEMU's argv (each element one argument).
        public var extraArgs: [String] = []
        public init(binary: String? = nil, extraArgs: [String] = []) {
            self.binary = binary
            self.extraArgs = extraArgs
        }
    }

    public struct VirtiofsdOptions: Sendable, Hashable {
        public var binary: String?
        public var extraArgs: [String] = []
        /// virtiofsd's cache mode.
        public var cache: VirtiofsCache = .auto
        public init(binary: String? = nil, extraArgs: [String] = [], cache: VirtiofsCache = .auto) {
            self.binary = binary
            self.extraArgs = extraArgs
            self.cache = cache
        }
    }

    /// The profile's `guestKit` section. It stays in QEMULaunch although only GuestKit reads
    /// it: the profile is one strict JSON schema (an unknown key is a problem, listed with the
    /// rest in one pass), so its decoder must know every section; the values are two paths
    /// and carry nothing of the guest kit's protocol.
    public struct GuestKitOptions: Sendable, Hashable {
        /// A static busybox for the guest's arch; nil = /bin/busybox (busybox-static).
        public var busybox: String?
        /// The guest kernel's modules: its `/lib/modules/<release>` folder or an
        /// INSTALL_MOD_PATH root; nil = /lib/modules/<the kernel's release>.
        public var modules: String?
        public init(busybox: String? = nil, modules: String? = nil) {
            self.busybox = busybox
            self.modules = modules
        }
    }

    public enum VirtiofsCache: String, Sendable, Hashable, Codable, CaseIterable {
        case auto, always, never
    }

    public struct Timeouts: Sendable, Hashable {
        /// From spawn to the guest being up (QMP ready and, for commands, the command started).
        public var boot: TimeLimit = .init(.seconds(60))
        /// How long the command (or the whole VM when there is none) may run; nil = no limit.
        public var run: TimeLimit?
        /// Each step of the shutdown ladder gets this long.
        public var shutdown: TimeLimit = .init(.seconds(10))
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
