import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// Reads ``HostFacts`` off the machine this runs on, for ``Planner`` and
/// ``Machine/Options/host``.
public enum HostProbe {
    /// The facts that need no program run: arch, OS, /dev/kvm, limits, the runtime base.
    /// Enough for `ProfileValidator.hostProblems`.
    package static func basics() -> HostFacts {
        // The launcher builds for Linux only (see Package.swift); HostFacts.OS.macOS is
        // for planning on other hosts' facts. HVF is never assumed: no probe exists yet.
        var facts = HostFacts(arch: .host, os: .linux)
        facts.kvm = kvmStatus()
        facts.hvf = .absent("Hypervisor.framework exists only on macOS, and this launcher runs on Linux only")
        facts.tscKHz = tscKHz()
        facts.memlockLimitBytes = memlockLimit()
        facts.isRoot = geteuid() == 0
        facts.runtimeBase = runtimeBase()
        return facts
    }

    /// Probes this host: arch, `/dev/kvm`, the QEMU emulators, `qemu-img`, virtiofsd and its
    /// flavor, limits, and UEFI firmware when `profile` is nil or boots UEFI. `profile` adds
    /// the binaries it names (its `qemu.binary` and `virtiofsd.binary`).
    ///
    /// KVM is reported usable when `/dev/kvm` opens; whether guests make progress under it
    /// is probed by ``Machine/start(_:options:)``. QEMU's capabilities are not read here
    /// (see ``withQEMUCapabilities(_:for:)``). It blocks while it runs tools
    /// (`virtiofsd --help`, remembered per binary afterwards): from async code, call it off
    /// the cooperative pool.
    public static func current(for profile: Profile? = nil) -> HostFacts {
        var facts = basics()
        for arch in Profile.Arch.allCases {
            if let path = findProgram(arch.qemuSystemBinary) { facts.qemu[arch] = QEMUBinary(path: path) }
        }
        if let binary = profile?.qemu.binary, let path = findProgram(binary) {
            facts.qemu[profile?.arch ?? .host] = QEMUBinary(path: path)
        }
        facts.qemuImg = findProgram("qemu-img")
        let virtiofsdCandidates = [profile?.virtiofsd.binary].compactMap { $0 }
            + ["virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/local/libexec/virtiofsd"]
        for candidate in virtiofsdCandidates {
            if let path = findProgram(candidate), let flavor = virtiofsdFlavor(path) {
                facts.virtiofsd = VirtiofsdBinary(path: path, flavor: flavor)
                break
            }
            // A binary the profile names must be that one, not a fallback.
            if candidate == profile?.virtiofsd.binary { break }
        }
        // Firmware only matters to UEFI profiles (and to doctor, which probes without one):
        // don't read the descriptors on every direct-kernel launch.
        if profile == nil || profile?.firmware == .uefi {
            for arch in Profile.Arch.allCases {
                if let firmware = FirmwareLocator.find(arch: arch) { facts.firmware[arch] = firmware }
            }
        }
        return facts
    }

    /// `host` with the capabilities of the QEMU binary `profile` would run (its own
    /// `qemu.binary`, else the guest arch's), read once per binary and cached.
    /// A binary that can't be probed is left without: the planner then stays on the
    /// options every QEMU accepts, and the capability check names the problem.
    public static func withQEMUCapabilities(_ host: HostFacts, for profile: Profile) async -> HostFacts {
        let arch = profile.arch ?? host.arch
        guard var binary = host.qemu[arch], binary.capabilities == nil else { return host }
        guard let capabilities = try? await QEMUCapabilities.of(binary.path) else { return host }
        binary.capabilities = capabilities
        var result = host
        result.qemu[arch] = binary
        return result
    }

    /// Whether /dev/kvm can be opened. (Whether guests make progress is a separate probe.)
    static func kvmStatus() -> AcceleratorStatus {
        guard FileManager.default.fileExists(atPath: "/dev/kvm") else {
            return .absent("/dev/kvm does not exist (no virtualization extensions, or the kvm module is not loaded)")
        }
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        if fd < 0 {
            let err = errno
            if err == EACCES || err == EPERM {
                return .unusable(reason: "no permission to open /dev/kvm",
                                 fix: "add yourself to the kvm group: sudo usermod -aG kvm $USER, then log in again")
            }
            return .unusable(reason: "opening /dev/kvm failed: \(POSIX.describe(err))", fix: "check the kvm module (dmesg)")
        }
        close(fd)
        return .usable
    }

    /// The flavor a virtiofsd binary is, from its --help text (never from its path);
    /// nil when it isn't one. Remembered per binary (path, size, mtime).
    package static func virtiofsdFlavor(_ path: String) -> VirtiofsdFlavor? {
        let cache = JSONFileCache<VirtiofsdFlavor>(named: "virtiofsd-flavors.json")
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let key = "\(path)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        if let known = cache.read()[key] { return known }
        guard let help = try? capture([path, "--help"]) else { return nil }
        let flavor: VirtiofsdFlavor
        if help.contains("--shared-dir") {
            flavor = .rust
        } else if help.contains("-o source=") {
            flavor = .legacyC
        } else {
            return nil
        }
        cache.store(flavor, forKey: key)
        return flavor
    }

    /// `name` if it is a path to an executable, else its location on PATH.
    package static func findProgram(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// RLIMIT_MEMLOCK (soft); nil when unlimited.
    package static func memlockLimit() -> UInt64? {
        var limit = rlimit()
        // RLIMIT_MEMLOCK is 8 on Linux (Glibc's Swift import hides the enum case).
        guard getrlimit(__rlimit_resource_t(8), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return UInt64(limit.rlim_cur)
    }

    static func tscKHz() -> Int? {
        if let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/tsc_freq_khz", encoding: .utf8),
           let khz = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return khz
        }
        // Without the sysfs file, the nominal clock from cpuinfo: close enough for the
        // guest to skip PIT calibration; the kernel refines it later.
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) {
                return Int(value * 1000)
            }
        }
        return nil
    }

    static func runtimeBase() -> String {
        if let xdg = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !xdg.isEmpty,
           access(xdg, W_OK) == 0, xdg.utf8.count <= 60 {
            return xdg
        }
        return "/tmp"
    }

    /// Runs a short probe command and returns its stdout and stderr. Spawned through the
    /// shim like every child (it dies with the launcher); blocks the calling thread, so
    /// async callers run it on a thread of their own (`onOwnThread`).
    static func capture(_ argv: [String], timeout: Duration = .seconds(30)) throws(LaunchError) -> String {
        let name = argv[0].split(separator: "/").last.map(String.init) ?? argv[0]
        let result = try ChildProcess.run(name: name, argv: argv, timeout: timeout)
        if result.timedOut {
            throw LaunchError(.hostProblem, "\(QEMUSyntax.shellLine(argv)) did not finish within \(formatDuration(timeout)), and was killed",
                              fix: "check that \(argv[0]) runs by hand; a host this loaded may need fewer VMs at once")
        }
        return result.output
    }
}
