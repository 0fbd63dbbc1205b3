#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files whole or not at all: the bytes go to a temporary file in the same
/// folder, named uniquely for this call (two launchers building the same cache entry
/// at once never share one), then `rename(2)` puts it in place, so a reader sees the
/// old file or the new one, never half of one.
package enum AtomicFile {
    /// What failed, for a message: "create", "write", "rename".
    package struct Failure: Error, Sendable, CustomStringConvertible {
        /// The step that failed.
        package var step: String
        /// The file it failed on (the temporary one, or the destination for the rename).
        package var path: String
        /// Why.
        package var errno: POSIX.Errno
        /// "can't STEP PATH: ERRNO".
        package var description: String { "can't \(step) \(path): \(errno)" }
    }

    /// A hidden name next to `path` that no other call, thread or process picks:
    /// `.NAME.PID-RANDOM.tmp`. For files a tool writes before they are renamed into place.
    package static func temporaryPath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let random = String(UInt64.random(in: .min ... .max), radix: 36)
        return "\(folder).\(name).\(getpid())-\(random).tmp"
    }

    /// Writes `bytes` to `path` (mode `mode`) through a unique temporary file and a rename.
    package static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o644) throws(Failure) {
        let result: Result<Void, Failure>? = bytes.withContiguousStorageIfAvailable { buffer in
            write(UnsafeRawBufferPointer(buffer), to: path, mode: mode)
        }
        switch result ?? Array(bytes).withUnsafeBytes({ write($0, to: path, mode: mode) }) {
        case .success: return
        case .failure(let failure): throw failure
        }
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to path: String, mode: mode_t) -> Result<Void, Failure> {
        let temporary = temporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { return .failure(Failure(step: "create", path: temporary, errno: POSIX.Errno(POSIX.errno))) }
        if let error = writeAll(fd, bytes) {
            POSIX.closeFD(fd)
            unlink(temporary)
            return .failure(Failure(step: "write", path: temporary, errno: error))
        }
        // The umask may have narrowed `mode` at open.
        _ = fchmod(fd, mode)
        POSIX.closeFD(fd)
        guard rename(temporary, path) == 0 else {
            let error = POSIX.Errno(POSIX.errno)
            unlink(temporary)
            return .failure(Failure(step: "rename a temporary file to", path: path, errno: error))
        }
        return .success(())
    }
}

/// Writes all of `bytes` to `fd`; the errno when it can't. (Outside `AtomicFile`, whose
/// own `write` would shadow the system call's name.)
private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> POSIX.Errno? {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 && POSIX.errno == EINTR { continue }
        guard n > 0 else { return POSIX.Errno(n < 0 ? POSIX.errno : EIO) }
        offset += n
    }
    return nil
}
