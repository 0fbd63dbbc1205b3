import Foundation
import GuestKit
import QEMULaunch
import QMP
import Testing

@Suite("Supervising real QEMU (slow: boots guests under TCG)", .serialized)
struct SupervisionTests {
    /// A profile whose initrd is a tiny busybox init running `script`.
    func profile(_ name: String, script: String, folder: URL) throws -> Profile {
        var profile = Profile(name: name)
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try Fixture.kernel
        profile.initrd = try Fixture.initramfs(script: script, in: folder)
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        // A hung guest ends the test (as .timedOut) instead of blocking the run.
        profile.timeouts.run = TimeLimit(.seconds(180))
        profile.timeouts.shutdown = TimeLimit(.seconds(5))
        return profile
    }

    func runtimeDirs(in folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }
    }

    @Test("a guest that powers off ends as poweredOff, and its runtime dir is removed")
    func cleanPoweroff() async throws {
        let folder = try Fixture.temporaryDirectory("off")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try profile("poweroff", script: "mount -t proc proc /proc; echo guest-says-bye; poweroff -f", folder: folder)
        let machine = try await Machine.start(profile)
        #expect(FileManager.default.fileExists(atPath: machine.runtimeDirectory.path))
        let mode = try FileManager.default.attributesOfItem(atPath: machine.runtimeDirectory.path)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        try await machine.resume()
        let end = try await machine.waitForEnd()
        #expect(end == .poweredOff)
        #expect(machine.console.tail.lines().contains { $0.contains("guest-says-bye") })
        #expect(runtimeDirs(in: folder).isEmpty)
    }

    @Test("a guest that writes 1 MiB to a serial console no one reads runs to its end: the console is drained into console.log and a bounded tail",
          .timeLimit(.minutes(5)))
    func consoleAlwaysDrained() async throws {
        let folder = try Fixture.temporaryDirectory("drn")
        defer { try? FileManager.default.removeItem(at: folder) }
        // 16384 lines of 64 bytes: far more than a socket buffer holds, so an undrained console
        // would block the guest's UART and it would never power off.
        var profile = try profile("drained", script: "yes \(String(repeating: "x", count: 63)) | head -n 16384; echo guest-done; poweroff -f", folder: folder)
        profile.timeouts.run = TimeLimit(.seconds(150))
        var options = Machine.Options()
        options.keepRuntimeDir = true
        let machine = try await Machine.start(profile, options: options)
        try await machine.resume()
        let end = try await machine.waitForEnd()
        #expect(end == .poweredOff, "\(end)")
        let log = try Data(contentsOf: URL(fileURLWithPath: machine.runtimeDirectory.path + "/console.log"))
        let text = String(decoding: log, as: UTF8.self)
        #expect(log.count > 1 << 20, "console.log holds \(log.count) bytes")
        #expect(text.contains("guest-done"))
        let tail = machine.console.tail.lines()
        #expect(tail.count <= machine.console.tail.maxLines, "the tail kept \(tail.count) lines")
        #expect(tail.contains { $0.contains("guest-done") })
    }

    @Test("a Machine released while its VM runs kills QEMU and removes its runtime dir")
    func releasedWhileRunning() async throws {
        let folder = try Fixture.temporaryDirectory("rel")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try profile("released", script: "sleep 600", folder: folder)
        var runtime = ""
        do {
            let machine = try await Machine.start(profile)
            try await machine.resume()
            runtime = machine.runtimeDirectory.path
            #expect(!Fixture.processes(mentioning: runtime).isEmpty, "QEMU is not running")
        }
        // The last reference is gone: no shutdown() and no withRunning. A hang guard, not a timing claim.
        for _ in 0..<600 where !Fixture.processes(mentioning: runtime).isEmpty || FileManager.default.fileExists(atPath: runtime) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(Fixture.processes(mentioning: runtime).isEmpty, "QEMU outlived its Machine")
        #expect(!FileManager.default.fileExists(atPath: runtime), "the runtime dir outlived its Machine")
    }

    @Test("a QEMU argument error is reported with the exit status, the shell-quoted argv and QEMU's stderr")
    func argumentError() async throws {
        let folder = try Fixture.temporaryDirectory("arg")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try profile("badarg", script: "poweroff -f", folder: folder)
        // Past the capability check (it knows -smp), refused by QEMU itself.
        profile.qemu.extraArgs = ["-smp", "cpus=banana"]
        do {
            _ = try await Machine.start(profile)
            Issue.record("QEMU started with a bad device")
        } catch {
            #expect(error.code == .qemuFailed)
            #expect(error.message.contains("exited with status 1"))
            let text = error.description
            #expect(text.contains("command: "))
            #expect(text.contains("-smp cpus=banana"))
            #expect(text.contains("Parameter 'smp.cpus' expects integer"))
        }
        #expect(runtimeDirs(in: folder).isEmpty)
    }

    @Test("a device this QEMU doesn't have is refused before anything starts, naming the device")
    func unknownDeviceRefused() async throws {
        let folder = try Fixture.temporaryDirectory("dev")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try profile("baddev", script: "poweroff -f", folder: folder)
        profile.qemu.extraArgs = ["-device", "no-such-device-xyz"]
        do {
            _ = try await Machine.start(profile)
            Issue.record("started with a device QEMU lacks")
        } catch {
            #expect(error.code == .invalidProfile)
            #expect(error.message.contains("has no device no-such-device-xyz"))
        }
        #expect(runtimeDirs(in: folder).isEmpty)
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("a virtiofsd killed while the guest runs ends the run as a failure and stops QEMU", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing))
    func virtiofsdKilled() async throws {
        let folder = try Fixture.temporaryDirectory("vfs")
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = folder.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        var profile = try profile("vfskill", script: "sleep 600", folder: folder)
        profile.shares = [Profile.Share(tag: "s", path: shared.path)]
        let machine = try await Machine.start(profile)
        try await machine.resume()
        let daemon = try #require(machine.virtiofsd.first)
        kill(daemon.pid, SIGKILL)
        let end = try await machine.waitForEnd()
        guard case .virtiofsdDied(index: 0, .signalled(SIGKILL)) = end else {
            Issue.record("expected virtiofsdDied, got \(end)")
            return
        }
        #expect(machine.qemu.exitStatus != nil)
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("the shutdown ladder stops a guest that ignores ACPI at the QMP quit step, and says so")
    func ladderReachesQuit() async throws {
        let folder = try Fixture.temporaryDirectory("lad")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try profile("ladder", script: "sleep 600", folder: folder)
        let machine = try await Machine.start(profile)
        try await machine.resume()
        let status = try await machine.qmp.queryStatus()
        #expect(status.running)
        let outcome = await machine.shutdown(stepTimeout: .seconds(2))
        #expect(outcome.step == .qmpQuit)
        #expect(outcome.duration >= .seconds(2))
        #expect(try await machine.waitForEnd() == .stopped(.qmpQuit))
        #expect(runtimeDirs(in: folder).isEmpty)
    }

    @Test("200 start/stop cycles leave no more open fds, threads or runtime dirs than before")
    func manyCycles() async throws {
        let folder = try Fixture.temporaryDirectory("cyc")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try profile("cycle", script: "sleep 600", folder: folder)
        func cycle() async throws {
            // Paused (-S): the guest never runs, so this measures supervision only.
            let machine = try await Machine.start(profile)
            let outcome = await machine.shutdown(stepTimeout: .seconds(5), skipACPI: true)
            #expect(outcome.step == .qmpQuit)
        }
        try await cycle()
        let fds = Fixture.launcherFileDescriptorCount()
        let threads = Fixture.launcherThreadCount()
        for _ in 0..<200 { try await cycle() }
        // Reader and reaper threads end just after their process; give them a moment.
        for _ in 0..<100 where Fixture.launcherThreadCount() > threads || Fixture.launcherFileDescriptorCount() > fds {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Fewer is fine: something an earlier test left open may have closed meanwhile.
        #expect(Fixture.launcherFileDescriptorCount() <= fds)
        #expect(Fixture.launcherThreadCount() <= threads)
        #expect(runtimeDirs(in: folder).isEmpty)
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("killing the launcher with SIGKILL leaves no QEMU or virtiofsd behind", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing))
    func launcherSigkill() async throws {
        let folder = try Fixture.temporaryDirectory("kil")
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = folder.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        var profile = try Fixture.guestProfile("sigkill", command: ["sleep", "600"])
        profile.shares = [Profile.Share(tag: "s", path: shared.path)]
        profile.runtimeDir = folder.path
        let profileURL = folder.appendingPathComponent("p.json")
        try JSONEncoder().encode(profile).write(to: profileURL)

        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        launcher.arguments = ["run", profileURL.path]
        let errors = Pipe()
        launcher.standardError = errors
        launcher.standardOutput = FileHandle.nullDevice
        try launcher.run()
        // Wait for QEMU and virtiofsd to be up (both carry the runtime dir in their argv).
        var children: [Int32] = []
        for _ in 0..<600 {
            children = Fixture.processes(mentioning: folder.path + "/launch-")
            if children.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(children.count >= 2, "QEMU and virtiofsd should be running")
        kill(launcher.processIdentifier, SIGKILL)
        launcher.waitUntilExit()
        // PR_SET_PDEATHSIG: the children get SIGKILL as the launcher dies. Without it they
        // would run on for good; 60 s is a hang guard for a loaded host, not a timing claim.
        var left = children
        for _ in 0..<600 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            left = Fixture.processes(mentioning: folder.path + "/launch-")
        }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
