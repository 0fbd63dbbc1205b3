import Foundation
import QEMULaunch
import QMP
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a user meets through `launch run`: a port forward with traffic through it, an
/// ephemeral disk whose writes are gone afterwards, and qmp.sock for other tools.
@Suite("Devices a user reaches from the host (slow: boots guests under TCG)", .serialized)
struct GuestDevicesTests {
    /// A free TCP port on 127.0.0.1 (bound, then released for QEMU to take).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Connects to 127.0.0.1:`port`, sends `message`, and reads until the peer closes (or 5 s pass).
    static func exchange(port: Int, message: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { return nil }
        _ = message.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("bytes a host client sends through network.forwards reach a guest server, and its answer comes back")
    func portForwardTraffic() async throws {
        let folder = try Fixture.temporaryDirectory("fwd")
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try Self.freePort()
        let token = "token-\(UInt32.random(in: 0...UInt32.max))"
        // The guest's server answers the line it read, so the reply proves both directions.
        var profile = try Fixture.guestProfile("forward", command: [
            "sh", "-c", """
                mkdir -p /tmp && printf '#!/bin/sh\\nread line; echo "guest-read:$line"\\n' > /tmp/answer && chmod +x /tmp/answer && \
                ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && nc -l -p 8080 -e /tmp/answer
                """,
        ])
        profile.network = Profile.Network(mode: .user, forwards: [Profile.Forward(host: port, guest: 8080)])
        profile.runtimeDir = folder.path
        let url = folder.appendingPathComponent("forward.json")
        try JSONEncoder().encode(profile).write(to: url)
        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        launcher.arguments = ["run", url.path]
        let errors = Pipe()
        launcher.standardError = errors
        launcher.standardOutput = FileHandle.nullDevice
        try launcher.run()
        // Until the guest listens, QEMU accepts on the host side and then closes: retry.
        var received = ""
        for _ in 0..<600 where launcher.isRunning {
            if let text = Self.exchange(port: port, message: token + "\n"), !text.isEmpty {
                received = text
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(received == "guest-read:\(token)\n")
        if received.isEmpty { kill(launcher.processIdentifier, SIGTERM) }
        launcher.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(launcher.terminationStatus == 0, "\(stderr)")
    }

    @Test("an ephemeral disk takes the guest's writes for the run and leaves the image as it was")
    func ephemeralDiskDiscarded() throws {
        let folder = try Fixture.temporaryDirectory("eph")
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("disk.img")
        let original = Data(repeating: 0x5a, count: 1 << 20)
        try original.write(to: image)
        var profile = try Fixture.guestProfile("ephemeral", command: [
            "sh", "-c", "printf WRITTEN | dd of=/dev/vda conv=notrunc 2>/dev/null && sync && echo 3 > /proc/sys/vm/drop_caches; head -c 7 /dev/vda",
        ])
        profile.disks = [Profile.Disk(path: image.path, format: .raw, ephemeral: true)]
        profile.runtimeDir = folder.path
        let url = folder.appendingPathComponent("ephemeral.json")
        try JSONEncoder().encode(profile).write(to: url)
        let outcome = try CLITests.launch(["run", url.path])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == "WRITTEN", "the guest reads back its own write during the run")
        #expect(try Data(contentsOf: image) == original, "the image itself was written")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }.isEmpty,
                "the overlay's runtime dir is gone")
    }

    @Test("qmp.sock in the runtime dir serves a second client while the launcher's own connection keeps working")
    func secondQMPClient() async throws {
        let folder = try Fixture.temporaryDirectory("qmp2")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = Profile(name: "qmp2")
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try Fixture.kernel
        profile.initrd = try Fixture.initramfs(script: "exec sleep 600", in: folder)
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.shutdown = TimeLimit(.seconds(3))
        let machine = try await Machine.start(profile)
        try await machine.resume()
        let other = try await QMP.Client.connect(unixPath: machine.runtimeDirectory.path + "/qmp.sock", timeout: .seconds(30))
        #expect(try await other.queryStatus().running)
        try await other.stop()
        #expect(try await machine.qmp.queryStatus().status == "paused", "the launcher sees what the other client did")
        try await machine.qmp.cont()
        #expect(try await other.queryStatus().running)
        other.close()
        let outcome = await machine.shutdown(skipACPI: true)
        #expect(outcome.step == .qmpQuit, "\(outcome)")
    }
}
