import Foundation

extension CpioArchive {
    /// Why an entry could not be added or the archive could not be written.
    package enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        /// The path has a NUL byte or a `..` component, or names the root.
        case invalidPath(String, reason: String)
        /// The stored name would exceed Linux's PATH_MAX (4096 bytes with its NUL).
        case pathTooLong(String, bytes: Int)
        /// More than the permission bits (`0o7777`) were given.
        case invalidMode(path: String, mode: UInt32)
        /// newc stores sizes in 32 bits.
        case fileTooLarge(path: String, bytes: Int)
        case invalidSymlinkTarget(path: String, target: String)
        /// A directory would become a non-directory or the reverse.
        case conflictingEntry(path: String, existing: String, new: String)
        /// An ancestor of the path is already in the archive as a non-directory.
        case parentNotADirectory(path: String, parent: String)
        case unreadableSource(URL, reason: String)
        case writeFailed(URL, reason: String)

        package var description: String {
            switch self {
            case .invalidPath(let path, let reason):
                "cpio: can't add \(displayQuoted(path)): \(reason); give a path inside the archive without '..' or NUL"
            case .pathTooLong(let path, let bytes):
                "cpio: \(displayQuoted(String(path.prefix(60))))… is \(bytes) bytes long; the kernel skips names over 4095 bytes, use a shorter path"
            case .invalidMode(let path, let mode):
                "cpio: mode 0o\(String(mode, radix: 8)) for \(displayQuoted(path)) has more than permission bits; give at most 0o7777 (the entry type sets the rest)"
            case .fileTooLarge(let path, let bytes):
                "cpio: \(displayQuoted(path)) is \(bytes) bytes; the newc format stores at most 4 GiB - 1 per file, ship it on a disk or share instead"
            case .invalidSymlinkTarget(let path, let target):
                "cpio: symlink \(displayQuoted(path)) has an invalid target \(displayQuoted(target)); a target must be non-empty and have no NUL"
            case .conflictingEntry(let path, let existing, let new):
                "cpio: \(displayQuoted(path)) is already a \(existing) in the archive and can't become a \(new); use another path"
            case .parentNotADirectory(let path, let parent):
                "cpio: can't add \(displayQuoted(path)): its parent \(displayQuoted(parent)) is in the archive as a non-directory; add the entry under the real directory path"
            case .unreadableSource(let url, let reason):
                "cpio: can't read \(url.path): \(reason)"
            case .writeFailed(let url, let reason):
                "cpio: can't write the archive to \(url.path): \(reason); check that the folder exists and is writable"
            }
        }
    }
}

/// `"a b"` with any control characters made visible, for error messages.
func displayQuoted(_ string: String) -> String {
    var out = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\0": out += "\\0"
        case "\n": out += "\\n"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
