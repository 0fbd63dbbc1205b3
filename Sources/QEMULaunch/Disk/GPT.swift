/// A GUID Partition Table (UEFI spec, chapter 5), read from a disk's first
/// sectors: the primary header at LBA 1 and its partition entry array. Both
/// CRC32s must match; a disk without a valid primary GPT is `Unreadable`.
enum GPT {
    /// One used entry of the partition array.
    struct Entry: Hashable {
        /// 1-based, as `/dev/vda1` numbers it.
        var number: Int
        /// Canonical lower-case form, like `4f68bce3-e8cd-4db1-96e7-fbcaf984b709`.
        var typeGUID: String
        var name: String
        /// Byte offset of the partition's first sector (first LBA × the sector size).
        var startByte: UInt64 = 0
    }

    /// The header lives at LBA 1, whose byte offset depends on the logical sector size.
    static let sectorSizes: [UInt64] = [512, 4096]
    /// The partition array is 16 KiB in practice (128 entries of 128 bytes); refuse absurd sizes.
    static let maximumArrayBytes: UInt64 = 1 << 20

    static func entries(of disk: some DiskBytes) throws(Unreadable) -> [Entry] {
        var reasons: [String] = []
        for sectorSize in sectorSizes {
            let header: [UInt8]
            do {
                header = try disk.read(at: sectorSize, count: Int(sectorSize))
            } catch where error.isPastEnd {
                reasons.append("no \(sectorSize)-byte LBA 1 (\(error.reason))")
                continue
            }
            guard header.starts(with: Array("EFI PART".utf8)) else {
                reasons.append("no \"EFI PART\" signature at byte \(sectorSize)")
                continue
            }
            return try entries(header: header, sectorSize: sectorSize, disk: disk)
        }
        throw Unreadable("not a GPT disk: " + reasons.joined(separator: "; "))
    }

    private static func entries(header: [UInt8], sectorSize: UInt64, disk: some DiskBytes) throws(Unreadable) -> [Entry] {
        let headerSize = Int(header.littleEndian(UInt32.self, at: 12))
        guard headerSize >= 92, headerSize <= header.count else {
            throw Unreadable("GPT header size \(headerSize) is outside 92...\(header.count)")
        }
        var zeroed = Array(header[0..<headerSize])
        zeroed.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        guard crc32(zeroed) == header.littleEndian(UInt32.self, at: 16) else {
            throw Unreadable("the GPT header's CRC32 does not match (a damaged table, or bytes that only look like one)")
        }
        guard header.littleEndian(UInt64.self, at: 24) == 1 else {
            throw Unreadable("the GPT header at LBA 1 says it is at LBA \(header.littleEndian(UInt64.self, at: 24))")
        }
        let arrayLBA = header.littleEndian(UInt64.self, at: 72)
        let count = UInt64(header.littleEndian(UInt32.self, at: 80))
        let entrySize = UInt64(header.littleEndian(UInt32.self, at: 84))
        // The spec: 128 × 2^n bytes per entry.
        guard entrySize >= 128, entrySize.nonzeroBitCount == 1 else {
            throw Unreadable("GPT entry size \(entrySize) is not 128 × 2^n")
        }
        guard count * entrySize <= maximumArrayBytes else {
            throw Unreadable("the GPT partition array (\(count) × \(entrySize) bytes) is larger than \(maximumArrayBytes) bytes")
        }
        guard arrayLBA >= 2, arrayLBA <= UInt64.max / sectorSize else {
            throw Unreadable("the GPT partition array's LBA \(arrayLBA) is impossible")
        }
        let array = try disk.read(at: arrayLBA * sectorSize, count: Int(count * entrySize))
        guard crc32(array) == header.littleEndian(UInt32.self, at: 88) else {
            throw Unreadable("the GPT partition array's CRC32 does not match")
        }
        var entries: [Entry] = []
        for index in 0..<Int(count) {
            let base = index * Int(entrySize)
            let type = Array(array[base..<base + 16])
            if type.allSatisfy({ $0 == 0 }) { continue }   // an unused slot
            var units: [UInt16] = []
            for offset in stride(from: base + 56, to: base + 128, by: 2) {
                let unit = array.littleEndian(UInt16.self, at: offset)
                if unit == 0 { break }
                units.append(unit)
            }
            let firstLBA = array.littleEndian(UInt64.self, at: base + 32)
            entries.append(Entry(number: index + 1, typeGUID: guidString(type), name: String(decoding: units, as: UTF16.self),
                                 startByte: firstLBA <= UInt64.max / sectorSize ? firstLBA * sectorSize : 0))
        }
        return entries
    }

    /// On disk a GUID's first three fields are little-endian, the last two byte strings.
    static func guidString(_ bytes: [UInt8]) -> String {
        func hex(_ slice: some Sequence<UInt8>) -> String { slice.map { hexByte($0) }.joined() }
        return [hex(bytes[0..<4].reversed()), hex(bytes[4..<6].reversed()), hex(bytes[6..<8].reversed()),
                hex(bytes[8..<10]), hex(bytes[10..<16])].joined(separator: "-")
    }

    /// The inverse of `guidString`.
    static func guidBytes(_ string: String) -> [UInt8]? {
        let groups = string.split(separator: "-").map(String.init)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return nil }
        func bytes(_ group: String) -> [UInt8]? {
            var out: [UInt8] = []
            var index = group.startIndex
            while index < group.endIndex {
                let next = group.index(index, offsetBy: 2)
                guard let byte = UInt8(group[index..<next], radix: 16) else { return nil }
                out.append(byte)
                index = next
            }
            return out
        }
        guard let a = bytes(groups[0]), let b = bytes(groups[1]), let c = bytes(groups[2]),
              let d = bytes(groups[3]), let e = bytes(groups[4]) else { return nil }
        return a.reversed() + b.reversed() + c.reversed() + d + e
    }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
    }

    /// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as GPT uses.
    static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes {
            crc = crcTable[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8)
        }
        return crc ^ 0xffff_ffff
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xedb8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }
}
