#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The raw socket calls the tests make, named so they don't collide with methods
/// called `close`/`send`, and with the Linux/Darwin differences in one place.
enum TestPOSIX {
    #if canImport(Darwin)
    static let streamType = SOCK_STREAM
    static let noSignal: Int32 = 0  // Darwin: SO_NOSIGPIPE is set on each socket instead
    #else
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let noSignal = Int32(MSG_NOSIGNAL)
    #endif

    static func noSigpipe(_ fd: Int32) {
        #if canImport(Darwin)
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    static func socketPair() -> (Int32, Int32)? {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, streamType, 0, &fds) == 0 else { return nil }
        noSigpipe(fds[0])
        noSigpipe(fds[1])
        return (fds[0], fds[1])
    }

    static func unixSocket() -> Int32 {
        let fd = socket(AF_UNIX, streamType, 0)
        if fd >= 0 { noSigpipe(fd) }
        return fd
    }

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        return address
    }

    static func bind(_ fd: Int32, path: String) -> Int32 {
        var address = address(path)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                #if canImport(Darwin)
                Darwin.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                #else
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                #endif
            }
        }
    }

    static func close(_ fd: Int32) {
        #if canImport(Darwin)
        _ = Darwin.close(fd)
        #else
        _ = Glibc.close(fd)
        #endif
    }

    static func listen(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        Darwin.listen(fd, 4)
        #else
        Glibc.listen(fd, 4)
        #endif
    }

    static func accept(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        let accepted = Darwin.accept(fd, nil, nil)
        #else
        let accepted = Glibc.accept(fd, nil, nil)
        #endif
        if accepted >= 0 { noSigpipe(accepted) }
        return accepted
    }

    static func send(_ fd: Int32, _ pointer: UnsafeRawPointer?, _ count: Int) -> Int {
        #if canImport(Darwin)
        Darwin.send(fd, pointer, count, noSignal)
        #else
        Glibc.send(fd, pointer, count, noSignal)
        #endif
    }

    static var errno: Int32 {
        #if canImport(Darwin)
        Darwin.errno
        #else
        Glibc.errno
        #endif
    }
}
