import LaunchSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a disk image says nothing about its arch: not a GPT, not a layout this
/// reader follows, too short. Never a guess.
struct Unreadable: Error, Hashable {
    var reason: String
    /// The bytes asked for are past the end: a smaller disk, not a damaged one.
    var isPastEnd = false
    init(_ reason: String, isPastEnd: Bool = false) {
        self.reason = reason
        self.isPastEnd = isPastEnd
    }
}

/// Random access to bytes: a disk as the guest sees it, or an image file as
/// stored. `read` returns exactly `count` bytes or throws why it can't.
protocol DiskBytes {
    func read(at offset: UInt64, count: Int) throws(Unreadable) -> [UInt8]
}

/// Bytes in memory (tests).
struct BufferBytes: DiskBytes {
    let bytes: [UInt8]

    func read(at offset: UInt64, count: Int) throws(Unreadable) -> [UInt8] {
        guard count >= 0, offset <= UInt64(bytes.count), UInt64(count) <= UInt64(bytes.count) - offset else {
            throw Unreadable("the image ends before byte \(offset + UInt64(max(count, 0)))", isPastEnd: true)
        }
        let start = Int(offset)
        return Array(bytes[start..<start + count])
    }
}

/// An open file read with pread: no seeking, nothing read but what is asked for.
final class FileBytes: DiskBytes {
    private let fd: Int32

    init?(path: String) {
        // O_NONBLOCK: a FIFO given as a disk must not hang validation (no effect on files and block devices).
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { return nil }
    }

    deinit { close(fd) }

    func read(at offset: UInt64, count: Int) throws(Unreadable) -> [UInt8] {
        guard count >= 0, offset <= UInt64(Int64.max) - UInt64(count) else { throw Unreadable("offset \(offset) is out of range") }
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Unreadable("read failed at byte \(offset + UInt64(done)): \(POSIX.describe(errno))") }
            if n == 0 { throw Unreadable("the image ends before byte \(offset + UInt64(count))", isPastEnd: true) }
            done += n
        }
        return buffer
    }
}

extension Array where Element == UInt8 {
    /// Little-endian unsigned integer at `offset` (GPT).
    func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(self[offset + index]) }
        return value
    }

    /// Big-endian unsigned integer at `offset` (qcow2).
    func bigEndian<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[offset + index]) }
        return value
    }
}
