/// What the planner needs to know about the host, as a plain value.
///
/// `HostProbe.current()` reads it off this machine; tests construct it to plan
/// for hosts this machine is not (aarch64 macOS with HVF, a KVM-less laptop, ...).
public struct HostFacts: Sendable, Hashable, Codable {
    /// The host's operating system: it sets the Unix socket path limit (107 bytes on Linux,
    /// 103 on macOS) and which accelerator the planner may pick (KVM on Linux, HVF on macOS).
    /// Plans for a macOS host are golden-tested from this value; the launcher itself runs on Linux only.
    public enum OS: String, Sendable, Hashable, Codable {
        /// Linux: KVM, 107-byte socket paths.
        case linux
        /// macOS: HVF, 103-byte socket paths.
        case macOS
    }

    /// The host's CPU architecture. A guest of another arch runs under TCG.
    public var arch: Profile.Arch
    /// The host's operating system; it sets the socket path limit and the hardware
    /// accelerator the planner considers.
    public var os: OS
    /// Whether KVM can run guests here. ``HostProbe`` only checks that `/dev/kvm` opens;
    /// ``Machine/start(_:options:)``, when it reads the host itself, also boots a short probe
    /// guest under KVM (once per host; the verdict is cached) before trusting it.
    public var kvm: AcceleratorStatus
    /// Whether Hypervisor.framework can run guests here; never ``AcceleratorStatus/usable`` on Linux.
    public var hvf: AcceleratorStatus
    /// The cache file ``kvm`` was read from, when it is the verdict an earlier run's probe
    /// stored (the plan then says an unusable KVM in one line instead of the probe's whole
    /// finding); nil when probed now or not probed.
    public var kvmVerdictCache: String?
    /// QEMU system emulators found, by guest arch.
    public var qemu: [Profile.Arch: QEMUBinary]
    /// Path of `qemu-img`, which makes the qcow2 overlays of ephemeral and persistent disks; nil when absent.
    public var qemuImg: String?
    /// The virtiofsd that serves virtiofs shares, with its flavor; nil when the host has none
    /// (a share with transport `auto` then takes 9p, one with `virtiofs` is refused).
    public var virtiofsd: VirtiofsdBinary?
    /// The host's TSC frequency, for `tsc_early_khz` (PVH boots on microvm).
    public var tscKHz: Int?
    /// Folder under which runtime dirs are made by default.
    public var runtimeBase: String
    /// Whether the launcher runs as root (virtiofsd can sandbox itself in namespaces then).
    public var isRoot: Bool = true
    /// RLIMIT_MEMLOCK's soft limit in bytes; nil = unlimited or unknown.
    public var memlockLimitBytes: UInt64?
    /// UEFI firmware found, by guest arch.
    public var firmware: [Profile.Arch: UEFIFirmware] = [:]

    /// Facts with nothing probed: no KVM or HVF, no programs, runtime dirs under `/tmp`.
    /// Fill in what the host you plan for has; ``HostProbe/current(for:)`` does it for this machine.
    public init(arch: Profile.Arch, os: OS, kvm: AcceleratorStatus = .absent("not probed"),
                hvf: AcceleratorStatus = .absent("not probed"), qemu: [Profile.Arch: QEMUBinary] = [:],
                qemuImg: String? = nil, virtiofsd: VirtiofsdBinary? = nil, tscKHz: Int? = nil,
                runtimeBase: String = "/tmp") {
        self.arch = arch
        self.os = os
        self.kvm = kvm
        self.hvf = hvf
        self.qemu = qemu
        self.qemuImg = qemuImg
        self.virtiofsd = virtiofsd
        self.tscKHz = tscKHz
        self.runtimeBase = runtimeBase
    }
}

/// How QEMU runs the guest's CPU: KVM (Linux hardware virtualization), HVF (macOS
/// Hypervisor.framework) or TCG (QEMU's own emulation, slow but available everywhere).
public enum Accelerator: String, Sendable, Hashable, Codable, CaseIterable {
    /// `-accel kvm`, `-accel hvf` and `-accel tcg`.
    case kvm, hvf, tcg
}

/// Whether a hardware accelerator can run guests here, and if not, why.
public enum AcceleratorStatus: Sendable, Hashable, Codable {
    /// It can run guests: for KVM, `/dev/kvm` opens (and, when probed, a guest made progress).
    case usable
    /// Not on this host at all (no /dev/kvm, not macOS, ...).
    case absent(String)
    /// Present, but it can't be used: no permission, or guests make no progress.
    case unusable(reason: String, fix: String)

    /// Whether the planner may pick this accelerator (the status is ``usable``).
    public var isUsable: Bool { if case .usable = self { true } else { false } }
}

/// A `qemu-system-*` emulator on the host, and what it can do once probed.
public struct QEMUBinary: Sendable, Hashable, Codable {
    /// Absolute path of the emulator.
    public var path: String
    /// What this binary can do and needs (its version, machines, devices, microvm
    /// firmware); nil when not probed, and the planner then uses options that are safe
    /// on every QEMU from 7.2 to 10.x.
    public var capabilities: QEMUCapabilities?
    /// A binary at `path`; with `capabilities` nil the planner uses options every QEMU 7.2 to 10.x accepts.
    public init(path: String, capabilities: QEMUCapabilities? = nil) {
        self.path = path
        self.capabilities = capabilities
    }
}

/// The two virtiofsd implementations, which take different flags.
public enum VirtiofsdFlavor: String, Sendable, Hashable, Codable {
    /// The C daemon shipped with QEMU <= 7.2 (`-o source=DIR`, `-o sandbox=`).
    case legacyC = "legacy-c"
    /// The Rust daemon (`--shared-dir`, `--sandbox`, `--readonly`).
    case rust
}

/// A virtiofsd on the host and which of the two implementations it is (told apart by its
/// `--help`, never by its path).
public struct VirtiofsdBinary: Sendable, Hashable, Codable {
    /// Absolute path of the daemon.
    public var path: String
    /// Which implementation it is, which decides the flags it gets.
    public var flavor: VirtiofsdFlavor
    /// A daemon at `path` of the given flavor.
    public init(path: String, flavor: VirtiofsdFlavor) {
        self.path = path
        self.flavor = flavor
    }
}
