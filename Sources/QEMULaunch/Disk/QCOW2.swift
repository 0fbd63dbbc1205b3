/// The guest-visible bytes of a plain qcow2 image (QEMU's docs/interop/qcow2.txt),
/// read through its L1 and L2 tables. Only what can be read without guessing:
/// version 2 or 3, no encryption, no backing file, no external data file, no
/// extended L2 entries, no compressed cluster on the way. Anything else is
/// `Unreadable` and says which.
struct QCOW2Guest: DiskBytes {
    let file: any DiskBytes
    let clusterBits: UInt64
    let virtualSize: UInt64
    let l1Offset: UInt64
    let l1Entries: UInt64
    let version: UInt32

    /// Bits 9-55 of an L1 or standard L2 entry: a host offset, cluster aligned.
    static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00

    init(_ file: any DiskBytes) throws(Unreadable) {
        self.file = file
        let header = try file.read(at: 0, count: 104)
        guard header.bigEndian(UInt32.self, at: 0) == 0x5146_49fb else { throw Unreadable("no qcow2 magic (QFI\\xfb) at byte 0") }
        version = header.bigEndian(UInt32.self, at: 4)
        guard version == 2 || version == 3 else { throw Unreadable("qcow2 version \(version) (this reader knows 2 and 3)") }
        if header.bigEndian(UInt64.self, at: 8) != 0 {
            throw Unreadable("a qcow2 image with a backing file (its unwritten clusters come from another image)")
        }
        clusterBits = UInt64(header.bigEndian(UInt32.self, at: 20))
        guard (9...21).contains(clusterBits) else { throw Unreadable("qcow2 cluster_bits \(clusterBits) is outside 9...21") }
        virtualSize = header.bigEndian(UInt64.self, at: 24)
        let crypt = header.bigEndian(UInt32.self, at: 32)
        if crypt != 0 { throw Unreadable("an encrypted qcow2 image (crypt_method \(crypt))") }
        l1Entries = UInt64(header.bigEndian(UInt32.self, at: 36))
        l1Offset = header.bigEndian(UInt64.self, at: 40)
        guard l1Offset & ~Self.offsetMask == 0, l1Offset & ((1 << clusterBits) - 1) == 0 else {
            throw Unreadable("the qcow2 L1 table offset \(l1Offset) is not a cluster-aligned host offset")
        }
        if version == 3 {
            let incompatible = header.bigEndian(UInt64.self, at: 72)
            // Bit 0 (dirty: refcounts may be stale) leaves the mapping intact; bit 3 (the
            // compression type) matters only for compressed clusters, refused below.
            let readable: UInt64 = 1 << 0 | 1 << 3
            if incompatible & ~readable != 0 {
                var what: [String] = []
                if incompatible & 1 << 1 != 0 { what.append("marked corrupt") }
                if incompatible & 1 << 2 != 0 { what.append("an external data file") }
                if incompatible & 1 << 4 != 0 { what.append("extended L2 entries (subclusters)") }
                if what.isEmpty { what.append("incompatible features 0x\(String(incompatible, radix: 16))") }
                throw Unreadable("a qcow2 image with " + what.joined(separator: ", "))
            }
        }
    }

    var clusterSize: UInt64 { 1 << clusterBits }

    func read(at offset: UInt64, count: Int) throws(Unreadable) -> [UInt8] {
        guard count >= 0, offset <= virtualSize, UInt64(count) <= virtualSize - offset else {
            throw Unreadable("the qcow2 disk (\(virtualSize) bytes) ends before byte \(offset + UInt64(max(count, 0)))", isPastEnd: true)
        }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var position = offset
        let end = offset + UInt64(count)
        while position < end {
            let inCluster = position & (clusterSize - 1)
            let length = min(clusterSize - inCluster, end - position)
            if let host = try hostCluster(for: position) {
                out += try file.read(at: host + inCluster, count: Int(length))
            } else {
                // Unallocated or an explicit zero cluster, with no backing file: zeros.
                out += [UInt8](repeating: 0, count: Int(length))
            }
            position += length
        }
        return out
    }

    /// The host offset of the cluster holding guest byte `offset`; nil = reads as zeros.
    func hostCluster(for offset: UInt64) throws(Unreadable) -> UInt64? {
        let l2Entries = clusterSize / 8
        let l1Index = (offset >> clusterBits) / l2Entries
        let l2Index = (offset >> clusterBits) % l2Entries
        guard l1Index < l1Entries else { throw Unreadable("guest byte \(offset) is past the qcow2 L1 table") }
        let l1 = try file.read(at: l1Offset + 8 * l1Index, count: 8).bigEndian(UInt64.self, at: 0)
        let l2Table = l1 & Self.offsetMask
        if l2Table == 0 { return nil }
        let l2 = try file.read(at: l2Table + 8 * l2Index, count: 8).bigEndian(UInt64.self, at: 0)
        if l2 & 1 << 62 != 0 { throw Unreadable("the qcow2 cluster at guest byte \(offset) is compressed") }
        // Bit 0 of a standard entry (version 3) marks a cluster that reads as zeros.
        if version == 3 && l2 & 1 != 0 { return nil }
        let host = l2 & Self.offsetMask
        return host == 0 ? nil : host
    }
}
