import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one QEMU binary can do: its version, machines, devices and accelerators, and
/// the firmware its microvm machine boots, read from its own `help` output once and
/// cached by the binary's path, size and modification time.
///
/// The planner takes it as a value (`HostFacts.qemu[arch].capabilities`), so plans for
/// QEMU 7.2 and 10.0 are golden-tested from recorded `help` outputs.
public struct QEMUCapabilities: Sendable, Hashable, Codable {
    /// `--version`'s first line, e.g. "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2...)".
    public var version: String
    /// Machine types from `-machine help` (`microvm`, `q35`, `pc`, `virt`, ...); a plan for one not here is refused.
    public var machines: Set<String>
    /// Device names from `-device help`; a plan's `-device` this binary lacks is a problem named with its profile key.
    public var devices: Set<String>
    /// Accelerators from `-accel help` (`kvm`, `tcg`, ...).
    public var accelerators: Set<String>
    /// What `bios-microvm.bin`, microvm's default firmware, is for this binary; nil for
    /// binaries without microvm.
    public var microvmFirmware: MicrovmFirmware?
    /// Whether `qboot.rom` is in QEMU's data directories, so `-bios qboot.rom` works
    /// (upstream QEMU and Debian's packages 7.2 to 10.0 ship it).
    public var hasQboot: Bool

    /// The firmware microvm runs before the kernel, which decides whether its option
    /// ROMs may be turned off.
    public enum MicrovmFirmware: String, Sendable, Hashable, Codable {
        /// qboot loads the kernel (bzImage or PVH) from fw_cfg by itself: the linuxboot
        /// and pvh option ROMs are not needed (Debian 12's QEMU 7.2 links
        /// bios-microvm.bin to qboot.rom).
        case qboot
        /// SeaBIOS (upstream's bios-microvm.bin, and Debian's QEMU 10.0) boots the kernel
        /// only through QEMU's linuxboot_dma.bin / pvh.bin option ROMs.
        case seabios
        /// Not found, or neither of the two.
        case unknown
    }

    /// Capabilities as given, for planning against a QEMU that is not on this machine (tests
    /// build them from recorded `help` outputs).
    public init(version: String, machines: Set<String>, devices: Set<String>, accelerators: Set<String>,
                microvmFirmware: MicrovmFirmware? = nil, hasQboot: Bool = false) {
        self.version = version
        self.machines = machines
        self.devices = devices
        self.accelerators = accelerators
        self.microvmFirmware = microvmFirmware
        self.hasQboot = hasQboot
    }

    /// (major, minor, micro) from `version`, e.g. [10, 0, 2]; nil when it says no version.
    public var versionNumbers: [Int]? { Self.parseVersion(version) }

    /// "10.0.2", or the whole `--version` line when it has no number.
    public var shortVersion: String { versionNumbers.map { $0.map(String.init).joined(separator: ".") } ?? version }

    /// QEMU 8.0 dropped the C virtiofsd from its tree: packages of QEMU >= 8 ship none,
    /// and virtiofs needs the Rust virtiofsd (package `virtiofsd` on Debian 13, Ubuntu 24.04, Fedora).
    package var shipsLegacyVirtiofsd: Bool? { versionNumbers.map { $0[0] < 8 } }

    static func parseVersion(_ text: String) -> [Int]? {
        guard let range = text.range(of: "version ") else { return nil }
        let numbers = text[range.upperBound...].prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        return numbers.isEmpty ? nil : numbers + Array(repeating: 0, count: max(0, 3 - numbers.count))
    }

    /// Capabilities as a binary's recorded help outputs describe them (what the probe reads).
    package static func parse(version: String, machineHelp: String, deviceHelp: String, accelHelp: String,
                             microvmFirmware: MicrovmFirmware? = nil, hasQboot: Bool = false) -> QEMUCapabilities {
        let hasMicrovm = parseMachines(machineHelp).contains("microvm")
        return QEMUCapabilities(version: version.split(separator: "\n").first.map(String.init) ?? "?",
                                machines: parseMachines(machineHelp), devices: parseDevices(deviceHelp),
                                accelerators: parseAccelerators(accelHelp),
                                microvmFirmware: hasMicrovm ? (microvmFirmware ?? .unknown) : nil,
                                hasQboot: hasMicrovm && hasQboot)
    }

    /// Reads (or recalls) the capabilities of `binary`. Runs the probes on a
    /// thread of its own: they block for tens of milliseconds each.
    package static func of(_ binary: String) async throws(LaunchError) -> QEMUCapabilities {
        let key = cacheKey(binary)
        if let cached = cache.read()[key] { return cached }
        let result: Result<QEMUCapabilities, LaunchError> = await onOwnThread {
            do {
                let machineHelp = try HostProbe.capture([binary, "-machine", "help"])
                var firmware: MicrovmFirmware?
                var qboot = false
                if parseMachines(machineHelp).contains("microvm") {
                    let directories = try HostProbe.capture([binary, "-L", "help"])
                    firmware = microvmFirmware(dataDirectories: directories)
                    qboot = dataFile("qboot.rom", dataDirectories: directories) != nil
                }
                return .success(parse(
                    version: try HostProbe.capture([binary, "--version"]), machineHelp: machineHelp,
                    deviceHelp: try HostProbe.capture([binary, "-device", "help"]),
                    accelHelp: try HostProbe.capture([binary, "-accel", "help"]), microvmFirmware: firmware, hasQboot: qboot))
            } catch {
                return .failure(LaunchError(.missingProgram, "cannot run \(binary) to read its capabilities", cause: error))
            }
        }
        let capabilities = try result.get()
        cache.store(capabilities, forKey: key)
        return capabilities
    }

