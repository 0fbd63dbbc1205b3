import Foundation
import TestSupport
import Testing

@testable import QEMULaunch

/// Discoverable Partitions Specification type GUIDs, written out here independently of the code.
private enum DPS {
    static let rootX86 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    static let rootArm64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
    static let usrX86 = "8484680C-9521-48C6-9C11-B0720656F69E"
    static let usrArm64 = "B0E01050-EE5F-4390-949A-9101B17104E9"
    static let esp = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    static let linuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
}

/// A GPT disk built byte by byte as the UEFI spec lays it out: protective MBR,
/// header at LBA 1, partition array, both CRC32s. Its own CRC and GUID encoding,
/// so the reader is checked against a second implementation, not itself.
struct GPTImage {
    var sectorSize = 512
    var sectors = 2048
    var arrayLBA = 2
    var entryCount = 128
    var entrySize = 128
    /// (slot, type GUID, name); slot 0 is partition 1.
    var partitions: [(slot: Int, type: String, name: String)] = []

    func bytes() -> [UInt8] {
        var disk = [UInt8](repeating: 0, count: sectorSize * sectors)
        // Protective MBR: one partition of type 0xEE over the disk.
        disk[446 + 4] = 0xee
        disk[510] = 0x55
        disk[511] = 0xaa
        var array = [UInt8](repeating: 0, count: entryCount * entrySize)
        for (index, partition) in partitions.enumerated() {
            let base = partition.slot * entrySize
            put(&array, base, guidBytes(partition.type))
            put(&array, base + 16, guidBytes(UUID().uuidString))
            put(&array, base + 32, le(UInt64(64 + index * 64), 8))
            put(&array, base + 40, le(UInt64(64 + index * 64 + 63), 8))
            let name = partition.name.utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }
            put(&array, base + 56, name)
        }
        put(&disk, arrayLBA * sectorSize, array)
        var header = [UInt8](repeating: 0, count: 92)
        put(&header, 0, Array("EFI PART".utf8))
        put(&header, 8, le(0x0001_0000, 4))
        put(&header, 12, le(92, 4))
        put(&header, 24, le(1, 8))
        put(&header, 32, le(UInt64(sectors - 1), 8))
        put(&header, 40, le(UInt64(arrayLBA + (entryCount * entrySize + sectorSize - 1) / sectorSize), 8))
        put(&header, 48, le(UInt64(sectors - 34), 8))
        put(&header, 56, guidBytes(UUID().uuidString))
        put(&header, 72, le(UInt64(arrayLBA), 8))
        put(&header, 80, le(UInt64(entryCount), 4))
        put(&header, 84, le(UInt64(entrySize), 4))
        put(&header, 88, le(UInt64(bitwiseCRC32(array)), 4))
        put(&header, 16, le(UInt64(bitwiseCRC32(header)), 4))
        put(&disk, sectorSize, header)
        return disk
    }

    private func put(_ buffer: inout [UInt8], _ offset: Int, _ bytes: [UInt8]) {
        buffer.replaceSubrange(offset..<offset + bytes.count, with: bytes)
    }

    private func le(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// Mixed-endian on disk: the first three fields little-endian.
    func guidBytes(_ text: String) -> [UInt8] {
        let u = UUID(uuidString: text)!.uuid
        let b = [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15]
        return [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]] + b[8...]
    }

    /// CRC-32 bit by bit (no table), unlike the reader's.
    func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xedb8_8320 : 0) }
        }
        return ~crc
    }
}

/// Counts the bytes a reader asks for.
final class CountingBytes: DiskBytes, @unchecked Sendable {
    let inner: BufferBytes
    var total = 0
    init(_ bytes: [UInt8]) { inner = BufferBytes(bytes: bytes) }
    func read(at offset: UInt64, count: Int) throws(Unreadable) -> [UInt8] {
        total += count
        return try inner.read(at: offset, count: count)
    }
}

private func inspect(_ bytes: [UInt8], _ format: Profile.DiskFormat = .raw) -> DiskArch.Finding {
    DiskArch.inspect(image: BufferBytes(bytes: bytes), format: format)
}

@Suite("Disk image arch: GPT partition types of the Discoverable Partitions Specification, raw and qcow2")
struct DiskArchTests {
    @Test("CRC-32 and GUID encoding match their published test vectors")
    func vectors() {
        #expect(GPT.crc32(Array("123456789".utf8)) == 0xcbf4_3926)
        // The Linux filesystem type as it is stored on disk.
        let stored: [UInt8] = [0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4]
        #expect(GPT.guidString(stored) == DPS.linuxFilesystem.lowercased())
        #expect(GPT.guidBytes(DPS.linuxFilesystem.lowercased()) == stored)
        #expect(GPTImage().guidBytes(DPS.linuxFilesystem) == stored)
    }

