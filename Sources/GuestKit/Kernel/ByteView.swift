import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Bounds-checked reads from a file's bytes: every accessor returns nil past the end
/// instead of trapping, so a short or hostile file gives an error, not a crash.
struct ByteView {
    let buffer: UnsafeRawBufferPointer

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var count: Int { buffer.count }

    /// True when `[offset, offset + length)` lies inside the bytes, without overflow.
    func contains(_ offset: Int, length: Int) -> Bool {
        guard offset >= 0, length >= 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= count
    }

    func contains(_ offset: UInt64, length: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= UInt64(count)
    }

    func u8(_ offset: Int) -> UInt8? {
        contains(offset, length: 1) ? buffer[offset] : nil
    }

    func u16(_ offset: Int, bigEndian: Bool = false) -> UInt16? {
        integer(offset, bigEndian: bigEndian)
    }

    func u32(_ offset: Int, bigEndian: Bool = false) -> UInt32? {
        integer(offset, bigEndian: bigEndian)
    }

    func u64(_ offset: Int, bigEndian: Bool = false) -> UInt64? {
        integer(offset, bigEndian: bigEndian)
    }

    private func integer<T: FixedWidthInteger>(_ offset: Int, bigEndian: Bool) -> T? {
        guard contains(offset, length: MemoryLayout<T>.size) else { return nil }
        let raw = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        return bigEndian ? T(bigEndian: raw) : T(littleEndian: raw)
    }

    func matches(_ pattern: [UInt8], at offset: Int) -> Bool {
        guard contains(offset, length: pattern.count) else { return false }
        for (index, byte) in pattern.enumerated() where buffer[offset + index] != byte { return false }
        return true
    }

    /// The first offset at or after `from` where `pattern` starts.
    func firstIndex(of pattern: [UInt8], from: Int = 0) -> Int? {
        guard !pattern.isEmpty, from >= 0, from < count, let base = buffer.baseAddress else { return nil }
        // memchr for the first byte, memcmp for the rest (Glibc's module map has no
        // memmem, a GNU extension).
        return pattern.withUnsafeBytes { needle -> Int? in
            guard let needleBase = needle.baseAddress else { return nil }
            var cursor = from
            while cursor + needle.count <= count {
                guard let hit = memchr(base + cursor, Int32(pattern[0]), count - cursor - needle.count + 1) else {
                    return nil
                }
                let index = UnsafeRawPointer(hit) - base
                if memcmp(base + index, needleBase, needle.count) == 0 { return index }
                cursor = index + 1
            }
            return nil
        }
    }

    /// The bytes from `offset` up to a NUL, a newline or `maxLength`, as text;
    /// nil when `offset` is outside or the text is empty.
    func line(at offset: Int, maxLength: Int) -> String? {
        guard contains(offset, length: 1) else { return nil }
        var end = offset
        while end < count, end - offset < maxLength, buffer[end] != 0, buffer[end] != 0x0A { end += 1 }
        guard end > offset else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[offset..<end]), as: UTF8.self)
    }
}
