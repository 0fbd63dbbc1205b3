import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// A VM's private folder for sockets and logs (``Machine/runtimeDirectory``): mode 0700,
/// a path short enough for Unix socket names, removed when the VM ends unless
/// ``Machine/Options/keepRuntimeDir`` is set. Other tools can talk to the VM through its
/// `qmp.sock` (a second QMP monitor) while it runs.
public struct RuntimeDirectory: Sendable {
    /// The folder's absolute path (`<base>/launch-XXXXXX`); `qmp.sock`, `console.sock`,
    /// `console.log`, `qemu.log` and the other sockets and logs are in it.
    public let path: String

    /// Makes `<base>/launch-XXXXXX` (six random characters, `newName()`) with mode 0700.
    package static func create(under base: String) throws(LaunchError) -> RuntimeDirectory {
        try create(at: base + "/" + newName())
    }

    /// A fresh name for a runtime dir: `launch-` and six random letters and digits (62^6
    /// names; socket paths are checked against this length).
    package static func newName() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return "launch-" + String((0..<6).map { _ in alphabet.randomElement()! })
    }

    /// Makes the folder at `path` (a name from `newName()` under a base) with mode 0700;
    /// fails when something is there already, so a planned path is never someone else's folder.
    package static func create(at path: String) throws(LaunchError) -> RuntimeDirectory {
        guard mkdir(path, 0o700) == 0 else {
            let err = errno
            let base = (path as NSString).deletingLastPathComponent
            throw LaunchError(.hostProblem, "cannot create the runtime dir under \(base): \(POSIX.describe(err))", fix: fix(creatingIn: base, errno: err))
        }
        // mkdir applies the umask: say 0700 explicitly.
        chmod(path, 0o700)
        return RuntimeDirectory(path: path)
    }

    /// Takes `path` as the runtime dir: an existing folder must be this user's with mode
    /// 0700 (so no one else can reach its sockets); a missing one is made like ``create(at:)``.
    package static func adopt(_ path: String) throws(LaunchError) -> RuntimeDirectory {
        var info = stat()
        guard lstat(path, &info) == 0 else { return try create(at: path) }
        guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), (info.st_mode & 0o077) == 0 else {
            throw LaunchError(.hostProblem, "the runtime dir \(path) is not a private folder of this user (mode 0700)",
                              fix: "remove it, or make it yours with chmod 700")
        }
        return RuntimeDirectory(path: path)
    }

    /// How to fix a failed mkdir in `base`.
    private static func fix(creatingIn base: String, errno err: Int32) -> String {
        if err == EROFS { return "\(base) is read-only: set \"runtimeDir\" in the profile to a writable folder" }
        if err == ENOSPC { return "\(base) is full: free space or set \"runtimeDir\" to another folder" }
        if err == EEXIST { return "try again (another runtime dir took the same random name)" }
        return "check that \(base) exists and is writable"
    }

    /// Removes the folder and everything in it.
    package func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
