import Foundation

/// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst): where the
/// protected-mode kernel starts, where its compressed payload is, the version string.
struct BzImageHeader {
    static let magic = Array("HdrS".utf8)
    static let magicOffset = 0x202

    /// A compressed kernel inside the image. `offset` is from the start of the file.
    struct Payload: Equatable {
        var offset: Int
        /// Known when the header gives it; then its last 4 bytes are the
        /// decompressed size (the kernel build appends it; gzip's own trailer ends
        /// with it too).
        var length: Int?
        var compression: Compression
    }

    var bootProtocol: UInt16
    /// Where the protected-mode code starts: after the boot sector and the setup
    /// sectors.
    var protectedModeStart: Int
    var version: String?
    var arch: KernelImage.Arch?
    /// The payload the header points at, when its bytes start with a known magic.
    var payload: Payload?

    init(_ bytes: ByteView, url: URL) throws(KernelImage.Error) {
        func truncated(_ needed: Int) -> KernelImage.Error {
            .truncated(url, format: "bzImage", neededBytes: UInt64(needed), actualBytes: UInt64(bytes.count))
        }
        guard let version = bytes.u16(0x206) else { throw truncated(0x208) }
        bootProtocol = version
        // setup_sects == 0 means 4, for images older than the field.
        let setupSectors = Int(bytes.u8(0x1F1) ?? 0)
        protectedModeStart = ((setupSectors == 0 ? 4 : setupSectors) + 1) * 512
        guard protectedModeStart <= bytes.count else { throw truncated(protectedModeStart) }

        if bootProtocol >= 0x200, let pointer = bytes.u16(0x20E), pointer != 0 {
            self.version = bytes.line(at: Int(pointer) + 0x200, maxLength: 256)
        }
        // XLF_KERNEL_64 (protocol 2.12+): a 64-bit kernel; earlier images don't say.
        if bootProtocol >= 0x20C, let flags = bytes.u16(0x236) {
            arch = flags & 1 == 1 ? .x86_64 : nil
        }
        // payload_offset/payload_length (protocol 2.08+), relative to the
        // protected-mode code.
        if bootProtocol >= 0x208, let offset = bytes.u32(0x248), let length = bytes.u32(0x24C), length > 0 {
            let start = protectedModeStart + Int(offset)
            guard bytes.contains(start, length: Int(length)) else { throw truncated(start + Int(length)) }
            if let compression = Compression.detect(in: bytes.buffer, at: start) {
                payload = Payload(offset: start, length: Int(length), compression: compression)
            }
        }
    }

    /// Offsets in the protected-mode code where a compression magic starts, in file
    /// order: the fallback when the header has no payload fields. The first few of
    /// each format only; later ones are almost always chance matches.
    func scanForPayloads(_ bytes: ByteView, limit: Int = 8) -> [Payload] {
        var found: [Payload] = []
        for format in Compression.allCases {
            var from = protectedModeStart
            var hits = 0
            while hits < limit, let index = bytes.firstIndex(of: format.magic, from: from) {
                from = index + 1
                if format.matches(bytes.buffer, at: index) {
                    found.append(Payload(offset: index, length: nil, compression: format))
                    hits += 1
                }
            }
        }
        return Array(found.sorted { $0.offset < $1.offset }.prefix(limit))
    }
}

/// The header of an EFI zboot image (drivers/firmware/efi/libstub/zboot-header.S):
/// an MS-DOS stub with "zimg", the payload's place and compression name, then a PE
/// header whose machine field names the architecture.
struct ZbootHeader {
    var payloadOffset: Int
    var payloadLength: Int
    var compression: Compression?
    var arch: KernelImage.Arch?

    init(_ bytes: ByteView, url: URL) throws(KernelImage.Error) {
        func truncated(_ needed: Int) -> KernelImage.Error {
            .truncated(url, format: "EFI zboot", neededBytes: UInt64(needed), actualBytes: UInt64(bytes.count))
        }
        guard let offset = bytes.u32(8), let length = bytes.u32(12), let peOffset = bytes.u32(0x3C) else {
            throw truncated(0x40)
        }
        payloadOffset = Int(offset)
        payloadLength = Int(length)
        guard bytes.contains(Int(peOffset), length: 6) else { throw truncated(Int(peOffset) + 6) }
        guard bytes.matches([0x50, 0x45, 0, 0], at: Int(peOffset)) else {
            throw .malformed(url, "EFI zboot image has no PE header at offset \(peOffset)")
        }
        switch bytes.u16(Int(peOffset) + 4) {
        case 0xAA64: arch = .aarch64
        case 0x8664: arch = .x86_64
        default: arch = nil  // RISC-V (0x5064), LoongArch (0x6264), ...
        }
        guard bytes.contains(payloadOffset, length: payloadLength) else { throw truncated(payloadOffset + payloadLength) }

        // The compression's name as the kernel's Makefile.zboot spells it.
        switch bytes.line(at: 24, maxLength: 0x3C - 24) {
        case "gzip": compression = .gzip
        case "xzkern", "xz": compression = .xz
        case "zstd22", "zstd": compression = .zstd
        case "lz4": compression = .lz4
        case "lzma": compression = .lzma
        case "lzo": compression = .lzo
        case "bzip2": compression = .bzip2
        default:
            compression = Compression.detect(in: bytes.buffer, at: payloadOffset)
        }
    }
}
