import Foundation

/// The root partition of a disk image, for `"rootfs": {"disk": N}`: found through the
/// image's GPT by the Discoverable Partitions root type of the guest's arch, with the
/// filesystem's type and UUID read from its superblock (the guest finds the partition by
/// that UUID: virtio disks have no stable names across transports).
package enum DiskRoot {
    package struct Found: Sendable, Hashable {
        /// 1-based partition number (`/dev/vda<N>`).
        package var partition: Int
        /// The kernel's name for the filesystem (`ext4`, `xfs`, `btrfs`): the module to load and `mount -t`.
        package var filesystem: String
        /// The filesystem UUID, lower-case with dashes, as `findfs UUID=` takes it.
        package var uuid: String
    }

    static let rootTypes: [Profile.Arch: String] = [
        .x86_64: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        .aarch64: "b921b045-1df0-41c3-af44-4c6f280d3fae",
    ]

    /// Finds the root partition of the image at `path`, or says why there is none.
    package static func find(path: String, format: Profile.DiskFormat, arch: Profile.Arch) -> Result<Found, ProfileProblem> {
        guard let file = FileBytes(path: path) else {
            return .failure(ProfileProblem(path: "rootfs.disk", message: "cannot open \(path)", fix: "check the disk's path and permissions"))
        }
        switch format {
        case .raw: return find(image: file, arch: arch)
        case .qcow2:
            do { return find(image: try QCOW2Guest(file), arch: arch) } catch {
                return .failure(ProfileProblem(path: "rootfs.disk", message: "cannot read \(path) as qcow2: \(error.reason)"))
            }
        }
    }

    static func find(image: some DiskBytes, arch: Profile.Arch) -> Result<Found, ProfileProblem> {
        let entries: [GPT.Entry]
        do { entries = try GPT.entries(of: image) } catch {
            return .failure(ProfileProblem(path: "rootfs.disk", message: "no root partition: \(error.reason)",
                                           fix: "give the disk a GPT whose root partition has the Discoverable Partitions root type (sgdisk -t N:8304 for x86-64)"))
        }
        guard let type = rootTypes[arch], let entry = entries.first(where: { $0.typeGUID == type }) else {
            return .failure(ProfileProblem(path: "rootfs.disk", message: "the disk's GPT has no \(arch.rawValue) root partition (type \(rootTypes[arch] ?? "?"))",
                                           fix: "set the root partition's type (sgdisk -t N:\(arch == .x86_64 ? "8304" : "8305") IMAGE)"))
        }
        do {
            let start = entry.startByte
            // ext2/3/4: magic 0xEF53 at byte 56 of the superblock (1024 bytes in), UUID at 104.
            let ext = try image.read(at: start + 1024, count: 128)
            if ext.littleEndian(UInt16.self, at: 56) == 0xEF53 {
                return .success(Found(partition: entry.number, filesystem: "ext4", uuid: uuidString(Array(ext[104..<120]))))
            }
            // XFS: "XFSB" at the start, UUID at 32.
            let xfs = try image.read(at: start, count: 48)
            if xfs.starts(with: Array("XFSB".utf8)) {
                return .success(Found(partition: entry.number, filesystem: "xfs", uuid: uuidString(Array(xfs[32..<48]))))
            }
            // btrfs: "_BHRfS_M" at 64 KiB + 64, fsid at 64 KiB + 32.
            let btrfs = try image.read(at: start + 65536, count: 72)
            if Array(btrfs[64..<72]) == Array("_BHRfS_M".utf8) {
                return .success(Found(partition: entry.number, filesystem: "btrfs", uuid: uuidString(Array(btrfs[32..<48]))))
            }
        } catch {
            return .failure(ProfileProblem(path: "rootfs.disk", message: "cannot read root partition \(entry.number)'s superblock: \(error.reason)"))
        }
        return .failure(ProfileProblem(path: "rootfs.disk", message: "root partition \(entry.number) holds no ext4, xfs or btrfs filesystem",
                                       fix: "make one (mkfs.ext4 on the partition)"))
    }

    /// Superblock UUIDs are plain byte strings (no GUID byte swapping).
    static func uuidString(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let h = Array(hex)
        return [h[0..<8], h[8..<12], h[12..<16], h[16..<20], h[20..<32]].map { String($0) }.joined(separator: "-")
    }
}
