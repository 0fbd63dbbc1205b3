import Foundation
import LaunchSupport

/// An in-memory cpio archive in the "newc" format (magic `070701`), the format the
/// Linux kernel unpacks as an initramfs.
///
/// Output is a pure function of the entries and the order they were added: uid, gid
/// and mtime are 0 and inode numbers count up in entry order, so identical input gives
/// byte-identical archives (images are cached by content hash).
///
/// ```swift
/// var archive = CpioArchive()
/// try archive.addDirectory("/proc", mode: 0o755)
/// try archive.addFile("/init", contents: script, mode: 0o755)
/// try archive.addSymlink("/bin/sh", target: "busybox")
/// try archive.addCharacterDevice("/dev/console", major: 5, minor: 1, mode: 0o600)
/// let bytes = archive.finish()
/// ```
///
/// Paths may be written with or without a leading `/`; they are stored relative
/// (`dev/console`), as `find . | cpio -o -H newc` does. Adding an entry creates its
/// missing parent directories (mode 0755) first, once each, so a parent always comes
/// before its children in the archive. Adding a path again replaces the earlier entry
/// in place (a directory keeps its place and takes the new mode); turning a directory
/// into a non-directory or the reverse is an error.
package struct CpioArchive: Sendable, Hashable {
    /// What an entry is, with what it carries.
    package enum Kind: Sendable, Hashable {
        case directory
        case file(Data)
        case symlink(target: String)
        case characterDevice(major: UInt32, minor: UInt32)
    }

    /// One archive member. `path` is relative and normalised (`bin/sh`).
    package struct Entry: Sendable, Hashable {
        package var path: String
        package var kind: Kind
        /// Permission bits only (`0o7777` at most); the type bits come from `kind`.
        package var permissions: UInt32
    }

    /// The entries in archive order.
    package private(set) var entries: [Entry] = []
    private var indexByPath: [String: Int] = [:]

    /// Mode given to directories created implicitly as parents.
    package static let implicitDirectoryMode: UInt32 = 0o755

    package init() {}

    // MARK: Adding entries

    package mutating func addDirectory(_ path: String, mode: UInt32 = 0o755) throws(Error) {
        try add(path, .directory, mode: mode)
    }

    package mutating func addFile(_ path: String, contents: Data, mode: UInt32 = 0o644) throws(Error) {
        guard UInt64(contents.count) <= UInt64(UInt32.max) else {
            throw .fileTooLarge(path: path, bytes: contents.count)
        }
        try add(path, .file(contents), mode: mode)
    }

    /// Adds a regular file with the bytes of a host file.
    package mutating func addFile(_ path: String, contentsOf source: URL, mode: UInt32 = 0o644) throws(Error) {
        let contents: Data
        do {
            contents = try Data(contentsOf: source, options: .mappedIfSafe)
        } catch {
            throw .unreadableSource(source, reason: "\(error.localizedDescription)")
        }
        try addFile(path, contents: contents, mode: mode)
    }

    /// Adds a symbolic link. The target is stored as given (it may be relative and may
    /// contain `..`); it must not be empty or contain NUL.
    package mutating func addSymlink(_ path: String, target: String) throws(Error) {
        guard !target.isEmpty, !target.utf8.contains(0) else {
            throw .invalidSymlinkTarget(path: path, target: target)
        }
        guard target.utf8.count < Self.pathMax else {
            throw .pathTooLong(target, bytes: target.utf8.count)
        }
        // Links carry 0777; the kernel ignores a symlink's own permissions.
        try add(path, .symlink(target: target), mode: 0o777)
    }

    package mutating func addCharacterDevice(
        _ path: String, major: UInt32, minor: UInt32, mode: UInt32 = 0o600
    ) throws(Error) {
        try add(path, .characterDevice(major: major, minor: minor), mode: mode)
    }

    /// The entry stored at `path`, if any.
    package func entry(at path: String) -> Entry? {
        guard let normal = try? Self.normalize(path), let index = indexByPath[normal] else { return nil }
        return entries[index]
    }

    private mutating func add(_ path: String, _ kind: Kind, mode: UInt32) throws(Error) {
        guard mode <= 0o7777 else { throw .invalidMode(path: path, mode: mode) }
        let normal = try Self.normalize(path)
        let components = normal.split(separator: "/", omittingEmptySubsequences: true)

        // Parents first, each once, so the unpacker always finds the directory it
        // writes into.
        var parent = ""
        for component in components.dropLast() {
            parent = parent.isEmpty ? String(component) : parent + "/" + component
            if let index = indexByPath[parent] {
                guard case .directory = entries[index].kind else {
                    throw .parentNotADirectory(path: normal, parent: parent)
                }
            } else {
                append(Entry(path: parent, kind: .directory, permissions: Self.implicitDirectoryMode))
            }
        }

        let entry = Entry(path: normal, kind: kind, permissions: mode)
        if let index = indexByPath[normal] {
            let wasDirectory = entries[index].kind == .directory
            let isDirectory = kind == .directory
            guard wasDirectory == isDirectory else {
                throw .conflictingEntry(path: normal, existing: entries[index].kind.name, new: kind.name)
            }
            entries[index] = entry
        } else {
            append(entry)
        }
    }

    private mutating func append(_ entry: Entry) {
        indexByPath[entry.path] = entries.count
        entries.append(entry)
    }

    // MARK: Paths

    /// Linux's PATH_MAX; the kernel's initramfs unpacker skips longer names.
    static let pathMax = 4096

    /// `"/dev//console"` → `"dev/console"`; rejects NUL, `..`, and the root itself.
    static func normalize(_ path: String) throws(Error) -> String {
        if path.utf8.contains(0) { throw .invalidPath(path, reason: "it contains a NUL byte") }
        var parts: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": throw .invalidPath(path, reason: "it has a '..' component")
            default: parts.append(component)
            }
        }
        guard !parts.isEmpty else {
            throw .invalidPath(path, reason: "it names the archive root; the root directory exists already")
        }
        let normal = parts.joined(separator: "/")
        // The name is stored with a NUL terminator.
        guard normal.utf8.count + 1 <= pathMax else { throw .pathTooLong(path, bytes: normal.utf8.count) }
        return normal
    }

    // MARK: Output

    /// The archive bytes, ending with the `TRAILER!!!` entry.
    package func finish() -> Data {
        var size = 0
        for entry in entries {
            size += Self.alignedHeaderAndName(nameBytes: entry.path.utf8.count + 1)
            size += Self.aligned(entry.kind.dataCount)
        }
        size += Self.alignedHeaderAndName(nameBytes: Self.trailerName.utf8.count + 1)

        var out = Data()
        out.reserveCapacity(size)
        for (index, entry) in entries.enumerated() {
            let data: Data
            var rdev: (UInt32, UInt32) = (0, 0)
            switch entry.kind {
            case .directory: data = Data()
            case .file(let contents): data = contents
            case .symlink(let target): data = Data(target.utf8)
            case .characterDevice(let major, let minor):
                data = Data()
                rdev = (major, minor)
            }
            Self.appendHeader(
                to: &out,
                inode: UInt32(index + 1),
                mode: entry.kind.typeBits | entry.permissions,
                links: entry.kind == .directory ? 2 : 1,
                fileSize: UInt32(data.count),
                rdev: rdev,
                name: entry.path
            )
            out.append(data)
            Self.pad(&out)
        }
        Self.appendHeader(
            to: &out, inode: 0, mode: 0, links: 1, fileSize: 0, rdev: (0, 0), name: Self.trailerName)
        return out
    }

    /// Writes `finish()` to `url` atomically (temporary file, then rename).
    package func write(to url: URL) throws(Error) {
        do {
            try AtomicFile.write(finish(), to: url.path)
        } catch {
            throw .writeFailed(url, reason: "\(error.localizedDescription)")
        }
    }

    static let magic = "070701"
    static let trailerName = "TRAILER!!!"
    static let headerSize = 110

    static func aligned(_ count: Int) -> Int { (count + 3) & ~3 }
    static func alignedHeaderAndName(nameBytes: Int) -> Int { aligned(headerSize + nameBytes) }

    private static func appendHeader(
        to out: inout Data, inode: UInt32, mode: UInt32, links: UInt32, fileSize: UInt32,
        rdev: (UInt32, UInt32), name: String
    ) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [
            inode, mode, 0 /* uid */, 0 /* gid */, links, 0 /* mtime */, fileSize,
            0, 0, /* major/minor of the device holding the file */
            rdev.0, rdev.1,
            UInt32(nameBytes.count),
            0, /* check: only used by the "070702" crc format */
        ]
        out.append(contentsOf: Array(magic.utf8))
        for field in fields { out.append(contentsOf: hex8(field)) }
        out.append(contentsOf: nameBytes)
        pad(&out)
    }

    /// Eight upper-case hex digits, as GNU cpio writes them.
    private static func hex8(_ value: UInt32) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return (0..<8).reversed().map { digits[Int((value >> (UInt32($0) * 4)) & 0xF)] }
    }

    /// Zero-pads to a 4-byte boundary. The archive starts at offset 0 of `out`, so the
    /// count is the position.
    private static func pad(_ out: inout Data) {
        let extra = aligned(out.count) - out.count
        if extra > 0 { out.append(contentsOf: [UInt8](repeating: 0, count: extra)) }
    }
}

extension CpioArchive.Kind {
    /// The S_IFMT bits of st_mode.
    var typeBits: UInt32 {
        switch self {
        case .directory: 0o040000
        case .file: 0o100000
        case .symlink: 0o120000
        case .characterDevice: 0o020000
        }
    }

    var dataCount: Int {
        switch self {
        case .file(let data): data.count
        case .symlink(let target): target.utf8.count
        default: 0
        }
    }

    var name: String {
        switch self {
        case .directory: "directory"
        case .file: "regular file"
        case .symlink: "symlink"
        case .characterDevice: "character device"
        }
    }
}
