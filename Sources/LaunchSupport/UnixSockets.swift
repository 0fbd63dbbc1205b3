#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serving a Unix socket and passing fds over one (SCM_RIGHTS): what the console hub and
/// the exec server share. Linux only, like the modules that use it.
extension POSIX {
    /// A close-on-exec socket listening at `path`, readable and writable by this user only
    /// (0600). A socket file already at `path` that nobody answers on (left by a process
    /// that died) is replaced; one that answers is `EADDRINUSE`.
    package static func listeningSocket(path: String, backlog: Int32 = 16) -> Result<Int32, Errno> {
        let bytes = Array(path.utf8)
        guard bytes.count <= unixPathLimit else { return .failure(Errno(ENAMETOOLONG)) }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else { return .failure(Errno(EEXIST)) }
            if case .success(let probe) = connectedSocket(path: path, timeout: .seconds(1)) {
                closeFD(probe)
                return .failure(Errno(EADDRINUSE))
            }
            unlink(path)
        }
        let fd: Int32
        switch makeStreamSocket() {
        case .failure(let error): return .failure(error)
        case .success(let made): fd = made
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let error = Errno(errno)
            closeFD(fd)
            return .failure(error)
        }
        // bind(2) honours the umask; the socket is the VM's, so only this user may connect.
        _ = chmod(path, 0o600)
        guard listen(fd, backlog) == 0 else {
            let error = Errno(errno)
            closeFD(fd)
            unlink(path)
            return .failure(error)
        }
        return .success(fd)
    }

    /// Accepts one connection on `listener` (ready for it): a close-on-exec, non-blocking
    /// socket when `nonBlocking`; nil when there was none after all.
    package static func accept(_ listener: Int32, nonBlocking: Bool) -> Int32? {
        while true {
            // accept4 needs _GNU_SOURCE, which Glibc's module lacks: accept, then set the
            // flags (no child is spawned by the serving threads in between).
            let fd = Glibc.accept(listener, nil, nil)
            if fd < 0 && errno == EINTR { continue }
            guard fd >= 0 else { return nil }
            prepare(fd)
            if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            return fd
        }
    }

    /// Bytes of a control message header, padded as CMSG_ALIGN pads it.
    private static var controlHeaderSpace: Int { align(MemoryLayout<cmsghdr>.size) }
    private static func align(_ count: Int) -> Int {
        let word = MemoryLayout<Int>.size
        return (count + word - 1) & ~(word - 1)
    }

    /// Sends `bytes` with `fds` attached (SCM_RIGHTS) in one `sendmsg`, then the rest of
    /// `bytes` (if the socket took only part) without them. nil on success.
    package static func sendPassingFDs(_ socket: Int32, _ bytes: [UInt8], fds: [Int32]) -> Errno? {
        precondition(!bytes.isEmpty, "SCM_RIGHTS needs at least one byte of data")
        let dataCount = fds.count * MemoryLayout<Int32>.size
        let space = controlHeaderSpace + align(dataCount)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
        let header = control.assumingMemoryBound(to: cmsghdr.self)
        header.pointee.cmsg_len = controlHeaderSpace + dataCount
        header.pointee.cmsg_level = SOL_SOCKET
        header.pointee.cmsg_type = Int32(SCM_RIGHTS)
        fds.withUnsafeBytes { (control + controlHeaderSpace).copyMemory(from: $0.baseAddress!, byteCount: dataCount) }
        var sent = 0
        let result: Int = bytes.withUnsafeBytes { raw in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var message = msghdr()
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                message.msg_control = control
                message.msg_controllen = space
                while true {
                    let n = sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
                    if n < 0 && errno == EINTR { continue }
                    return n
                }
            }
        }
        guard result > 0 else { return Errno(errno) }
        sent = result
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return Errno(errno) }
            sent += n
        }
        return nil
    }

    /// One `recvmsg` of up to `maxBytes`, with the fds that came with it (close-on-exec,
    /// now this process's to close). Empty bytes: the peer hung up. More fds than
    /// `maxFDs` (truncated control data) are an error, and those that came are closed.
    package static func receivePassedFDs(_ socket: Int32, maxBytes: Int, maxFDs: Int) -> Result<(bytes: [UInt8], fds: [Int32]), Errno> {
        let space = controlHeaderSpace + align(maxFDs * MemoryLayout<Int32>.size)
        let control = UnsafeMutableRawPointer.allocate(byteCount: space, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: space)
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        var message = msghdr()
        let count: Int = buffer.withUnsafeMutableBytes { raw in
            var vector = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                message.msg_control = control
                message.msg_controllen = space
                while true {
                    let n = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                    if n < 0 && errno == EINTR { continue }
                    return n
                }
            }
        }
        guard count >= 0 else { return .failure(Errno(errno)) }
        var fds: [Int32] = []
        if message.msg_controllen >= controlHeaderSpace {
            let header = control.assumingMemoryBound(to: cmsghdr.self).pointee
            if header.cmsg_level == SOL_SOCKET && header.cmsg_type == Int32(SCM_RIGHTS) {
                let fdCount = (Int(header.cmsg_len) - controlHeaderSpace) / MemoryLayout<Int32>.size
                for index in 0..<fdCount {
                    fds.append((control + controlHeaderSpace + index * MemoryLayout<Int32>.size).load(as: Int32.self))
                }
            }
        }
        if message.msg_flags & Int32(MSG_CTRUNC) != 0 {
            for fd in fds { closeFD(fd) }
            return .failure(Errno(EMSGSIZE))
        }
        return .success((Array(buffer[0..<count]), fds))
    }
}
