import Foundation

/// A compression format met in kernel images and module files, with the host tool
/// that decompresses it and the Debian package that ships that tool.
package enum Compression: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case gzip, xz, zstd, lz4, lzma, bzip2, lzo

    /// The command that decompresses this format.
    package var tool: String {
        switch self {
        case .gzip: "gzip"
        case .xz, .lzma: "xz"  // xz reads the legacy .lzma format too
        case .zstd: "zstd"
        case .lz4: "lz4"
        case .bzip2: "bzip2"
        case .lzo: "lzop"
        }
    }

    /// The Debian package that ships `tool`.
    package var debianPackage: String {
        switch self {
        case .gzip: "gzip"
        case .xz, .lzma: "xz-utils"
        case .zstd: "zstd"
        case .lz4: "lz4"
        case .bzip2: "bzip2"
        case .lzo: "lzop"
        }
    }

    /// Arguments that make `tool` decompress stdin to stdout.
    package var decompressArguments: [String] {
        switch self {
        // Decompress only the first stream: a kernel payload is followed by a 4-byte
        // size and, when found by scanning, by whatever the image holds after it.
        case .xz: ["--decompress", "--stdout", "--single-stream"]
        case .lzma: ["--decompress", "--stdout", "--format=lzma"]
        case .gzip, .zstd, .lz4, .bzip2, .lzo: ["-d", "-c"]
        }
    }

    /// The bytes a stream of this format starts with. The kernel's lz4 payload uses
    /// the legacy frame format; its lzma payload starts with the properties byte 0x5D
    /// and a little-endian dictionary size whose low bytes are zero.
    package var magic: [UInt8] {
        switch self {
        case .gzip: [0x1F, 0x8B, 0x08]
        case .xz: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]
        case .zstd: [0x28, 0xB5, 0x2F, 0xFD]
        case .lz4: [0x02, 0x21, 0x4C, 0x18]
        case .lzma: [0x5D, 0x00, 0x00]
        case .bzip2: Array("BZh".utf8)
        case .lzo: [0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A]
        }
    }

    package var description: String { rawValue }

    /// The format whose magic starts at `offset` of `bytes`, if any. bzip2 also needs
    /// its block-size digit, to cut false matches on "BZh" in other data.
    static func detect(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Compression? {
        for format in Compression.allCases where format.matches(bytes, at: offset) { return format }
        return nil
    }

    func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        let magic = self.magic
        guard offset >= 0, offset + magic.count <= bytes.count else { return false }
        for (index, byte) in magic.enumerated() where bytes[offset + index] != byte { return false }
        if self == .bzip2 {
            guard offset + 3 < bytes.count, (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[offset + 3])
            else { return false }
        }
        return true
    }

    /// The format a module file's name says it has: `.ko.xz`, `.ko.zst`, `.ko.gz`;
    /// nil for a plain `.ko`.
    static func forModuleFileName(_ name: String) -> Compression? {
        if name.hasSuffix(".ko.xz") { return .xz }
        if name.hasSuffix(".ko.zst") { return .zstd }
        if name.hasSuffix(".ko.gz") { return .gzip }
        return nil
    }
}
