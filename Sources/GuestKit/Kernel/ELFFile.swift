import Foundation

/// The parts of an ELF file a kernel loader cares about: machine, loadable segments,
/// and whether it has a PVH entry note. 32/64-bit, little/big-endian.
struct ELFFile {
    static let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]  // \x7fELF

    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    static let shtNote: UInt32 = 7
    /// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical entry point of the PVH boot
    /// protocol, in a note named "Xen".
    static let xenPhys32EntryType: UInt32 = 18

    var machine: KernelImage.ELFMachine
    var is64Bit: Bool
    var bigEndian: Bool
    var hasPVHNote: Bool

    init(_ bytes: ByteView, url: URL) throws(KernelImage.Error) {
        func truncated(_ needed: UInt64) -> KernelImage.Error {
            .truncated(url, format: "ELF", neededBytes: needed, actualBytes: UInt64(bytes.count))
        }
        guard bytes.count >= 52 else { throw truncated(52) }
        guard let elfClass = bytes.u8(4), elfClass == 1 || elfClass == 2 else {
            throw .malformed(url, "ELF class byte \(bytes.u8(4) ?? 0) is neither 1 (32-bit) nor 2 (64-bit)")
        }
        guard let encoding = bytes.u8(5), encoding == 1 || encoding == 2 else {
            throw .malformed(url, "ELF data encoding \(bytes.u8(5) ?? 0) is neither little- nor big-endian")
        }
        is64Bit = elfClass == 2
        bigEndian = encoding == 2
        let be = bigEndian
        if is64Bit, bytes.count < 64 { throw truncated(64) }
        machine = KernelImage.ELFMachine(rawValue: bytes.u16(18, bigEndian: be) ?? 0)

        // Offsets and sizes of the header tables, per class.
        let programHeaderOffset: UInt64
        let sectionHeaderOffset: UInt64
        let programHeaderSize: Int
        let programHeaderCount: Int
        let sectionHeaderSize: Int
        let sectionHeaderCount: Int
        if is64Bit {
            programHeaderOffset = bytes.u64(32, bigEndian: be) ?? 0
            sectionHeaderOffset = bytes.u64(40, bigEndian: be) ?? 0
            programHeaderSize = Int(bytes.u16(54, bigEndian: be) ?? 0)
            programHeaderCount = Int(bytes.u16(56, bigEndian: be) ?? 0)
            sectionHeaderSize = Int(bytes.u16(58, bigEndian: be) ?? 0)
            sectionHeaderCount = Int(bytes.u16(60, bigEndian: be) ?? 0)
        } else {
            programHeaderOffset = UInt64(bytes.u32(28, bigEndian: be) ?? 0)
            sectionHeaderOffset = UInt64(bytes.u32(32, bigEndian: be) ?? 0)
            programHeaderSize = Int(bytes.u16(42, bigEndian: be) ?? 0)
            programHeaderCount = Int(bytes.u16(44, bigEndian: be) ?? 0)
            sectionHeaderSize = Int(bytes.u16(46, bigEndian: be) ?? 0)
            sectionHeaderCount = Int(bytes.u16(48, bigEndian: be) ?? 0)
        }

        var pvh = false
        var sawNoteSegment = false

        if programHeaderCount > 0 {
            guard programHeaderSize >= (is64Bit ? 56 : 32) else {
                throw .malformed(url, "ELF program header size \(programHeaderSize) is too small")
            }
            let tableLength = UInt64(programHeaderSize) * UInt64(programHeaderCount)
            guard bytes.contains(programHeaderOffset, length: tableLength) else {
                throw truncated(programHeaderOffset &+ tableLength)
            }
            for index in 0..<programHeaderCount {
                let base = Int(programHeaderOffset) + index * programHeaderSize
                let type = bytes.u32(base, bigEndian: be) ?? 0
                let offset, fileSize, align: UInt64
                if is64Bit {
                    offset = bytes.u64(base + 8, bigEndian: be) ?? 0
                    fileSize = bytes.u64(base + 32, bigEndian: be) ?? 0
                    align = bytes.u64(base + 48, bigEndian: be) ?? 0
                } else {
                    offset = UInt64(bytes.u32(base + 4, bigEndian: be) ?? 0)
                    fileSize = UInt64(bytes.u32(base + 16, bigEndian: be) ?? 0)
                    align = UInt64(bytes.u32(base + 28, bigEndian: be) ?? 0)
                }
                guard type == Self.ptLoad || type == Self.ptNote else { continue }
                guard bytes.contains(offset, length: fileSize) else {
                    throw truncated(offset &+ fileSize)
                }
                // A loadable segment past the end means a cut-short file, such as a
                // decompression that stopped early.
                if type == Self.ptNote {
                    sawNoteSegment = true
                    pvh = pvh || Self.hasPVHNote(bytes, offset: Int(offset), length: Int(fileSize), align: align, bigEndian: be)
                }
            }
        }

        // A file without note segments may still carry the note in a section.
        if !pvh, !sawNoteSegment, sectionHeaderOffset != 0, sectionHeaderCount > 0 {
            guard sectionHeaderSize >= (is64Bit ? 64 : 40) else {
                throw .malformed(url, "ELF section header size \(sectionHeaderSize) is too small")
            }
            let tableLength = UInt64(sectionHeaderSize) * UInt64(sectionHeaderCount)
            guard bytes.contains(sectionHeaderOffset, length: tableLength) else {
                throw truncated(sectionHeaderOffset &+ tableLength)
            }
            for index in 0..<sectionHeaderCount where !pvh {
                let base = Int(sectionHeaderOffset) + index * sectionHeaderSize
                guard bytes.u32(base + 4, bigEndian: be) == Self.shtNote else { continue }
                let offset, size, align: UInt64
                if is64Bit {
                    offset = bytes.u64(base + 24, bigEndian: be) ?? 0
                    size = bytes.u64(base + 32, bigEndian: be) ?? 0
                    align = bytes.u64(base + 48, bigEndian: be) ?? 0
                } else {
                    offset = UInt64(bytes.u32(base + 16, bigEndian: be) ?? 0)
                    size = UInt64(bytes.u32(base + 20, bigEndian: be) ?? 0)
                    align = UInt64(bytes.u32(base + 32, bigEndian: be) ?? 0)
                }
                guard bytes.contains(offset, length: size) else { throw truncated(offset &+ size) }
                pvh = Self.hasPVHNote(bytes, offset: Int(offset), length: Int(size), align: align, bigEndian: be)
            }
        }
        hasPVHNote = pvh
    }

    /// Walks the notes in `[offset, offset + length)` looking for "Xen" type 18.
    /// Notes are padded to 4 bytes (Linux uses 4 even in ELF64) or to 8 when the
    /// segment says so.
    static func hasPVHNote(_ bytes: ByteView, offset: Int, length: Int, align: UInt64, bigEndian: Bool) -> Bool {
        let padding = align == 8 ? 8 : 4
        func padded(_ value: Int) -> Int { (value + padding - 1) / padding * padding }
        let end = offset + length
        var cursor = offset
        while cursor + 12 <= end {
            guard let nameSize = bytes.u32(cursor, bigEndian: bigEndian).map(Int.init),
                let descSize = bytes.u32(cursor + 4, bigEndian: bigEndian).map(Int.init),
                let type = bytes.u32(cursor + 8, bigEndian: bigEndian)
            else { return false }
            let nameStart = cursor + 12
            let descStart = nameStart + padded(nameSize)
            let next = descStart + padded(descSize)
            guard next > cursor, next <= end else { return false }
            if type == xenPhys32EntryType,
                nameSize == 4 ? bytes.matches(Array("Xen\0".utf8), at: nameStart)
                    : nameSize == 3 && bytes.matches(Array("Xen".utf8), at: nameStart)
            {
                return true
            }
            cursor = next
        }
        return false
    }
}
