/// What the planner needs to know about the host, as a plain value.
///
/// `HostProbe.current()` reads it off this machine; tests construct it to plan
/// for hosts this machine is not (aarch64 macOS with HVF, a KVM-less laptop, ...).
public struct HostFacts: Sendable, Hashable, Codable {
    public enum OS: String, Sendable, Hashable, Codable { case linux, macOS }

    public var arch: Profile.Arch
    public var os: OS
    public var kvm: AcceleratorStatus
    public var hvf: AcceleratorStatus
    /// QEMU system emulators found, by guest arch.
    public var qemu: [Profile.Arch: QEMUBinary]
    public var qemuImg: String?
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

public enum Accelerator: String, Sendable, Hashable, Codable, CaseIterable {
    case kvm, hvf, tcg
}

/// Whether a hardware accelerator can run guests here, and if not, why.
public enum AcceleratorStatus: Sendable, Hashable, Codable {
    case usable
    /// Not on this host at all (no /dev/kvm, not macOS, ...).
    case absent(String)
    /// Present, but it can't be used: no permission, or guests make no progress.
    case unusable(reason: String, fix: String)

    public var isUsable: Bool { if case .usable = self { true } else { false } }
}

public struct QEMUBinary: Sendable, Hashable, Codable {
    public var path: String
    /// (major, minor, micro), e.g. 7.2.22; nil when not probed.
    public var version: [Int]?
    /// What this binary can do and needs (its version, machines, devices, microvm
    /// firmware); nil when not probed, and the planner then uses options that are safe
    /// on every QEMU from 7.2 to 10.x.
    public var capabilities: QEMUCapabilities?
    public init(path: String, version: [Int]? = nil, capabilities: QEMUCapabilities? = nil) {
        self.path = path
        self.version = version ?? capabilities?.versionNumbers
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

public struct VirtiofsdBinary: Sendable, Hashable, Codable {
    public var path: String
    public var flavor: VirtiofsdFlavor
    public init(path: String, flavor: VirtiofsdFlavor) {
        self.path = path
        self.flavor = flavor
    }
}
