import Foundation
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that answers each connection with `reply` (nothing: it only
/// accepts and closes, as QEMU's user-mode forward does when nothing listens in the guest).
private final class Answerer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let thread: Thread

    init(reply: String?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fd = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(listener, 4) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        thread = Thread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                if let reply { _ = reply.withCString { write(client, $0, strlen($0)) } }
                close(client)
            }
        }
        thread.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

@Suite("A forwarded port is up when it answers, not when it accepts")
struct ReadinessProbeTests {
    @Test("a port that accepts and closes (QEMU's forward with nothing listening in the guest) is not up; one that sends the banner is; another banner is not")
    func answersNotAccepts() throws {
        let silent = try Answerer(reply: nil)
        defer { silent.stop() }
        #expect(!ReadinessProbe.answers(address: "127.0.0.1", port: silent.port, banner: nil))

        let sshd = try Answerer(reply: "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        defer { sshd.stop() }
        #expect(ReadinessProbe.answers(address: "127.0.0.1", port: sshd.port, banner: "SSH-2.0"))
        #expect(ReadinessProbe.answers(address: "0.0.0.0", port: sshd.port, banner: nil))
        #expect(!ReadinessProbe.answers(address: "127.0.0.1", port: sshd.port, banner: "HTTP/1.1"))
    }
}
