import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A VM's private folder for sockets and logs: mode 0700, a short path, removed
/// when the VM ends unless the user asked to keep it.
public struct RuntimeDirectory: Sendable {
    public let path: String

    /// Makes `<base>/launch-XXXXXX` (six random characters) with mode 0700.
    public static func create(under base: String) throws(LaunchError) -> RuntimeDirectory {
        var template = Array("\(base)/launch-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            let err = errno
            var fix = "check that \(base) exists and is writable"
            if err == EROFS { fix = "\(base) is read-only: set \"runtimeDir\" in the profile to a writable folder" }
            if err == ENOSPC { fix = "\(base) is full: free space or set \"runtimeDir\" to another folder" }
            throw LaunchError(.hostProblem, "cannot create the runtime dir under \(base): \(String(cString: strerror(err)))", fix: fix)
        }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        // mkdtemp already makes it 0700; say so explicitly in case of an odd umask.
        chmod(path, 0o700)
        return RuntimeDirectory(path: path)
    }

    /// Removes the folder and everything in it.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Unix stream sockets, with the errors spelled out.
enum UnixSocket {
    /// Connects once; returns the fd or the errno.
    static func connect(path: String) -> Result<Int32, Errno32> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(Errno32(errno)) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            close(fd)
            return .failure(Errno32(ENAMETOOLONG))
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let err = errno
            close(fd)
            return .failure(Errno32(err))
        }
        return .success(fd)
    }
}

struct Errno32: Error, CustomStringConvertible {
    var code: Int32
    init(_ code: Int32) { self.code = code }
    var description: String { String(cString: strerror(code)) }
}