    @Test("a root or /usr partition type names the image's arch, with the partition's number and name",
          arguments: [(DPS.rootX86, Profile.Arch.x86_64, DiskArch.Role.root), (DPS.rootArm64, .aarch64, .root),
                      (DPS.usrX86, .x86_64, .usr), (DPS.usrArm64, .aarch64, .usr)])
    func typeNamesArch(type: String, arch: Profile.Arch, role: DiskArch.Role) {
        let image = GPTImage(partitions: [(0, DPS.esp, "esp"), (2, type, "system")]).bytes()
        #expect(inspect(image) == .partitions([DiskArch.Partition(number: 3, name: "system", typeGUID: type.lowercased(), role: role, arch: arch)]))
    }

    @Test("a disk with 4096-byte sectors has its GPT header at byte 4096")
    func fourKSectors() {
        let image = GPTImage(sectorSize: 4096, sectors: 256, partitions: [(0, DPS.rootArm64, "root")]).bytes()
        #expect(inspect(image).arches == [.aarch64])
    }

    @Test("a multi-arch image names both arches")
    func multiArch() {
        let image = GPTImage(partitions: [(0, DPS.usrX86, "usr-x86"), (1, DPS.usrArm64, "usr-arm")]).bytes()
        #expect(inspect(image).arches == [.x86_64, .aarch64])
    }

    @Test("images that say nothing are unknown: no GPT, empty, only generic Linux or ESP partitions")
    func unknowns() {
        #expect(inspect([]).arches.isEmpty)
        #expect(inspect([UInt8](repeating: 0, count: 1 << 20)) == .unknown(reason: "not a GPT disk: no \"EFI PART\" signature at byte 512; no \"EFI PART\" signature at byte 4096"))
        let generic = GPTImage(partitions: [(0, DPS.esp, "esp"), (1, DPS.linuxFilesystem, "root")]).bytes()
        #expect(inspect(generic) == .unknown(reason: "a GPT disk with no root or /usr partition of a Discoverable Partitions type"))
    }

    @Test("a damaged header or partition array is unknown, never a guess")
    func damaged() throws {
        let good = GPTImage(partitions: [(0, DPS.rootArm64, "root")]).bytes()
        var header = good
        header[512 + 60] ^= 0xff   // the disk GUID, covered by the header CRC
        guard case .unknown(let reason) = inspect(header) else { Issue.record("a damaged header was trusted"); return }
        #expect(reason.contains("header's CRC32"))
        var array = good
        array[1024 + 200] ^= 0x01  // an unused slot, covered by the array CRC
        guard case .unknown(let arrayReason) = inspect(array) else { Issue.record("a damaged array was trusted"); return }
        #expect(arrayReason.contains("array's CRC32"))
        // Cut off inside the partition array.
        guard case .unknown(let short) = inspect(Array(good.prefix(4096))) else { Issue.record("a truncated image was trusted"); return }
        #expect(short.contains("ends before"))
    }