    /// Finds `bios-microvm.bin` along QEMU's data directories (`-L help`, in search
    /// order) and tells qboot from SeaBIOS: by the name it links to, else by its bytes.
    static func microvmFirmware(dataDirectories: String) -> MicrovmFirmware {
        guard let path = dataFile("bios-microvm.bin", dataDirectories: dataDirectories) else { return .unknown }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().lastPathComponent
        if resolved.contains("qboot") { return .qboot }
        guard let bytes = FileManager.default.contents(atPath: path) else { return .unknown }
        if bytes.range(of: Data("SeaBIOS".utf8)) != nil { return .seabios }
        if bytes.range(of: Data("qboot".utf8)) != nil { return .qboot }
        return .unknown
    }

    /// The first `name` along QEMU's data directories, as QEMU itself looks up `-bios NAME`.
    static func dataFile(_ name: String, dataDirectories: String) -> String? {
        for directory in dataDirectories.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) where directory.hasPrefix("/") {
            let path = directory + "/" + name
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    static func parseMachines(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) })
    }

    static func parseDevices(_ text: String) -> Set<String> {
        // Lines look like: name "virtio-blk-pci", bus PCI, alias "virtio-blk", desc "..."
        var names: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix("name \"") {
            let rest = line.dropFirst(6)
            if let end = rest.firstIndex(of: "\"") { names.insert(String(rest[..<end])) }
            if let aliasRange = line.range(of: "alias \"") {
                let alias = line[aliasRange.upperBound...]
                if let end = alias.firstIndex(of: "\"") { names.insert(String(alias[..<end])) }
            }
        }
        return names
    }

    static func parseAccelerators(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// Problems with running `plan` on this binary: a machine, device or accelerator it lacks.
    package func problems(with plan: Plan, binary: String) -> [ProfileProblem] {
        var problems: [ProfileProblem] = []
        if !machines.contains(plan.machine.rawValue) {
            if let family = targetFamily, family != Self.family(of: plan.arch) {
                // The usual cause: qemu.binary names the emulator of another arch.
                problems.append(ProfileProblem(
                    path: "qemu.binary", message: "\(binary) emulates \(family) guests (it has the machines \(Self.familyMachines(family).filter(machines.contains).joined(separator: ", "))), and this is an \(plan.arch.rawValue) guest",
                    fix: "use qemu-system-\(plan.arch.rawValue) (Debian package \(plan.arch == .aarch64 ? "qemu-system-arm" : "qemu-system-x86")), or set \"arch\" to the guest's arch"))
            } else {
                problems.append(ProfileProblem(path: "machine", message: "\(binary) has no \(plan.machine.rawValue) machine",
                                               fix: "use a QEMU build with it (\(version)); `\(binary) -machine help` lists what it has"))
            }
        }
        if !accelerators.contains(plan.accelerator.rawValue) {
            problems.append(ProfileProblem(path: "accel", message: "\(binary) has no \(plan.accelerator.rawValue) accelerator",
                                           fix: "`\(binary) -accel help` lists what it has; use \"accel\": \"tcg\" or a QEMU built with \(plan.accelerator.rawValue)"))
        }
        var argv = plan.qemu[...]
        while let index = argv.firstIndex(of: "-device"), index + 1 < argv.endIndex {
            let device = String(argv[index + 1].split(separator: ",").first ?? "")
            if !devices.contains(device) {
                problems.append(ProfileProblem(path: Self.profilePath(forDevice: device), message: "\(binary) has no device \(device)",
                                               fix: Self.fix(forDevice: device)))
            }
            argv = argv[(index + 2)...]
        }
        return problems
    }

    /// Which guests the binary emulates, judged by its machines (a QEMU binary serves one
    /// target): "x86" or "arm"; nil when its machines say neither.
    package var targetFamily: String? {
        for family in ["x86", "arm"] where Self.familyMachines(family).contains(where: machines.contains) {
            return family
        }
        return nil
    }

    static func familyMachines(_ family: String) -> [String] {
        family == "x86" ? ["pc", "q35", "microvm", "isapc"] : ["virt", "sbsa-ref", "raspi3b"]
    }

    static func family(of arch: Profile.Arch) -> String {
        switch arch {
        case .x86_64: return "x86"
        case .aarch64: return "arm"
        }
    }

    static func profilePath(forDevice device: String) -> String {
        if device.contains("9p") || device.contains("vhost-user-fs") { return "shares" }
        if device.contains("blk") { return "disks" }
        if device.contains("net") { return "network" }
        return "qemu"
    }

    static func fix(forDevice device: String) -> String {
        if device.contains("9p") {
            return "this QEMU was built without virtfs (9p): use \"transport\": \"virtiofs\", or a QEMU with 9p (Debian's qemu-system-x86/-arm have it; some distro and Homebrew builds don't)"
        }
        if device.contains("vhost-user-fs") {
            return "this QEMU lacks vhost-user-fs (virtiofs): use \"transport\": \"9p\" or a QEMU built with vhost-user"
        }
        return "use a QEMU build that has \(device) (`-device help` lists them)"
    }

    // v2: with the version numbers' source and microvmFirmware; entries of the first
    // file lack the firmware, which would read as unknown.
    static var cache: JSONFileCache<QEMUCapabilities> { JSONFileCache(named: "qemu-capabilities-v2.json") }

    static func cacheKey(_ binary: String) -> String {
        var info = stat()
        stat(binary, &info)
        return "\(binary)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
}

/// Runs blocking work on a thread of its own, off Swift's cooperative pool.
package func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.start()
    }
}
