import Foundation
import LaunchSupport

/// A cache key over the inputs of a built artefact: each file's path, size,
/// modification time and inode, plus any extra text (the init script, the format
/// version). FNV-1a, 64-bit, twice with different seeds: a cache key, not a
/// security boundary.
struct Fingerprint {
    private var a: UInt64 = 0xcbf2_9ce4_8422_2325
    private var b: UInt64 = 0x8422_2325_cbf2_9ce4

    mutating func add(_ text: String) {
        for byte in text.utf8 { mix(byte) }
        mix(0)
    }

    mutating func add(file path: String) {
        var info = stat()
        if stat(path, &info) == 0 {
            add("\(path)|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)|\(info.st_ino)|\(info.st_dev)")
        } else {
            add("\(path)|missing")
        }
    }

    private mutating func mix(_ byte: UInt8) {
        a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
        b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 0x9e37_79b9
    }

    var hex: String { String(format: "%016llx%016llx", a, b) }
}

/// Writes `data` to `url` through a temporary file and a rename, so a reader
/// (another launch running at the same time) never sees half a file.
func writeAtomically(_ data: Data, to url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try AtomicFile.write(data, to: url.path)
}
