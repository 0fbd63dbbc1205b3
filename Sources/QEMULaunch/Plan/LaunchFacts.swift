import Foundation

/// Everything a plan depends on that had to be read from the host, as a value.
///
/// `Machine.prepare(_:options:for:)` gathers it (the kernel resolved, the host probed,
/// the profile's files looked at, the QEMU binary's capabilities read), and
/// `Planner.plan(_:options:)` turns it into a `Plan` without touching the host. A test
/// (or a tool planning for another host) builds one by hand.
public struct LaunchFacts: Sendable, Hashable {
    /// The profile as it will run: `"kernel": "auto"` already resolved to a file.
    public var profile: Profile
    /// The host the VM runs on: arch, accelerators, QEMU binaries, virtiofsd, firmware, limits.
    public var host: HostFacts
    /// What is at each host path the profile names, and what each disk image was made for.
    public var files: HostFiles
    /// What the QEMU binary the plan runs can do (read from its help output); nil = not read,
    /// and then the plan is not checked against it.
    public var capabilities: QEMUCapabilities?

    /// Facts from their parts; `files` describes the profile's paths (`HostFiles.read(for:host:)`).
    public init(profile: Profile, host: HostFacts, files: HostFiles, capabilities: QEMUCapabilities? = nil) {
        self.profile = profile
        self.host = host
        self.files = files
        self.capabilities = capabilities
    }
}

/// What the host has at the paths a profile names: files, folders, and what each disk
/// image says it was made for. Read once by `HostFiles.read(for:host:)`; the validator
/// and the planner only look things up here.
public struct HostFiles: Sendable, Hashable {
    /// What a path is on the host; a path that is not there has no entry.
    public enum Kind: String, Sendable, Hashable {
        case file
        case directory
    }

    /// Every looked-at path that exists, with what it is.
    public var kinds: [String: Kind]
    /// Per disk image path (existing files only): the architectures its partitions are for.
    package var diskImages: [String: DiskArch.Finding] = [:]

    /// Facts given by hand: `kinds` for the paths that exist (disk images then say nothing of their arch).
    public init(kinds: [String: Kind] = [:]) {
        self.kinds = kinds
    }

    /// Whether `path` is a file (or a device: anything but a folder).
    public func isFile(_ path: String) -> Bool { kinds[path] == .file }
    /// Whether `path` is a folder.
    public func isDirectory(_ path: String) -> Bool { kinds[path] == .directory }

    /// Looks at every host path `profile` names: the kernel, initrd, shares, disks (and
    /// the first KiB of each disk image, for its partitions' arch), a rootfs folder and its rwdirs.
    public static func read(for profile: Profile) -> HostFiles {
        var paths: [String] = []
        if let kernel = profile.kernel, kernel != "auto" { paths.append(kernel) }
        if let initrd = profile.initrd { paths.append(initrd) }
        paths += profile.shares.map(\.path)
        paths += profile.disks.map(\.path)
        if case .folder(let folder)? = profile.rootfs?.source { paths.append(folder) }
        paths += profile.rootfs?.rwdirs ?? []
        var files = HostFiles()
        for path in paths where !path.isEmpty && files.kinds[path] == nil {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            files.kinds[path] = isDirectory.boolValue ? .directory : .file
        }
        for disk in profile.disks where files.isFile(disk.path) && files.diskImages[disk.path] == nil {
            files.diskImages[disk.path] = DiskArch.inspect(path: disk.path, format: disk.format)
        }
        return files
    }
}
