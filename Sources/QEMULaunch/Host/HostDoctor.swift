import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of `launch doctor`.
public struct HostCheck: Sendable, Hashable, Codable {
    public enum Status: String, Sendable, Hashable, Codable { case ok, warn, fail }
    public var name: String
    public var status: Status
    public var detail: String
    /// For warn and fail: exactly what to do.
    public var fix: String?

    public init(_ name: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

/// Turns host facts into checks a person can act on.
public enum HostDoctor {
    public static func checks(_ host: HostFacts, bootFolder: String = "/boot") -> [HostCheck] {
        var checks: [HostCheck] = []
        for arch in Profile.Arch.allCases {
            let name = "qemu \(arch.rawValue)"
            if let binary = host.qemu[arch] {
                let version = (try? HostProbe.capture([binary.path, "--version"]))?.split(separator: "\n").first.map(String.init) ?? "version unknown"
                checks.append(HostCheck(name, .ok, "\(binary.path): \(version)"))
            } else {
                let package = arch == .x86_64 ? "qemu-system-x86" : "qemu-system-arm"
                checks.append(HostCheck(name, arch == host.arch ? .fail : .warn, "\(arch.qemuSystemBinary) not found",
                                        fix: "sudo apt-get install \(package)"))
            }
        }
        checks.append(host.qemuImg.map { HostCheck("qemu-img", .ok, $0) }
            ?? HostCheck("qemu-img", .warn, "not found (needed for ephemeral disks)", fix: "sudo apt-get install qemu-utils"))
        switch host.os {
        case .linux:
            checks.append(acceleratorCheck("kvm", host.kvm))
        case .macOS:
            checks.append(acceleratorCheck("hvf", host.hvf))
        }
        if let virtiofsd = host.virtiofsd {
            checks.append(HostCheck("virtiofsd", .ok, "\(virtiofsd.path) (\(virtiofsd.flavor.rawValue) flavor)"))
        } else {
            checks.append(HostCheck("virtiofsd", .warn, "not found: virtiofs shares won't work (9p shares still do)",
                                    fix: "Debian 12: sudo apt-get install qemu-system-common (ships /usr/lib/qemu/virtiofsd); newer: sudo apt-get install virtiofsd"))
        }
        if let busybox = HostProbe.findProgram("/bin/busybox") {
            checks.append(HostCheck("busybox", .ok, busybox))
        } else {
            checks.append(HostCheck("busybox", .fail, "/bin/busybox not found: the guest kit can't build an initramfs",
                                    fix: "sudo apt-get install busybox-static"))
        }
        if let kernel = KernelLocator.newest(in: bootFolder) {
            let modules = FileManager.default.fileExists(atPath: "/lib/modules/\(kernel.release)/modules.dep")
            checks.append(HostCheck("kernel", modules ? .ok : .warn, "\(kernel.path)" + (modules ? " with modules" : ", but no /lib/modules/\(kernel.release)"),
                                    fix: modules ? nil : "reinstall the kernel package so its modules are present"))
        } else {
            checks.append(HostCheck("kernel", .warn, "no \(bootFolder)/vmlinuz-* (\"kernel\": \"auto\" needs one)",
                                    fix: "sudo apt-get install linux-image-amd64, or give kernel paths in profiles"))
        }
        let limit = ProfileValidator.socketPathLimit(host.os)
        let longest = host.runtimeBase.utf8.count + 1 + ProfileValidator.runtimeDirNameLength + 1 + ProfileValidator.longestSocketName
        checks.append(longest <= limit
            ? HostCheck("runtime dir", .ok, "\(host.runtimeBase): socket paths up to \(longest) of \(limit) bytes")
            : HostCheck("runtime dir", .fail, "\(host.runtimeBase): socket paths would be \(longest) bytes, over \(limit)",
                        fix: "set XDG_RUNTIME_DIR to a shorter folder or use \"runtimeDir\" in profiles"))
        var limitValue = rlimit()
        if getrlimit(__rlimit_resource_t(8) /* RLIMIT_MEMLOCK */, &limitValue) == 0 {
            let text = limitValue.rlim_cur == rlim_t.max ? "unlimited" : "\(limitValue.rlim_cur >> 10) KiB"
            checks.append(HostCheck("memlock", .ok, "locked-memory limit \(text) (matters only with mem-lock or VFIO)"))
        }
        return checks
    }

    static func acceleratorCheck(_ name: String, _ status: AcceleratorStatus) -> HostCheck {
        switch status {
        case .usable: return HostCheck(name, .ok, "usable")
        case .absent(let why): return HostCheck(name, .warn, "absent: \(why); guests run emulated (TCG), much slower")
        case .unusable(let why, let fix): return HostCheck(name, .warn, "unusable: \(why); guests run emulated (TCG)", fix: fix)
        }
    }
}
