#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a byte stream into lines without quadratic copying.
///
/// Reads go straight into the free tail of one growing buffer. Each byte is scanned
/// for `\n` once (`memchr` from where the last scan stopped); consumed lines only
/// move a start index. The unconsumed rest is moved to the front only when the tail
/// is short of room, so a large line is moved at most once and then grows in place
/// (`realloc`, doubling). Lines end with `\n`; a `\r` before it is dropped (QEMU
/// writes `\r\n`).
struct LineBuffer: ~Copyable {
    /// Bytes offered to each `read(2)`.
    static let readSize = 64 * 1024
    /// Capacity kept between messages; a larger buffer is shrunk back once empty.
    static let restingCapacity = 2 * readSize

    struct LineTooLong: Error {}

    let maxLineBytes: Int
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    /// Start of the first unconsumed byte.
    private var start = 0
    /// End of the valid bytes.
    private var end = 0
    /// Bytes in `start..<scanned` hold no newline.
    private var scanned = 0

    init(maxLineBytes: Int) {
        self.maxLineBytes = min(max(1, maxLineBytes), Int.max / 4)
        capacity = Self.restingCapacity
        storage = Self.allocate(capacity)
    }

    deinit { free(storage) }

    /// Bytes received but not yet returned as lines.
    var pendingByteCount: Int { end - start }

    /// Calls `read` once with the free tail (at least `readSize` bytes) and keeps
    /// what it reports as read; returns `read`'s result.
    mutating func fill(_ read: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        reserveTail(Self.readSize)
        let count = read(UnsafeMutableRawBufferPointer(start: storage + end, count: capacity - end))
        if count > 0 { end += min(count, capacity - end) }
        return count
    }

    /// Appends bytes (for tests and for callers that already hold the data).
    mutating func append(_ bytes: some Collection<UInt8>) {
        reserveTail(bytes.count)
        UnsafeMutableRawBufferPointer(start: storage + end, count: bytes.count).copyBytes(from: bytes)
        end += bytes.count
    }

    /// The range in the buffer of the next complete line (without `\r\n`), or nil
    /// when no complete line has arrived. The range stays valid until the next
    /// `fill` or `append`. Throws when a line (complete or not) exceeds the limit.
    mutating func nextLine() throws(LineTooLong) -> Range<Int>? {
        guard scanned < end, let found = memchr(storage + scanned, 0x0A, end - scanned) else {
            scanned = end
            // +1: a trailing `\r` whose `\n` has not arrived yet is not line content.
            if end - start > maxLineBytes + 1 { throw LineTooLong() }
            if start == end { reset() }
            return nil
        }
        let newline = UnsafeMutableRawPointer(found) - storage
        var lineEnd = newline
        if lineEnd > start && storage.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
        let line = start..<lineEnd
        start = newline + 1
        scanned = start
        if line.count > maxLineBytes { throw LineTooLong() }
        return line
    }

    /// Calls `body` with the bytes of a range returned by `nextLine()`.
    func withBytes<R>(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(start: storage + range.lowerBound, count: range.count))
    }

    /// Makes room for `count` bytes after `end`: first by moving the unconsumed
    /// bytes to the front, then by growing (doubling) the buffer.
    private mutating func reserveTail(_ count: Int) {
        if capacity - end >= count { return }
        if start > 0 {
            let pending = end - start
            if pending > 0 { memmove(storage, storage + start, pending) }
            scanned -= start
            end = pending
            start = 0
            if capacity - end >= count { return }
        }
        var newCapacity = capacity
        while newCapacity - end < count { newCapacity *= 2 }
        guard let grown = realloc(storage, newCapacity) else {
            fatalError("LineBuffer: out of memory growing to \(newCapacity) bytes")
        }
        storage = grown
        capacity = newCapacity
    }

    /// Everything was consumed: start over at the front, and give back the memory
    /// a huge line took.
    private mutating func reset() {
        start = 0
        end = 0
        scanned = 0
        if capacity > 8 * Self.restingCapacity {
            free(storage)
            capacity = Self.restingCapacity
            storage = Self.allocate(capacity)
        }
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutableRawPointer {
        guard let memory = malloc(capacity) else {
            fatalError("LineBuffer: out of memory allocating \(capacity) bytes")
        }
        return memory
    }
}
