/// How the kernel is entered, which changes what microvm needs.
public enum KernelEntry: String, Sendable, Hashable, Codable {
    /// bzImage / Image: the kernel's own setup code runs (and decompresses itself).
    case standard
    /// An uncompressed ELF vmlinux with the PVH entry note, booted directly.
    case pvh
}

/// What the caller decides about a plan that is not in the profile: where the VM's
/// runtime dir is, how the kernel is entered, the caller's own kernel arguments and
/// ports, the VM's state folder and identity, and the launcher's QMP fd.
public struct PlanOptions: Sendable, Hashable {
    /// The VM's private runtime dir (made later by the supervisor).
    public var runtimeDir: String
    /// How the kernel is entered (`pvh`: an ELF vmlinux with the PVH note, booted directly).
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

    /// Options with `runtimeDir` and, for the rest, what a plain direct-kernel boot needs.
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

/// Turns the facts of a launch into a `Plan`. Pure: no filesystem, no processes, no
/// clock; everything it needs is in `LaunchFacts` (gathered by `Machine.prepare`) and
/// `PlanOptions`.
public enum Planner {
    /// The plan for `facts` with `options`, or every problem that stops it, at once:
    /// the profile's own against the host and its files (`ProfileValidator`), those found
    /// while choosing (accelerator, virtiofsd, firmware), and, when `facts.capabilities`
    /// is known, what that QEMU binary lacks (but nothing at a path that has a problem already).
    public static func plan(_ facts: LaunchFacts, options: PlanOptions) throws(ProfileProblems) -> Plan {
        var problems = ProfileValidator.problems(facts.profile, host: facts.host, files: facts.files, runtimeDir: options.runtimeDir)
        // `"transport": "auto"` shares become virtiofs or 9p here, each said in one line.
        let (profile, shareChoices) = resolvingShareTransports(facts.profile, host: facts.host)
        var planning = Planning(profile: profile, host: facts.host, options: options)
        planning.chooseAccelerator(&problems)
        planning.describeTarget(shareChoices: shareChoices)
        problems += planning.problems()

        // The sections are built even when there are problems (with TCG standing in for a
        // refused accelerator), so what the QEMU binary lacks is listed with the rest.
        planning.header()
        planning.machineAndFirmwareOptions()
        planning.processorsAndMemory()
        planning.uefi()
        planning.kernel()
        planning.consolesAndPorts()
        planning.shares()
        planning.disks()
        planning.network()
        planning.entropyAndPanic()
        planning.monitors()
        planning.lifetimeAndExtras()
        let plan = planning.finished()

        // What this QEMU binary can't do is a profile problem now, not a QEMU error later
        // (except at a path that has a problem already: fixing that changes the plan).
        if let capabilities = facts.capabilities {
            problems = problems.followed(by: capabilities.problems(with: plan, binary: plan.qemu[0]))
        }
        if !problems.isEmpty { throw ProfileProblems(source: profile.name, problems: problems) }
        return plan
    }

    /// The QEMU binary a plan for `profile` on `host` runs: the profile's, the one found
    /// for the guest's arch, or `qemu-system-<arch>` looked up on PATH.
    public static func qemuBinary(_ profile: Profile, host: HostFacts) -> String {
        let arch = profile.arch ?? host.arch
        return profile.qemu.binary ?? host.qemu[arch]?.path ?? arch.qemuSystemBinary
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
