import Foundation

/// What makes one VM the same machine from run to run: its SMBIOS/firmware UUID
/// (QEMU `-uuid`) and its NIC's MAC address. Made once, at random, and kept in
/// the VM's state folder (`identity.json`).
public struct MachineIdentity: Sendable, Hashable, Codable {
    /// Lower-case, as `-uuid` shows it back in the guest (`/sys/class/dmi/id/product_uuid`).
    public var uuid: String
    /// `52:54:00:xx:xx:xx`: QEMU's usual prefix (a locally administered, unicast
    /// address), the last three bytes random. QEMU's own default is 52:54:00:12:34:56
    /// for every VM, so two VMs on one network would collide.
    public var mac: String

    /// An identity as given: a lower-case UUID and a unicast MAC address, as QEMU takes them.
    public init(uuid: String, mac: String) {
        self.uuid = uuid
        self.mac = mac
    }

    /// A new identity from the system's random source.
    public static func random() -> MachineIdentity {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A new identity from `generator`, so tests get the same one from the same seed.
    public static func random(using generator: inout some RandomNumberGenerator) -> MachineIdentity {
        var uuidBytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        uuidBytes[6] = (uuidBytes[6] & 0x0f) | 0x40   // version 4
        uuidBytes[8] = (uuidBytes[8] & 0x3f) | 0x80   // RFC 4122 variant
        let hex = uuidBytes.map { String(format: "%02x", $0) }.joined()
        let uuid = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4),
                    hex.dropFirst(16).prefix(4), hex.dropFirst(20)].joined(separator: "-")
        let tail = (0..<3).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }
        return MachineIdentity(uuid: uuid, mac: (["52", "54", "00"] + tail).joined(separator: ":"))
    }

    /// What is wrong with a stored identity, or nil when QEMU will take it as is.
    package var problem: String? {
        let hexDigits = Set("0123456789abcdef")
        let groups = uuid.split(separator: "-", omittingEmptySubsequences: false)
        if groups.map(\.count) != [8, 4, 4, 4, 12] || !groups.joined().allSatisfy(hexDigits.contains) {
            return "uuid \"\(uuid)\" is not a lower-case UUID like 0f8fad5b-d9cb-469f-a165-70867728950e"
        }
        let octets = mac.split(separator: ":", omittingEmptySubsequences: false)
        guard octets.count == 6, octets.allSatisfy({ $0.count == 2 && $0.allSatisfy(hexDigits.contains) }),
              let first = UInt8(octets[0], radix: 16) else {
            return "mac \"\(mac)\" is not a lower-case MAC address like 52:54:00:ab:cd:ef"
        }
        // A multicast address (low bit of the first octet) can't be a NIC's own.
        if first & 1 != 0 { return "mac \(mac) is a multicast address" }
        return nil
    }
}
