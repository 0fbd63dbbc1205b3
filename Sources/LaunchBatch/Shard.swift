/// One of `count` parts of a suite: `--shard K/N`, with K from 1 to N.
///
/// Jobs are assigned by a stable hash of their key (FNV-1a, 64-bit, of the key's UTF-8
/// bytes; never Swift's per-process seeded `Hasher`): the keys are ordered by hash and
/// dealt out in turn, so the shards differ in size by one at most, and every shard run
/// on any machine, with the manifest's jobs in any order, agrees on who runs what.
/// Adding or removing a job can move others to another shard; every shard of one run
/// must read the same manifest.
public struct Shard: Sendable, Hashable, CustomStringConvertible {
    /// This shard's number, 1 to `count`.
    public var index: Int
    /// How many shards the suite is split into.
    public var count: Int

    /// Shard `index` of `count`; nil unless 1 ≤ index ≤ count.
    public init?(index: Int, count: Int) {
        guard count >= 1, (1...count).contains(index) else { return nil }
        self.index = index
        self.count = count
    }

    /// Parses `K/N` (1 ≤ K ≤ N); nil for anything else.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else { return nil }
        self.init(index: index, count: count)
    }

    /// `K/N`.
    public var description: String { "\(index)/\(count)" }

    /// The keys of this shard, in the order given.
    public func select<Item>(_ items: [Item], key: (Item) -> String) -> [Item] {
        let mine = Set(Self.assignment(items.map(key), count: count).filter { $0.value == index }.keys)
        return items.filter { mine.contains(key($0)) }
    }

    /// Which shard (1 to `count`) each key runs in.
    public static func assignment(_ keys: [String], count: Int) -> [String: Int] {
        let ordered = Set(keys).sorted { (fnv1a($0), $0) < (fnv1a($1), $1) }
        var shards: [String: Int] = [:]
        for (rank, key) in ordered.enumerated() { shards[key] = rank % count + 1 }
        return shards
    }

    /// FNV-1a, 64-bit, of `key`'s UTF-8 bytes: the same on every machine and in every process.
    public static func fnv1a(_ key: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
