import Foundation
@testable import GuestKit
import Logging
import QEMULaunch
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How `launch run` boots and stops a VM as its user meets it: Ctrl-C in early boot, a
/// second and third Ctrl-C during the shutdown ladder, the exit code of a forced stop, and
/// a UEFI profile with no kernel booting through the firmware.
@Suite("launch run's stop and boot path: repeated interrupts, forced stops, UEFI without a kernel (slow: boots guests under TCG)", .serialized)
struct StopPathTests {
    func write(_ profile: Profile, to folder: URL) throws -> URL {
        let url = folder.appendingPathComponent("profile.json")
        try JSONEncoder().encode(profile).write(to: url)
        return url
    }

    /// The running QEMU of a launch whose runtime dir is under `folder`.
    func qemuPID(under folder: URL) async throws -> Int32 {
        for _ in 0..<1200 {
            let found = Fixture.processes(mentioning: folder.path + "/launch-").filter { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("qemu-system") == true
            }
            if let pid = found.first { return pid }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(description: "QEMU never started")
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Waits until the launcher's stderr contains `needle`; a hang guard, not a timing claim.
    func waitForStderr(_ launcher: BackgroundLaunch, _ needle: String) async throws {
        for _ in 0..<1200 where !launcher.stderr.contains(needle) && launcher.process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(launcher.stderr.contains(needle), "launch never said \(needle); stderr: \(launcher.stderr)")
    }

    func expectNothingLeft(in folder: URL) {
        #expect(Fixture.processes(mentioning: folder.path + "/launch-").isEmpty, "QEMU still running")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }
        #expect(left.isEmpty, "runtime dir left behind: \(left)")
    }

    @Test("a second Ctrl-C skips the ACPI step at once, said on stderr; the forced stop exits 75, not 0, and says why")
    func secondInterruptHurriesTheLadder() async throws {
        let folder = try Fixture.temporaryDirectory("hur")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The user's own initrd, which has no power-button handler: the ACPI step can only time out.
        var profile = Profile(name: "hurry")
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try Fixture.kernel
        profile.initrd = try Fixture.initramfs(script: "echo guest-ready; exec sleep 600", in: folder)
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        // Far longer than this test may take: only the hurry can end the ACPI step in time.
        profile.timeouts.shutdown = TimeLimit(.seconds(600))
        let launcher = try BackgroundLaunch(["run", try write(profile, to: folder).path])
        try await launcher.waitForStdout("guest-ready")

        kill(launcher.pid, SIGINT)
        try await waitForStderr(launcher, "stopping the VM (shutdown ladder)")
        try await Task.sleep(for: .seconds(1))
        kill(launcher.pid, SIGINT)
        try await waitForStderr(launcher, "launch: second interrupt: skipping to qmp-quit (a third interrupt kills QEMU)")

        // A hang guard: without the hurry the ACPI step alone would take 600 s.
        let status = try await launcher.exitStatus(seconds: 120)
        #expect(status == 75, "\(launcher.stderr)")
        #expect(launcher.stderr.contains("launch: forced stop: a second interrupt cut the shutdown short; it was killed at qmp-quit, its disks may need recovery"), "\(launcher.stderr)")
        expectNothingLeft(in: folder)
    }

    @Test("launch batch: a second Ctrl-C hurries every VM's ladder and a third kills every QEMU, even QEMUs frozen by SIGSTOP")
    func batchInterruptsHurryEveryVM() async throws {
        let folder = try Fixture.temporaryDirectory("bhur")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("bsleeper", command: ["sh", "-c", "echo running; exec sleep 600"])
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(600))
        let url = try write(profile, to: folder)
        let launcher = try BackgroundLaunch(["batch", url.path, url.path, "--jobs", "2"])
        for _ in 0..<3000 where launcher.stdout.components(separatedBy: "running").count < 3 && launcher.process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(launcher.stdout.components(separatedBy: "running").count == 3, "both jobs never ran: \(launcher.stderr)")
        let qemus = Fixture.processes(mentioning: folder.path + "/launch-").filter { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("qemu-system") == true
        }
        try #require(qemus.count == 2)
        // Frozen, QEMU answers neither the power button nor QMP quit: only SIGKILL ends it.
        for pid in qemus { kill(pid, SIGSTOP) }
        kill(launcher.pid, SIGINT)
        try await Task.sleep(for: .seconds(1))
        kill(launcher.pid, SIGINT)
        try await waitForStderr(launcher, "launch: second interrupt: skipping to qmp-quit for 2 VMs")
        kill(launcher.pid, SIGINT)
        try await waitForStderr(launcher, "launch: interrupt again: killing QEMU (SIGKILL) for 2 VMs")
        // A hang guard: without the hurry the ACPI and quit steps would take 600 s each.
        let status = try await launcher.exitStatus(seconds: 120)
        #expect(status == 130, "\(launcher.stderr)")
        #expect(launcher.stderr.components(separatedBy: "the VM was stopped (sigkill)").count == 3, "\(launcher.stderr)")
        expectNothingLeft(in: folder)
    }

    @Test("Ctrl-C as soon as QEMU starts, before the guest kit's init can take the power button, still ends at the ACPI step and exits 0")
    func interruptInEarlyBootEndsAtACPI() async throws {
        let folder = try Fixture.temporaryDirectory("early")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("early", command: nil)
        profile.runtimeDir = folder.path
        // Long enough for the init to come up on a loaded host; a press lost for good ends at qmp-quit after it.
        profile.timeouts.shutdown = TimeLimit(.seconds(90))
        let launcher = try BackgroundLaunch(["run", try write(profile, to: folder).path])
        _ = try await qemuPID(under: folder)
        // The console is on stdout: the kernel's line for the ACPI button driver comes later.
        let consoleAtInterrupt = launcher.stdout
        kill(launcher.pid, SIGINT)
        let status = try await launcher.exitStatus(seconds: 300)
        #expect(status == 0, "\(launcher.stderr)")
        #expect(launcher.stderr.contains("shutdown: acpi-powerdown after"), "\(launcher.stderr)")
        // The first press came before the guest had its power-button driver.
        #expect(!consoleAtInterrupt.contains("ACPI: button: Power Button"), "the guest was already up when interrupted: \(consoleAtInterrupt)")
        #expect(launcher.stdout.contains("ACPI: button: Power Button"), "\(launcher.stdout)")
        expectNothingLeft(in: folder)
    }

    @Test("a guest reboot ends the VM with exit 76 and says how to allow it; with \"onReboot\": \"reboot\" the guest boots again and the VM goes on")
    func guestReboot() async throws {
        let folder = try Fixture.temporaryDirectory("rb")
        defer { try? FileManager.default.removeItem(at: folder) }
        // q35: its reset works at once (microvm's guest restart has no quick path). The
        // kernel's PVH vmlinux, as fast boot uses it: TCG spends seconds decompressing a bzImage.
        var profile = Profile(name: "rebooter")
        profile.machine = .q35
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try #require(FastBoot.vmlinux(for: try Fixture.kernel, logger: Logger(label: "test"))?.path)
        profile.initrd = try Fixture.initramfs(script: "echo guest-boot-done; sleep 1; reboot -f", in: folder)
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.shutdown = TimeLimit(.seconds(2))

        let ended = try CLITests.launch(["run", try write(profile, to: folder).path])
        #expect(ended.status == 76, "\(ended.stderr)")
        #expect(ended.stderr.contains("launch: the guest rebooted; the VM ended (onReboot is exit); set \"onReboot\": \"reboot\" in the profile to let it reboot"), "\(ended.stderr)")
        #expect(ended.stdout.components(separatedBy: "guest-boot-done").count == 2, "\(ended.stdout)")

        profile.onReboot = .reboot
        let launcher = try BackgroundLaunch(["run", try write(profile, to: folder).path])
        // A hang guard: two boots under TCG on a loaded host.
        for _ in 0..<3000 where launcher.stdout.components(separatedBy: "guest-boot-done").count < 3 && launcher.process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(launcher.stdout.components(separatedBy: "guest-boot-done").count >= 3, "the guest did not boot again: \(launcher.stdout)")
        #expect(launcher.process.isRunning, "the VM ended on a guest reboot: \(launcher.stderr)")
        kill(launcher.pid, SIGINT)
        _ = try await launcher.exitStatus()
        expectNothingLeft(in: folder)
    }

    @Test("a UEFI profile with a disk and no kernel boots through OVMF's boot order with its console on stdout; with a command it is refused (65); an ACPI step the firmware ignores ends in a forced stop (75) that says so")
    func uefiWithoutKernel() async throws {
        let ovmf = HostProbe.current().firmware[.x86_64] != nil
        try #require(ovmf, "install ovmf")
        let folder = try Fixture.temporaryDirectory("uefi")
        defer { try? FileManager.default.removeItem(at: folder) }
        // A disk with nothing bootable on it: OVMF tries it first, then falls back to its shell.
        let disk = folder.appendingPathComponent("blank.img")
        try Data(count: 1 << 20).write(to: disk)
        var profile = Profile(name: "uefi-nokernel")
        profile.machine = .q35
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.firmware = .uefi
        profile.disks = [Profile.Disk(path: disk.path, format: .raw)]
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.shutdown = TimeLimit(.seconds(3))
        let url = try write(profile, to: folder)
        let xdg = ["XDG_STATE_HOME": folder.appendingPathComponent("xdg").path]

        let refused = try CLITests.launch(["run", url.path, "--", "true"], environment: xdg)
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(refused.stderr.contains("the guest kit, which needs a kernel to boot, and this UEFI profile has none"), "\(refused.stderr)")

        let launcher = try BackgroundLaunch(["run", url.path], environment: xdg)
        try await launcher.waitForStdout("BdsDxe: failed to load Boot0001")
        try await launcher.waitForStdout("Shell>")
        #expect(launcher.stderr.contains("boot: UEFI firmware, by its boot order"), "\(launcher.stderr)")
        kill(launcher.pid, SIGINT)
        let status = try await launcher.exitStatus(seconds: 120)
        #expect(status == 75, "\(launcher.stderr)")
        #expect(launcher.stderr.contains("launch: forced stop: the guest did not power off within timeouts.shutdown (3s); it was killed at qmp-quit, its disks may need recovery"), "\(launcher.stderr)")
        expectNothingLeft(in: folder)
    }
}

/// A forward whose host port something else holds is refused before the launch makes anything.
@Suite("Forward ports already in use are refused before anything is made")
struct ForwardPortInUseTests {
    /// A socket of `proto` bound (and for TCP listening) on a free loopback port; returns it and the port.
    func holdPort(_ proto: Profile.ForwardProtocol) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0)
        if proto == .tcp { try #require(listen(fd, 1) == 0) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test("launch run exits 71 naming network.forwards[N].host, the port and the fix; no runtime dir and no state folder were made",
          arguments: [Profile.ForwardProtocol.tcp, .udp])
    func portInUse(proto: Profile.ForwardProtocol) throws {
        let folder = try Fixture.temporaryDirectory("port")
        defer { try? FileManager.default.removeItem(at: folder) }
        let held = try holdPort(proto)
        defer { close(held.fd) }
        // A port that is free: the first forward passes the check.
        let released = try holdPort(proto == .tcp ? .udp : .tcp)
        close(released.fd)
        let free = released.port
        let base = folder.appendingPathComponent("base.img")
        try Data(count: 1 << 20).write(to: base)
        var profile = try Fixture.guestProfile("portbusy", command: ["true"])
        profile.runtimeDir = folder.path
        // A persistent overlay: the VM has a state folder a late failure would have made.
        profile.disks = [Profile.Disk(path: base.path, overlay: .persistent)]
        profile.network = Profile.Network(mode: .user, forwards: [
            Profile.Forward(host: free, guest: 80, proto: proto == .tcp ? .udp : .tcp),
            Profile.Forward(host: held.port, guest: 22, proto: proto),
        ])
        let url = folder.appendingPathComponent("profile.json")
        try JSONEncoder().encode(profile).write(to: url)
        let xdg = folder.appendingPathComponent("xdg")
        let outcome = try CLITests.launch(["run", url.path], environment: ["XDG_STATE_HOME": xdg.path])
        #expect(outcome.status == 71, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("network.forwards[1].host: \(proto.rawValue) port \(held.port) on 127.0.0.1 can't be forwarded: Address already in use"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("pick another host port in network.forwards[1].host"), "\(outcome.stderr)")
        #expect(!FileManager.default.fileExists(atPath: xdg.appendingPathComponent("qemu-launch/portbusy").path), "a state folder was made")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }
        #expect(left.isEmpty, "a runtime dir was made: \(left)")
    }
}
