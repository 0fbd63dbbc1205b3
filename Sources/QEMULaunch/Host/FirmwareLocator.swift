import Foundation

/// UEFI firmware for one guest arch: the read-only code and the template its
/// per-VM variable store is copied from.
public struct UEFIFirmware: Sendable, Hashable, Codable {
    /// The read-only firmware code (`OVMF_CODE.fd`, `AAVMF_CODE.fd`), attached as the first pflash drive.
    public var code: String
    /// The empty variable store each VM's own `efivars.fd` is copied from on its first run.
    public var varsTemplate: String
    /// Where it was found: a descriptor file or a known path.
    public var source: String

    /// Firmware at the given paths; `source` says where they were found, for messages.
    public init(code: String, varsTemplate: String, source: String) {
        self.code = code
        self.varsTemplate = varsTemplate
        self.source = source
    }
}

/// Finds UEFI firmware the way libvirt does: QEMU's firmware descriptors first
/// (`/usr/share/qemu/firmware/*.json`, lowest file name wins), then known distro
/// and Homebrew paths.
package enum FirmwareLocator {
    package static let descriptorFolders = ["/etc/qemu/firmware", "/usr/share/qemu/firmware", "/opt/homebrew/share/qemu/firmware", "/usr/local/share/qemu/firmware"]

    package static func find(arch: Profile.Arch, descriptorFolders: [String] = descriptorFolders) -> UEFIFirmware? {
        let fm = FileManager.default
        for folder in descriptorFolders {
            let names = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            for name in names {
                let path = "\(folder)/\(name)"
                guard let data = fm.contents(atPath: path), let found = parseDescriptor(data, arch: arch, source: path),
                      fm.fileExists(atPath: found.code), fm.fileExists(atPath: found.varsTemplate) else { continue }
                return found
            }
        }
        for (code, vars) in knownPaths(arch) where fm.fileExists(atPath: code) && fm.fileExists(atPath: vars) {
            return UEFIFirmware(code: code, varsTemplate: vars, source: "known path")
        }
        return nil
    }

    /// A descriptor usable for plain direct boots: UEFI, flash with a vars template,
    /// the right arch, and no Secure Boot/SMM (which need more machine options).
    static func parseDescriptor(_ data: Data, arch: Profile.Arch, source: String) -> UEFIFirmware? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              (object["interface-types"] as? [String])?.contains("uefi") == true,
              let mapping = object["mapping"] as? [String: Any], mapping["device"] as? String == "flash",
              let code = (mapping["executable"] as? [String: Any])?["filename"] as? String,
              let vars = (mapping["nvram-template"] as? [String: Any])?["filename"] as? String,
              let targets = object["targets"] as? [[String: Any]],
              targets.contains(where: { $0["architecture"] as? String == arch.rawValue }) else { return nil }
        let features = object["features"] as? [String] ?? []
        if features.contains("secure-boot") || features.contains("requires-smm") || features.contains("enrolled-keys") { return nil }
        return UEFIFirmware(code: code, varsTemplate: vars, source: source)
    }

    static func knownPaths(_ arch: Profile.Arch) -> [(String, String)] {
        switch arch {
        case .x86_64:
            return [("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
                    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
                    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
                    ("/opt/homebrew/share/qemu/edk2-x86_64-code.fd", "/opt/homebrew/share/qemu/edk2-i386-vars.fd"),
                    ("/usr/local/share/qemu/edk2-x86_64-code.fd", "/usr/local/share/qemu/edk2-i386-vars.fd")]
        case .aarch64:
            return [("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
                    ("/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"),
                    ("/opt/homebrew/share/qemu/edk2-aarch64-code.fd", "/opt/homebrew/share/qemu/edk2-arm-vars.fd"),
                    ("/usr/local/share/qemu/edk2-aarch64-code.fd", "/usr/local/share/qemu/edk2-arm-vars.fd")]
        }
    }
}
