import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one QEMU binary can do: its machines, devices and accelerators, read
/// from its own `help` output once and cached by the binary's path, size and
/// modification time.
public struct QEMUCapabilities: Sendable, Hashable, Codable {
    public var version: String
    public var machines: Set<String>
    public var devices: Set<String>
    public var accelerators: Set<String>

    public init(version: String, machines: Set<String>, devices: Set<String>, accelerators: Set<String>) {
        self.version = version
        self.machines = machines
        self.devices = devices
        self.accelerators = accelerators
    }

    /// Reads (or recalls) the capabilities of `binary`. Runs the probes on a
    /// thread of its own: they block for tens of milliseconds each.
    public static func of(_ binary: String) async throws(LaunchError) -> QEMUCapabilities {
        let key = cacheKey(binary)
        if let cached = cache.read()[key] { return cached }
        let result: Result<QEMUCapabilities, LaunchError> = await onOwnThread {
            do {
                let version = try HostProbe.capture([binary, "--version"]).split(separator: "\n").first.map(String.init) ?? "?"
                let machines = parseMachines(try HostProbe.capture([binary, "-machine", "help"]))
                let devices = parseDevices(try HostProbe.capture([binary, "-device", "help"]))
                let accelerators = parseAccelerators(try HostProbe.capture([binary, "-accel", "help"]))
                return .success(QEMUCapabilities(version: version, machines: machines, devices: devices, accelerators: accelerators))
            } catch {
                return .failure(LaunchError(.missingProgram, "cannot run \(binary) to read its capabilities", cause: error))
            }
        }
        let capabilities = try result.get()
        cache.store(capabilities, forKey: key)
        return capabilities
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
    public func problems(with plan: Plan, binary: String) -> [ProfileProblem] {
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
    public var targetFamily: String? {
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

    static var cache: JSONFileCache<QEMUCapabilities> { JSONFileCache(named: "qemu-capabilities.json") }

    static func cacheKey(_ binary: String) -> String {
        var info = stat()
        stat(binary, &info)
        return "\(binary)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
}

/// Runs blocking work on a thread of its own, off Swift's cooperative pool.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.start()
    }
}
