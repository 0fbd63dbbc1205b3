import Foundation
import LaunchSupport
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// Saved guests in the cache (`<cache>/snapshots`): `KEY.state` (what QMP `migrate` wrote)
/// beside `KEY.json` (the key's text, the profile's name, when it was last used).
///
/// A state file is never written in place: it is made under a unique temporary name and
/// renamed, so two runs making one at once both succeed and a reader never sees half of
/// one. Runs restore by opening it read-only (each run's QEMU reads its own fd; nothing
/// writes it), so replacing or evicting one under a running restore is harmless. The cache
/// is bounded: after each save the least recently used snapshots go until the rest fit.
struct SnapshotCache: Sendable {
    /// The folder holding the snapshots.
    var folder: URL
    /// The most bytes the state files may take together.
    var limitBytes: Int64

    /// The default bound: 4 GiB, or `LAUNCH_SNAPSHOT_CACHE_LIMIT` (a size like 2G or 800M).
    static var defaultLimitBytes: Int64 {
        if let text = ProcessInfo.processInfo.environment["LAUNCH_SNAPSHOT_CACHE_LIMIT"],
           let size = MemorySize(parsing: text) {
            return Int64(size.bytes)
        }
        return 4 << 30
    }

    static var standard: SnapshotCache {
        SnapshotCache(folder: CacheDirectory.root.appendingPathComponent("snapshots"), limitBytes: defaultLimitBytes)
    }

    /// What is stored beside a state file.
    struct Record: Codable, Sendable, Hashable {
        var profile: String
        var key: String
        var bytes: Int64
        /// Seconds to save it.
        var saveSeconds: Double
    }

    func stateURL(_ key: SnapshotKey) -> URL { folder.appendingPathComponent("\(key.hex).state") }
    func recordURL(_ key: SnapshotKey) -> URL { folder.appendingPathComponent("\(key.hex).json") }

    /// An open read-only fd of the snapshot for `key`, checked against the key stored beside
    /// it; nil (with the reason) when there is none or it doesn't match.
    func open(_ key: SnapshotKey) -> (fd: Int32?, reason: String) {
        guard let data = try? Data(contentsOf: recordURL(key)) else { return (nil, "no snapshot for this key yet") }
        guard let record = try? JSONDecoder().decode(Record.self, from: data) else {
            return (nil, "its record \(recordURL(key).path) can't be read")
        }
        guard record.key == key.text else { return (nil, "the stored key differs from this run's") }
        let fd = Glibc.open(stateURL(key).path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (nil, "\(stateURL(key).path): \(POSIX.describe(POSIX.errno))") }
        var info = stat()
        guard fstat(fd, &info) == 0, Int64(info.st_size) == record.bytes, record.bytes > 0 else {
            close(fd)
            return (nil, "the state file's size is not the one recorded")
        }
        // Last used now: eviction goes by the record's mtime.
        utimes(recordURL(key).path, nil)
        return (fd, "")
    }

    /// A new, unique temporary path for a state file of `key` (in the cache folder, so the
    /// rename is atomic).
    func temporaryStateURL(_ key: SnapshotKey) throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.appendingPathComponent(".\(key.hex).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
    }

    /// Makes the saved state at `temporary` the snapshot of `key`: the record first (readers
    /// check the state's size against it), then the state by rename (a snapshot another run
    /// made meanwhile is replaced whole); then evicts past the bound. Returns what it removed.
    /// Snapshots of other keys stay (a profile run with and without `-v`, or two memory
    /// sizes, keeps one each) until the bound evicts the least recently used.
    @discardableResult
    func commit(_ temporary: URL, key: SnapshotKey, saveSeconds: Double) throws -> [String] {
        var info = stat()
        guard stat(temporary.path, &info) == 0, info.st_size > 0 else {
            throw LaunchError(.internalError, "the saved guest state \(temporary.path) is missing or empty")
        }
        let record = Record(profile: key.profileName, key: key.text, bytes: Int64(info.st_size), saveSeconds: saveSeconds)
        try AtomicFile.write(try JSONEncoder().encode(record), to: recordURL(key).path)
        guard rename(temporary.path, stateURL(key).path) == 0 else {
            let message = POSIX.describe(POSIX.errno)
            unlink(temporary.path)
            throw LaunchError(.hostProblem, "cannot rename the saved guest state into \(stateURL(key).path): \(message)")
        }
        return evict(keeping: key.hex)
    }

    /// One snapshot in the folder.
    struct Entry: Sendable {
        var hex: String
        var bytes: Int64
        var lastUsed: Date
        var record: Record?
    }

    /// Every snapshot in the folder, least recently used first.
    func entries() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var result: [Entry] = []
        for name in names where name.hasSuffix(".state") && !name.hasPrefix(".") {
            let hex = String(name.dropLast(".state".count))
            let state = folder.appendingPathComponent(name).path
            let recordPath = folder.appendingPathComponent("\(hex).json").path
            var info = stat()
            guard stat(state, &info) == 0 else { continue }
            var used = info.st_mtim
            var recordInfo = stat()
            if stat(recordPath, &recordInfo) == 0 { used = recordInfo.st_mtim }
            let record = (try? Data(contentsOf: URL(fileURLWithPath: recordPath))).flatMap { try? JSONDecoder().decode(Record.self, from: $0) }
            result.append(Entry(hex: hex, bytes: Int64(info.st_size),
                                lastUsed: Date(timeIntervalSince1970: Double(used.tv_sec) + Double(used.tv_nsec) / 1e9),
                                record: record))
        }
        return result.sorted { $0.lastUsed < $1.lastUsed }
    }

    func remove(_ hex: String) {
        unlink(folder.appendingPathComponent("\(hex).state").path)
        unlink(folder.appendingPathComponent("\(hex).json").path)
    }

    /// Removes the least recently used snapshots (never `keeping`) until the rest fit the bound.
    func evict(keeping: String) -> [String] {
        var all = entries()
        var total = all.reduce(0) { $0 + $1.bytes }
        var removed: [String] = []
        while total > limitBytes, let index = all.firstIndex(where: { $0.hex != keeping }) {
            let entry = all.remove(at: index)
            remove(entry.hex)
            total -= entry.bytes
            removed.append("\(entry.hex) (least recently used; the cache is bounded to \(byteCount(UInt64(limitBytes))))")
        }
        return removed
    }
}
