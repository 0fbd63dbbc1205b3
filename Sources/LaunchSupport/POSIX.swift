#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The socket, errno and thread calls QMP and QEMULaunch share, with the
/// Linux/Darwin differences in one place. `package` access: our modules' plumbing,
/// not API for importers.
package enum POSIX {
    /// Usable bytes of `sockaddr_un.sun_path` (one is the terminating NUL):
    /// 107 on Linux, 103 on macOS.
    package static let unixPathLimit = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// `send(2)` flags: never block (the caller may be on the cooperative pool), and
    /// on Linux never raise SIGPIPE (Darwin uses SO_NOSIGPIPE instead).
    #if canImport(Darwin)
    package static let sendFlags: Int32 = MSG_DONTWAIT
    #else
    package static let sendFlags: Int32 = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
    #endif

    /// This thread's errno.
    package static var errno: Int32 {
        #if canImport(Glibc) || canImport(Musl)
        return Glibc.errno
        #else
        return Darwin.errno
        #endif
    }

    /// A new close-on-exec stream socket of `domain`; returns errno on failure.
    package static func makeStreamSocket() -> Result<Int32, Errno> {
        #if canImport(Darwin)
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #endif
        guard fd >= 0 else { return .failure(Errno(errno)) }
        prepare(fd)
        return .success(fd)
    }

    /// A connected pair of close-on-exec stream sockets (the wake channel).
    package static func makeSocketPair() -> Result<(Int32, Int32), Errno> {
        var fds: [Int32] = [-1, -1]
        #if canImport(Darwin)
        let rc = socketpair(AF_UNIX, SOCK_STREAM, 0, &fds)
        #else
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        #endif
        guard rc == 0 else { return .failure(Errno(errno)) }
        prepare(fds[0])
        prepare(fds[1])
        return .success((fds[0], fds[1]))
    }

    /// Close-on-exec, so children spawned later (QEMU, virtiofsd) don't inherit the
    /// monitor; on Darwin, no SIGPIPE from writes to a closed peer.
    package static func prepare(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        #if canImport(Darwin)
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Whether `fd` is an open descriptor of this process.
    package static func isOpen(_ fd: Int32) -> Bool {
        fcntl(fd, F_GETFD) != -1
    }

    /// Blocking `connect(2)` to a Unix socket path. Linux bounds the wait (a full
    /// backlog) by SO_SNDTIMEO, which is set to `timeout` first.
    package static func connect(_ fd: Int32, path: String, timeout: Duration) -> Errno? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        #if canImport(Darwin)
        address.sun_len = UInt8(MemoryLayout<sockaddr_un>.size)
        #endif
        let bytes = Array(path.utf8)
        guard bytes.count <= unixPathLimit else { return Errno(ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        // At least 1 ms: a zero SO_SNDTIMEO means "wait forever".
        var limit = timeval(max(timeout, .milliseconds(1)))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                Glibc_or_Darwin_connect(fd, sockaddrPointer, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        var none = timeval()
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        return rc == 0 ? nil : Errno(errno)
    }

    /// A new close-on-exec socket connected to the Unix socket at `path` (no
    /// deadline: for sockets that are known to be listening); the fd or the errno.
    package static func connectedSocket(path: String, timeout: Duration = .seconds(10)) -> Result<Int32, Errno> {
        switch makeStreamSocket() {
        case .failure(let error):
            return .failure(error)
        case .success(let fd):
            if let error = connect(fd, path: path, timeout: timeout) {
                _ = closeFD(fd)
                return .failure(error)
            }
            return .success(fd)
        }
    }

    /// close(2), named so it doesn't collide with methods called `close`.
    @discardableResult
    package static func closeFD(_ fd: Int32) -> Int32 {
        #if canImport(Glibc)
        return Glibc.close(fd)
        #elseif canImport(Musl)
        return Musl.close(fd)
        #else
        return Darwin.close(fd)
        #endif
    }

    /// Sends what the socket takes now without blocking; returns the count sent,
    /// 0 when the socket buffer is full, or the error.
    package static func sendNow(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        while true {
            let sent = send(fd, bytes.baseAddress, bytes.count, sendFlags)
            if sent >= 0 { return .success(sent) }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return .success(0) }
            return .failure(Errno(code))
        }
    }

    /// An errno value, as a typed error.
    package struct Errno: Error, Sendable, Hashable, CustomStringConvertible {
        /// The errno number.
        package var code: Int32
        /// The error for errno `code`.
        package init(_ code: Int32) { self.code = code }
        /// "No such file or directory (errno 2)".
        package var text: String { "\(POSIX.describe(code)) (errno \(code))" }
        /// "No such file or directory".
        package var description: String { POSIX.describe(code) }
    }

    /// strerror(code) as a String.
    package static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}

extension timeval {
    /// `duration` as a timeval (negative as zero), for socket timeouts.
    package init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init()
        tv_sec = .init(max(0, seconds))
        tv_usec = .init(max(0, attoseconds / 1_000_000_000_000))
    }
}

@inline(__always)
private func Glibc_or_Darwin_connect(
    _ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t
) -> Int32 {
    #if canImport(Glibc)
    return Glibc.connect(fd, address, length)
    #elseif canImport(Musl)
    return Musl.connect(fd, address, length)
    #else
    return Darwin.connect(fd, address, length)
    #endif
}

// MARK: - Threads

/// Starts a detached POSIX thread running `body`. A plain pthread rather than
/// Foundation's `Thread` keeps this module free of Foundation.
package func startDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let context = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    // Room for the JSON parser's recursion (bounded by JSONParser.maxDepth) in debug builds.
    pthread_attr_setstacksize(&attributes, 4 << 20)
    #if canImport(Darwin)
    var thread: pthread_t? = nil
    #else
    var thread = pthread_t()
    #endif
    let rc = pthread_create(
        &thread, &attributes,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(unwrap(raw)).takeRetainedValue()
            #if canImport(Darwin)
            pthread_setname_np(box.name)
            #else
            // Linux's pthread_setname_np needs _GNU_SOURCE, which Glibc's module lacks;
            // the thread's own comm file does the same (15 bytes kept). Without a name
            // it would show its creator's (a Dispatch worker's) in ps and top.
            let fd = open("/proc/thread-self/comm", O_WRONLY)
            if fd >= 0 {
                let name = Array(box.name.utf8.prefix(15))
                _ = name.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
            #endif
            box.body()
            return nil
        }, context)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(context).release()
        return false
    }
    return true
}

/// Darwin passes the thread argument as non-optional, Linux as optional.
private func unwrap(_ pointer: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer { pointer! }
