/// What a disk image itself says about the architecture it was made for: the
/// GPT partition types of the Discoverable Partitions Specification (UAPI group),
/// which give root and /usr partitions one type GUID per architecture.
///
/// Reads a few KiB: the GPT header and partition array of a raw image, or of a
/// plain qcow2 image through its L1/L2 tables. Anything it can't read exactly
/// (no GPT, no such partition, a qcow2 with a backing file, compressed or
/// encrypted clusters, ...) is `.unknown`, never a guess.
package enum DiskArch {
    package enum Role: String, Sendable, Hashable {
        case root
        case usr = "/usr"
    }

    /// A partition whose type names an architecture.
    package struct Partition: Sendable, Hashable, CustomStringConvertible {
        /// 1-based GPT entry number (`/dev/vda<number>` in the guest).
        package var number: Int
        package var name: String
        package var typeGUID: String
        package var role: Role
        package var arch: Profile.Arch

        package var description: String {
            let label = name.isEmpty ? "" : " \"\(name)\""
            return "partition \(number)\(label) has the \(role.rawValue) partition type for \(Self.specName(arch)) (\(typeGUID))"
        }

        /// The architecture's name in the Discoverable Partitions Specification.
        static func specName(_ arch: Profile.Arch) -> String {
            arch == .x86_64 ? "x86-64" : "arm64"
        }
    }

    package enum Finding: Sendable, Hashable {
        /// Root or /usr partitions with an architecture's type; usually one arch, two on a multi-arch image.
        case partitions([Partition])
        /// The image says nothing this reader can trust; the reason says why.
        case unknown(reason: String)

        /// The architectures the image was made for; empty when unknown.
        package var arches: Set<Profile.Arch> {
            if case .partitions(let found) = self { return Set(found.map(\.arch)) }
            return []
        }
    }

    /// Root and /usr partition types per architecture (Discoverable Partitions Specification).
    static let partitionTypes: [String: (Role, Profile.Arch)] = [
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": (.root, .x86_64),
        "b921b045-1df0-41c3-af44-4c6f280d3fae": (.root, .aarch64),
        "8484680c-9521-48c6-9c11-b0720656f69e": (.usr, .x86_64),
        "b0e01050-ee5f-4390-949a-9101b17104e9": (.usr, .aarch64),
    ]

    /// Reads the image file at `path` as `format` describes it.
    package static func inspect(path: String, format: Profile.DiskFormat) -> Finding {
        guard let file = FileBytes(path: path) else { return .unknown(reason: "cannot open \(path)") }
        return inspect(image: file, format: format)
    }

    /// The same over any bytes: pure.
    static func inspect(image: some DiskBytes, format: Profile.DiskFormat) -> Finding {
        do {
            let entries: [GPT.Entry]
            switch format {
            case .raw: entries = try GPT.entries(of: image)
            case .qcow2: entries = try GPT.entries(of: try QCOW2Guest(image))
            }
            let found = entries.compactMap { entry -> Partition? in
                guard let (role, arch) = partitionTypes[entry.typeGUID] else { return nil }
                return Partition(number: entry.number, name: entry.name, typeGUID: entry.typeGUID, role: role, arch: arch)
            }
            if found.isEmpty {
                return .unknown(reason: "a GPT disk with no root or /usr partition of a Discoverable Partitions type")
            }
            return .partitions(found)
        } catch {
            return .unknown(reason: error.reason)
        }
    }
}
