import Foundation
@testable import GuestKit
import Testing

/// The warm-start snapshot cache on a real folder, with stand-in state files (fast: no QEMU).
@Suite("The snapshot cache: checked against its key, made atomically, bounded by LRU eviction")
struct SnapshotCacheTests {
    func cache(limit: Int64) throws -> SnapshotCache {
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapshots-\(UUID().uuidString)")
        return SnapshotCache(folder: folder, limitBytes: limit)
    }

    func save(_ cache: SnapshotCache, _ key: SnapshotKey, bytes: Int) throws -> [String] {
        let temporary = try cache.temporaryStateURL(key)
        try Data(repeating: 7, count: bytes).write(to: temporary)
        return try cache.commit(temporary, key: key, saveSeconds: 0.5)
    }

    @Test("a snapshot opens for its own key only; a record whose key text differs is refused with the reason")
    func checkedAgainstKey() throws {
        let cache = try cache(limit: 1 << 20)
        defer { try? FileManager.default.removeItem(at: cache.folder) }
        let key = SnapshotKey(text: "argv a\n", profileName: "p")
        #expect(cache.open(key).fd == nil)
        _ = try save(cache, key, bytes: 100)
        let opened = cache.open(key)
        let fd = try #require(opened.fd, "\(opened.reason)")
        close(fd)
        // A record tampered with (or a hash collision): same file name, another key.
        let record = SnapshotCache.Record(profile: "p", key: "argv b\n", bytes: 100, saveSeconds: 0.5)
        try JSONEncoder().encode(record).write(to: cache.recordURL(key))
        let refused = cache.open(key)
        #expect(refused.fd == nil)
        #expect(refused.reason == "the stored key differs from this run's")
        // No temporary file is left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: cache.folder.path)
        #expect(names.allSatisfy { !$0.hasSuffix(".tmp") }, "\(names)")
    }

    @Test("past the bound, the least recently used snapshots go first; the one just made stays")
    func evictsLeastRecentlyUsed() throws {
        let cache = try cache(limit: 250)
        defer { try? FileManager.default.removeItem(at: cache.folder) }
        let (a, b, c) = (SnapshotKey(text: "a\n", profileName: "p"), SnapshotKey(text: "b\n", profileName: "p"), SnapshotKey(text: "c\n", profileName: "q"))
        #expect(try save(cache, a, bytes: 100).isEmpty)
        #expect(try save(cache, b, bytes: 100).isEmpty)
        // Using a makes b the least recently used (mtimes have sub-second resolution here).
        Thread.sleep(forTimeInterval: 0.05)
        if let fd = cache.open(a).fd { close(fd) }
        Thread.sleep(forTimeInterval: 0.05)
        let removed = try save(cache, c, bytes: 100)
        #expect(removed.count == 1 && removed[0].hasPrefix(b.hex), "\(removed)")
        #expect(Set(cache.entries().map(\.hex)) == [a.hex, c.hex])
    }
}
