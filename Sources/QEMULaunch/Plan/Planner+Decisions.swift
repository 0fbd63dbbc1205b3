/// The decisions a plan is made of (accelerator, machine, transport, share transports,
/// CPU model, microvm firmware, virtiofsd's argv), each a pure function of the facts.
extension Planner {
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
    static let installVirtiofsdFix = "install the package that ships the Rust virtiofsd (Debian 13, Ubuntu 24.04 and Fedora: virtiofsd; on Debian 12, QEMU 7.2's qemu-system-common ships the C one at /usr/lib/qemu/virtiofsd, or build the Rust one with `cargo install virtiofsd`)"

    static func transport(machine: Profile.MachineKind, requested: Profile.TransportChoice) -> Plan.Transport {
        switch (machine, requested) {
        case (.microvm, _): return .mmio
        case (.q35, _), (.pc, _): return .pci
        case (.virt, .mmio): return .mmio
        case (.virt, _): return .pci
        }
    }

    /// The machine when the profile names none: virt for aarch64, microvm for x86_64 (q35 with UEFI).
    public static func defaultMachine(arch: Profile.Arch, firmware: Profile.Firmware) -> Profile.MachineKind {
        switch arch {
        case .aarch64: return .virt
        case .x86_64: return firmware == .uefi ? .q35 : .microvm
        }
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
            case .unusable(let why, let fix):
                // The full finding once, from the run that probed; later runs reuse the cached
                // verdict and say so in one line (still a warning: never a silent fallback).
                if hw == .kvm, let cache = host.kvmVerdictCache {
                    return pick(.tcg, "auto: kvm unusable here (an earlier probe's verdict, cached in \(cache)); emulating instead. \"accel\": \"tcg\" skips KVM; delete that file to probe again", warn: true)
                }
                return pick(.tcg, "auto: \(hw.rawValue) unusable: \(why); emulating instead. \(fix)", warn: true)
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
