import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of `launch doctor`.
package struct HostCheck: Sendable, Hashable, Codable {
    package enum Status: String, Sendable, Hashable, Codable { case ok, warn, fail }
    package var name: String
    package var status: Status
    package var detail: String
    /// For warn and fail: exactly what to do.
    package var fix: String?

    package init(_ name: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

/// Turns host facts into checks a person can act on.
package enum HostDoctor {
    package static func checks(_ host: HostFacts, bootFolder: String = "/boot") -> [HostCheck] {
        var checks: [HostCheck] = []
        for arch in Profile.Arch.allCases {
            let name = "qemu \(arch.rawValue)"
            if let binary = host.qemu[arch] {
                let version = binary.capabilities?.version
                    ?? (try? HostProbe.capture([binary.path, "--version"]))?.split(separator: "\n").first.map(String.init) ?? "version unknown"
                checks.append(HostCheck(name, .ok, "\(binary.path): \(version)"))
                if let capabilities = binary.capabilities, let check = microvmCheck(capabilities, arch: arch) { checks.append(check) }
            } else {
                let package = arch == .x86_64 ? "qemu-system-x86" : "qemu-system-arm"
                checks.append(HostCheck(name, arch == host.arch ? .fail : .warn, "\(arch.qemuSystemBinary) not found",
                                        fix: LaunchError.installFix("Debian and Ubuntu: \(package)")))
            }
        }
        checks.append(host.qemuImg.map { HostCheck("qemu-img", .ok, $0) }
            ?? HostCheck("qemu-img", .warn, "not found (needed for ephemeral disks)", fix: LaunchError.installFix("Debian and Ubuntu: qemu-utils; Fedora: qemu-img")))
        switch host.os {
        case .linux:
            checks.append(acceleratorCheck("kvm", host.kvm))
        case .macOS:
            checks.append(acceleratorCheck("hvf", host.hvf))
        }
        // What the host's own QEMU implies for virtiofsd: QEMU >= 8 ships no C virtiofsd.
        let hostQEMU = host.qemu[host.arch]?.capabilities
        if let virtiofsd = host.virtiofsd {
            var detail = "\(virtiofsd.path) (\(virtiofsd.flavor.rawValue) flavor)"
            if virtiofsd.flavor == .legacyC, let hostQEMU, hostQEMU.shipsLegacyVirtiofsd == false {
                detail += "; left from an older QEMU: QEMU \(hostQEMU.shortVersion) ships none, and it works with it"
            }
            checks.append(HostCheck("virtiofsd", .ok, detail))
        } else {
            let why = hostQEMU?.shipsLegacyVirtiofsd == false
                ? "not found, and QEMU \(hostQEMU!.shortVersion) ships none (QEMU >= 8 dropped the C virtiofsd)"
                : "not found"
            checks.append(HostCheck("virtiofsd", .warn, why + ": virtiofs shares won't work; \"transport\": \"auto\" shares (Profiles/hello.json) use 9p",
                                    fix: Planner.installVirtiofsdFix))
        }
        for arch in Profile.Arch.allCases {
            if let firmware = host.firmware[arch] {
                checks.append(HostCheck("uefi \(arch.rawValue)", .ok, "\(firmware.code) (from \(firmware.source))"))
            } else {
                checks.append(HostCheck("uefi \(arch.rawValue)", .warn, "no UEFI firmware: \"firmware\": \"uefi\" won't work for \(arch.rawValue) guests",
                                        fix: LaunchError.installFix(arch == .x86_64 ? "Debian and Ubuntu: ovmf; Fedora: edk2-ovmf"
                                                                                    : "Debian and Ubuntu: qemu-efi-aarch64; Fedora: edk2-aarch64")))
            }
        }
        let limit = ProfileValidator.socketPathLimit(host.os)
        let longest = host.runtimeBase.utf8.count + 1 + ProfileValidator.runtimeDirNameLength + 1 + ProfileValidator.longestSocketName
        checks.append(longest <= limit
            ? HostCheck("runtime dir", .ok, "\(host.runtimeBase): socket paths up to \(longest) of \(limit) bytes")
            : HostCheck("runtime dir", .fail, "\(host.runtimeBase): socket paths would be \(longest) bytes, over \(limit)",
                        fix: "set XDG_RUNTIME_DIR to a shorter folder or use \"runtimeDir\" in profiles"))
        if let limit = host.memlockLimitBytes {
            checks.append(HostCheck("memlock", .ok, "locked-memory limit \(limit >> 10) KiB: enough for \"lockMemory\" guests up to \(limit >> 20) MiB",
                                    fix: limit < 1 << 30 ? "for bigger locked guests: `* soft memlock unlimited` and `* hard memlock unlimited` in /etc/security/limits.conf, or DefaultLimitMEMLOCK=infinity in /etc/systemd/system.conf" : nil))
        } else {
            checks.append(HostCheck("memlock", .ok, "locked-memory limit unlimited"))
        }
        return checks
    }

    /// What a QEMU's microvm firmware means for plans; nil for QEMUs without microvm.
    static func microvmCheck(_ capabilities: QEMUCapabilities, arch: Profile.Arch) -> HostCheck? {
        let name = "qemu \(arch.rawValue) microvm"
        switch (Planner.microvmFirmware(capabilities), capabilities.microvmFirmware) {
        case (_, nil):
            return nil
        case (.defaultQboot, _):
            return HostCheck(name, .ok, "bios-microvm.bin is qboot: microvm guests boot without option ROMs")
        case (.explicitQboot, let firmware):
            return HostCheck(name, .ok, "bios-microvm.bin is \(firmware == .seabios ? "SeaBIOS" : "not qboot") (it needs option ROMs and resets with shared memory): microvm plans boot qboot.rom instead")
        case (.optionROMs, .seabios?):
            return HostCheck(name, .warn, "bios-microvm.bin is SeaBIOS and there is no qboot.rom: microvm guests boot through option ROMs and can't use virtiofs (SeaBIOS resets them with shared memory)",
                             fix: "use 9p shares (or \"auto\") or machine q35/pc for virtiofs; or install a QEMU that ships qboot.rom")
        case (.optionROMs, _):
            return HostCheck(name, .warn, "bios-microvm.bin is neither qboot nor SeaBIOS and there is no qboot.rom: microvm guests boot through option ROMs, untested here",
                             fix: "if microvm guests don't start, use machine q35/pc")
        }
    }

    static func acceleratorCheck(_ name: String, _ status: AcceleratorStatus) -> HostCheck {
        switch status {
        case .usable: return HostCheck(name, .ok, "usable")
        case .absent(let why): return HostCheck(name, .warn, "absent: \(why); guests run emulated (TCG), much slower")
        case .unusable(let why, let fix): return HostCheck(name, .warn, "present but unusable: \(why). Guests run emulated (TCG), much slower", fix: fix)
        }
    }
}