    @Test("random damage to a GPT image never crashes and never finds another answer")
    func mutations() {
        let good = GPTImage(partitions: [(0, DPS.esp, "esp"), (1, DPS.rootX86, "root")]).bytes()
        let expected = inspect(good)
        var generator = SplitMix64(seed: 0x5eed)
        for _ in 0..<400 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<(34 * 512), using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            let found = inspect(bytes)
            if found != expected, case .partitions = found { Issue.record("damage changed the answer to \(found)") }
        }
        for length in stride(from: 0, through: 34 * 512, by: 256) {
            let found = inspect(Array(good.prefix(length)))
            if found != expected, case .partitions = found { Issue.record("a \(length)-byte prefix gave \(found)") }
        }
    }

    @Test("reading a raw GPT image takes a few KiB: LBA 1 and the 16 KiB partition array")
    func readsLittle() {
        let bytes = CountingBytes(GPTImage(partitions: [(0, DPS.rootX86, "root")]).bytes())
        #expect(DiskArch.inspect(image: bytes, format: .raw).arches == [.x86_64])
        #expect(bytes.total == 512 + 128 * 128)
    }

    // MARK: qcow2, made by the real qemu-img

    @Test("a qcow2 image made by qemu-img convert is read through its L1/L2 tables, with 64 KiB and 512-byte clusters",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")), arguments: [65536, 512])
    func qcow2Converted(clusterSize: Int) throws {
        let dir = try TempDir("qlt-darch")
        defer { dir.remove() }
        // With 512-byte clusters one L2 table covers 32 KiB: an array at LBA 100 sits under the second L1 entry.
        let image = GPTImage(arrayLBA: clusterSize == 512 ? 100 : 2, partitions: [(4, DPS.rootArm64, "arm-root")])
        let raw = dir.path + "/disk.img"
        try Data(image.bytes()).write(to: URL(fileURLWithPath: raw))
        let qcow2 = dir.path + "/disk.qcow2"
        try run(["/usr/bin/qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=\(clusterSize)", raw, qcow2])
        #expect(DiskArch.inspect(path: qcow2, format: .qcow2) == .partitions([
            DiskArch.Partition(number: 5, name: "arm-root", typeGUID: DPS.rootArm64.lowercased(), role: .root, arch: .aarch64)]))
        #expect(DiskArch.inspect(path: raw, format: .raw).arches == [.aarch64])
        // The format is what the profile says: qcow2 bytes read as raw have no GPT.
        #expect(DiskArch.inspect(path: qcow2, format: .raw).arches.isEmpty)
        let counting = CountingBytes(Array(try Data(contentsOf: URL(fileURLWithPath: qcow2))))
        _ = DiskArch.inspect(image: counting, format: .qcow2)
        #expect(counting.total < 64 << 10, "read \(counting.total) bytes")
    }

    @Test("qcow2 images this reader doesn't follow are unknown with the reason: compressed clusters, a backing file, encryption",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")))
    func qcow2Unreadable() throws {
        let dir = try TempDir("qlt-darch")
        defer { dir.remove() }
        let raw = dir.path + "/disk.img"
        try Data(GPTImage(partitions: [(0, DPS.rootArm64, "root")]).bytes()).write(to: URL(fileURLWithPath: raw))
        let compressed = dir.path + "/c.qcow2"
        try run(["/usr/bin/qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, compressed])
        #expect(DiskArch.inspect(path: compressed, format: .qcow2) == .unknown(reason: "the qcow2 cluster at guest byte 512 is compressed"))
        let plain = dir.path + "/p.qcow2"
        try run(["/usr/bin/qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, plain])
        let overlay = dir.path + "/o.qcow2"
        try run(["/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", plain, overlay])
        #expect(DiskArch.inspect(path: overlay, format: .qcow2) == .unknown(reason: "a qcow2 image with a backing file (its unwritten clusters come from another image)"))
        // crypt_method (bytes 32-35) set to 2 (LUKS).
        var encrypted = Array(try Data(contentsOf: URL(fileURLWithPath: plain)))
        encrypted[35] = 2
        #expect(inspect(encrypted, .qcow2) == .unknown(reason: "an encrypted qcow2 image (crypt_method 2)"))
        // An external data file (incompatible feature bit 2).
        var external = Array(try Data(contentsOf: URL(fileURLWithPath: plain)))
        external[79] |= 1 << 2
        #expect(inspect(external, .qcow2) == .unknown(reason: "a qcow2 image with an external data file"))
        #expect(inspect(Array(repeating: 0, count: 4096), .qcow2) == .unknown(reason: "no qcow2 magic (QFI\\xfb) at byte 0"))
    }

    @Test("random damage to a qcow2 image's header and tables never crashes and never finds another answer",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")))
    func qcow2Mutations() throws {
        let dir = try TempDir("qlt-darch")
        defer { dir.remove() }
        let raw = dir.path + "/disk.img"
        try Data(GPTImage(partitions: [(0, DPS.rootArm64, "root")]).bytes()).write(to: URL(fileURLWithPath: raw))
        let qcow2 = dir.path + "/d.qcow2"
        try run(["/usr/bin/qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, qcow2])
        let good = Array(try Data(contentsOf: URL(fileURLWithPath: qcow2)))
        let expected = inspect(good, .qcow2)
        #expect(expected.arches == [.aarch64])
        var generator = SplitMix64(seed: 0xc0f2)
        for _ in 0..<400 {
            var bytes = good
            // The header and the L1/L2 tables live in the first clusters.
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                bytes[Int.random(in: 0..<min(good.count, 5 * 4096), using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            let found = inspect(bytes, .qcow2)
            if found != expected, case .partitions = found { Issue.record("damage changed the answer to \(found)") }
        }
    }

    // MARK: validation

    @Test("a disk made for another arch is a problem at its path, naming the partition type and the fix")
    func validatorMismatch() throws {
        #expect(GoldenFiles.ready)
        let dir = try TempDir("qlt-darch")
        defer { dir.remove() }
        let disk = dir.path + "/arm.img"
        try Data(GPTImage(partitions: [(1, DPS.rootArm64, "root")]).bytes()).write(to: URL(fileURLWithPath: disk))
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.disks = [Profile.Disk(path: "/tmp/qlt-golden/disk.img"), Profile.Disk(path: disk, readOnly: true)]
        let expected = ProfileProblem(
            path: "disks[1].path",
            message: "the disk image \(disk) is made for aarch64: its partition 2 \"root\" has the root partition type for arm64 (b921b045-1df0-41c3-af44-4c6f280d3fae), but the guest arch is x86_64 (the host's: the profile sets no \"arch\")",
            fix: "use an x86_64 image, or set \"arch\": \"aarch64\" with an aarch64 kernel")
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [expected])
        #expect(planProblems(p, host: Hosts.x86KVM).contains(expected))
        p.arch = .x86_64
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir).map(\.message)
                == [expected.message.replacingOccurrences(of: "the guest arch is x86_64 (the host's: the profile sets no \"arch\")", with: "the profile's arch is x86_64")])
        // The same disk in an aarch64 guest is fine.
        p.arch = .aarch64
        p.machine = .virt
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [])
    }

    func run(_ argv: [String]) throws {
        try TestProcess.capture(argv)
    }
}

