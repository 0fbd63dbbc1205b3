import Foundation

extension Profile {
    /// The guest's root filesystem when the guest kit runs a command in it (`"rootfs"`).
    ///
    /// The guest kit's init stays in charge: it boots from its own initramfs, mounts this
    /// root, puts scratch tmpfs and overlays where programs write, and runs each command
    /// in it with `chroot`. Without `rootfs` the command runs in the busybox initramfs.
    ///
    /// JSON: `"host"`, a folder path, `{"disk": N}`, or an object
    /// `{"path": "host" | FOLDER, "disk": N, "rwdirs": [..], "overlay": true, "transport": "9p"}`.
    public struct RootFS: Sendable, Hashable {
        /// Where the root filesystem comes from.
        public enum Source: Sendable, Hashable {
            /// The host's `/`, read-only.
            case host
            /// A folder holding a root filesystem (debootstrap tree, unpacked container image), read-only.
            case folder(String)
            /// The root partition (Discoverable Partitions type for the guest's arch) of `disks[N]`.
            case disk(Int)
        }
        /// The root itself: the host's, a folder, or a disk's root partition.
        public var source: Source
        /// Host folders shared read-write at the same path in the guest: the guest's writes there
        /// land in the host's files (host root and folder roots only).
        public var rwdirs: [String] = []
        /// A throw-away tmpfs overlay over the whole root: every path writable in the guest,
        /// every write discarded when the VM ends; the host's files are never written.
        public var overlay: Bool = false
        /// How a host or folder root (and the rwdirs) reach the guest: virtiofs or 9p; nil =
        /// virtiofs where this host can serve it, else 9p (said in the launch's rootfs line).
        public var transport: ShareTransport?

        /// A root from `source`; by default no read-write folders, no overlay, the transport chosen per host.
        public init(_ source: Source, rwdirs: [String] = [], overlay: Bool = false, transport: ShareTransport? = nil) {
            self.source = source
            self.rwdirs = rwdirs
            self.overlay = overlay
            self.transport = transport
        }

        /// `host`, `disk:N` or a folder, as the CLI's `--rootfs` takes it.
        package init?(argument: String) {
            if argument == "host" {
                self.init(.host)
            } else if argument.hasPrefix("disk:"), let index = Int(argument.dropFirst(5)) {
                self.init(.disk(index))
            } else if !argument.isEmpty {
                self.init(.folder(argument))
            } else {
                return nil
            }
        }

        package var summary: String {
            switch source {
            case .host: return "the host's /"
            case .folder(let path): return path
            case .disk(let index): return "disks[\(index)]'s root partition"
            }
        }

        /// Problems with this root in `profile`, with their JSON paths; `files` says which of
        /// its folders exist on the host.
        package func problems(in profile: Profile, files: HostFiles) -> [ProfileProblem] {
            var problems: [ProfileProblem] = []
            func add(_ path: String, _ message: String, _ fix: String? = nil) {
                problems.append(ProfileProblem(path: path, message: message, fix: fix))
            }
            switch source {
            case .host: break
            case .folder(let path):
                if !path.hasPrefix("/") {
                    add("rootfs", "the root folder \"\(path)\" is not an absolute path", "use an absolute path, \"host\", or {\"disk\": N}")
                } else if !files.isDirectory(path) {
                    add("rootfs", "the root folder \(path) does not exist", "make it (debootstrap, mmdebstrap, an unpacked image) or fix the path")
                }
            case .disk(let index):
                if !profile.disks.indices.contains(index) {
                    add("rootfs.disk", "there is no disks[\(index)] (the profile has \(profile.disks.count) disk\(profile.disks.count == 1 ? "" : "s"))", "add the disk to \"disks\" or fix the index")
                }
                if !rwdirs.isEmpty {
                    add("rootfs.rwdirs", "rwdirs are host folders shared into a host or folder root; a disk root has its own files", "remove rwdirs, or add a share with a guestPath")
                }
            }
            for (i, dir) in rwdirs.enumerated() {
                if !dir.hasPrefix("/") {
                    add("rootfs.rwdirs[\(i)]", "\"\(dir)\" is not an absolute path", "use an absolute host path")
                } else if !files.isDirectory(dir) {
                    add("rootfs.rwdirs[\(i)]", "the folder \(dir) does not exist", "make it or fix the path")
                }
            }
            return problems
        }
    }
}

extension Profile.RootFS: Codable {
    /// Decodes `rootfs`: `"host"`, a folder path, `{"disk": N}` or the object form, recording
    /// every problem with its JSON path.
    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            self.init(text == "host" ? .host : .folder(text))
            return
        }
        let r = try FieldReader(decoder, allowedKeys: ["path", "disk", "rwdirs", "overlay", "transport"],
                                what: "a root filesystem (\"host\", a folder, or {\"disk\": N})")
        let path = r.optional("path", String.self, expected: "\"host\" or a folder path")
        let disk = r.optional("disk", Int.self, expected: "the index of a disk in \"disks\"")
        var source = Source.host
        switch (path, disk) {
        case (let path?, nil): source = path == "host" ? .host : .folder(path)
        case (nil, let disk?): source = .disk(disk)
        default:
            r.record(nil, "a root filesystem needs exactly one of \"path\" and \"disk\"", fix: "use {\"path\": \"host\"}, {\"path\": FOLDER} or {\"disk\": N}")
        }
        let rwdirs = r.optional("rwdirs", [String].self, expected: "an array of host folder paths") ?? []
        let overlay = r.optional("overlay", Bool.self, expected: "true or false") ?? false
        let transport: Profile.ShareTransport? = r.choice("transport")
        try r.finish()
        self.init(source, rwdirs: rwdirs, overlay: overlay, transport: transport)
    }

    /// Encodes the root in the shortest form that says it: `"host"`, the folder, `{"disk": N}`,
    /// or the object form when it has more.
    public func encode(to encoder: any Encoder) throws {
        if rwdirs.isEmpty, !overlay, transport == nil {
            switch source {
            case .host:
                var c = encoder.singleValueContainer()
                try c.encode("host")
                return
            case .folder(let path):
                var c = encoder.singleValueContainer()
                try c.encode(path)
                return
            case .disk: break
            }
        }
        var c = encoder.container(keyedBy: AnyKey.self)
        switch source {
        case .host: try c.encode("host", forKey: AnyKey("path"))
        case .folder(let path): try c.encode(path, forKey: AnyKey("path"))
        case .disk(let index): try c.encode(index, forKey: AnyKey("disk"))
        }
        if !rwdirs.isEmpty { try c.encode(rwdirs, forKey: AnyKey("rwdirs")) }
        if overlay { try c.encode(overlay, forKey: AnyKey("overlay")) }
        try c.encodeIfPresent(transport, forKey: AnyKey("transport"))
    }
}
