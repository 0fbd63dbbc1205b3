import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// Waits until a VM running your own OS is up, as its profile's ``Profile/effectiveReadiness`` says.
package enum ReadinessProbe {
    /// Returns once `readiness` is seen; throws `.timeout` (with the console's last lines)
    /// when `deadline` passes first, `.qemuFailed` when the VM ends first.
    package static func wait(for readiness: Profile.Readiness, on machine: Machine, deadline: Duration) async throws(LaunchError) {
        let until = ContinuousClock.now + deadline
        let forward = readiness.port.flatMap { machine.profile.forward(toGuestPort: $0) }
        let what = readiness.consoleText.map { "a console line containing \"\($0)\"" }
            ?? "guest port \(readiness.port ?? 0) answering\(readiness.banner.map { " with \"\($0)\"" } ?? "") through host port \(forward?.host ?? 0)"
        func consoleDetails() -> [String] { machine.console.tail.lines(last: 15).map { "    \($0)" } }
        while true {
            if let end = machine.end {
                throw LaunchError(.qemuFailed, "the VM ended before it was up (waiting for \(what)): \(end)",
                                  details: ["  the console's last lines:"] + consoleDetails())
            }
            if let text = readiness.consoleText, machine.console.tail.lines().contains(where: { $0.contains(text) }) { return }
            if let forward, answers(address: forward.address, port: forward.host, banner: readiness.banner) { return }
            if ContinuousClock.now >= until {
                throw LaunchError(.timeout, "the VM was not up after \(formatDuration(deadline)) (timeouts.boot): still waiting for \(what)",
                                  fix: "raise timeouts.boot, or check the profile's \"ready\" against the console below",
                                  details: ["  the console's last lines:"] + consoleDetails())
            }
            try? await Task.sleep(for: .milliseconds(250))
            try LaunchError.checkCancellation("waiting for \(machine.profile.name) to be up")
        }
    }

    /// Whether a TCP connection to `address:port` receives bytes (starting with `banner`)
    /// within 2 s. Receiving is the test, not connecting: QEMU's user-mode network accepts a
    /// forwarded connection even when nothing listens in the guest, then closes it (QEMU 7.2).
    package static func answers(address: String, port: Int, banner: String?) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = in_port_t(UInt16(port).bigEndian)
        // A forward listening on every interface is reached on loopback.
        inet_pton(AF_INET, address == "0.0.0.0" ? "127.0.0.1" : address, &target.sin_addr)
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return false }
        var received: [UInt8] = []
        let want = max(1, banner?.utf8.count ?? 1)
        let until = ContinuousClock.now + .seconds(2)
        while received.count < want, ContinuousClock.now < until {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) >= 0 else { return false }
            if poller.revents == 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return false }
            received += buffer[0..<n]
        }
        guard !received.isEmpty else { return false }
        guard let banner else { return true }
        return received.starts(with: Array(banner.utf8))
    }
}
