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

    /// Makes `<base>/launch-XXXXXX` (six random characters) with mode 0700.
    package static func create(under base: String) throws(LaunchError) -> RuntimeDirectory {
        var template = Array("\(base)/launch-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            let err = errno
            var fix = "check that \(base) exists and is writable"
            if err == EROFS { fix = "\(base) is read-only: set \"runtimeDir\" in the profile to a writable folder" }
            if err == ENOSPC { fix = "\(base) is full: free space or set \"runtimeDir\" to another folder" }
            throw LaunchError(.hostProblem, "cannot create the runtime dir under \(base): \(POSIX.describe(err))", fix: fix)
        }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        // mkdtemp already makes it 0700; say so explicitly in case of an odd umask.
        chmod(path, 0o700)
        return RuntimeDirectory(path: path)
    }

    /// Removes the folder and everything in it.
    package func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Unix stream sockets, with the errors spelled out (the POSIX layer QMP uses too).
enum UnixSocket {
    /// Connects once; returns the fd or the errno.
    static func connect(path: String) -> Result<Int32, Errno32> {
        POSIX.connectedSocket(path: path)
    }
}

typealias Errno32 = POSIX.Errno
