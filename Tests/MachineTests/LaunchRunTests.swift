import Foundation
import GuestKit
import QEMULaunch
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `launch` process running in the background, as a user's terminal or script holds
/// one: its stdout and stderr are read as they come, and it can be signalled.
final class BackgroundLaunch: @unchecked Sendable {
    let process = Process()
    /// Text read from one of its pipes so far.
    final class Collected: Sendable {
        let text = Mutex("")
    }
    private let out = Collected(), err = Collected()
    private let readers: [Thread]

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = CLITests.root
        process.standardInput = FileHandle.nullDevice
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        readers = [(outPipe, out), (errPipe, err)].map { pipe, collected in
            Thread {
                while case let data = pipe.fileHandleForReading.availableData, !data.isEmpty {
                    collected.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
                }
            }
        }
        try process.run()
        readers.forEach { $0.start() }
    }

    var stdout: String { out.text.withLock { $0 } }
    var stderr: String { err.text.withLock { $0 } }
    var pid: Int32 { process.processIdentifier }

    /// Waits until stdout contains `needle`; a hang guard (TCG, two loaded cores), not a timing claim.
    func waitForStdout(_ needle: String, seconds: Int = 300) async throws {
        for _ in 0..<(seconds * 10) where !stdout.contains(needle) && process.isRunning {
            try await Task.sleep(for: .milliseconds(100))
        }
        try #require(stdout.contains(needle), "launch never printed \(needle); stderr: \(stderr)")
    }

    /// The exit status, waiting up to `seconds`; on a hang the process is killed and nil returned.
    func exitStatus(seconds: Int = 180) async throws -> Int32? {
        for _ in 0..<(seconds * 10) where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        // Let the readers take the last bytes (the pipes are at EOF once it has exited).
        for _ in 0..<100 where readers.contains(where: { !$0.isFinished }) { try await Task.sleep(for: .milliseconds(20)) }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(pid, SIGKILL) }
    }
}

/// `launch run` as a user meets it from another process: signals, a second run of a VM
/// that is running, the profile's extra console ports, and the flags that shape a run.
@Suite("launch run from another process: signals, state refusal, console ports, flags (slow: boots guests under TCG)", .serialized)
struct LaunchRunTests {
    func write(_ profile: Profile, to folder: URL, as name: String = "profile.json") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try JSONEncoder().encode(profile).write(to: url)
        return url
    }

    func runtimeDirs(in folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }
    }

    func expectNothingLeft(in folder: URL) {
        #expect(Fixture.processes(mentioning: folder.path + "/launch-").isEmpty, "QEMU or virtiofsd still running")
        #expect(runtimeDirs(in: folder).isEmpty, "runtime dir left behind")
    }

    @Test("SIGINT (Ctrl-C) or SIGTERM while a command runs: launch run stops the VM through the ladder and exits 130",
          arguments: [SIGINT, SIGTERM])
    func interruptedCommandExits130(signal: Int32) async throws {
        let folder = try Fixture.temporaryDirectory("i130")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("interrupted", command: ["sh", "-c", "echo running; exec sleep 600"])
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(15))
        let launcher = try BackgroundLaunch(["run", try write(profile, to: folder).path])
        try await launcher.waitForStdout("running\n")
        kill(launcher.pid, signal)
        let status = try await launcher.exitStatus()
        #expect(status == 130, "\(launcher.stderr)")
        #expect(launcher.stderr.contains("launch: interrupted: interrupted; the VM was stopped ("), "\(launcher.stderr)")
        expectNothingLeft(in: folder)
    }

    @Test("while one launch run has a VM with a state folder running, a second launch run of it and launch state --reset exit 71; once it ends, state shows the folder, a changed base fails the run with 71, and reset works")
    func refusesWhileAnotherLaunchRuns() async throws {
        let folder = try Fixture.temporaryDirectory("busy")
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = folder.appendingPathComponent("base.img")
        try Data(repeating: 0x11, count: 1 << 20).write(to: base)
        var profile = try Fixture.guestProfile("busyvm", command: ["sh", "-c", "echo running; exec sleep 600"])
        profile.disks = [Profile.Disk(path: base.path, overlay: .persistent)]
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(15))
        let url = try write(profile, to: folder)
        let xdg = ["XDG_STATE_HOME": folder.appendingPathComponent("xdg").path]
        let stateFolder = folder.appendingPathComponent("xdg/qemu-launch/busyvm")

        // The first run: a real VM in another launch process, holding QEMU's image locks.
        let first = try BackgroundLaunch(["run", url.path], environment: xdg)
        try await first.waitForStdout("running\n")

        let second = try CLITests.launch(["run", url.path], environment: xdg)
        #expect(second.status == 71, "\(second.stderr)")
        #expect(second.stderr.contains("launch: host problem: VM busyvm seems to be running already: a process holds a lock on disk0.qcow2"), "\(second.stderr)")
        #expect(second.stderr.contains("not starting a second run"), "\(second.stderr)")
        let reset = try CLITests.launch(["state", url.path, "--reset"], environment: xdg)
        #expect(reset.status == 71, "\(reset.stderr)")
        #expect(reset.stderr.contains("VM busyvm seems to be running already"), "\(reset.stderr)")
        #expect(FileManager.default.fileExists(atPath: stateFolder.appendingPathComponent("disk0.qcow2").path), "the overlay of the running VM was deleted")
        #expect(first.process.isRunning, "the refused attempts ended the running VM")

        kill(first.pid, SIGINT)
        #expect(try await first.exitStatus() == 130, "\(first.stderr)")

        // What the VM keeps, as `launch state` shows it.
        let shown = try CLITests.launch(["state", url.path], environment: xdg)
        #expect(shown.status == 0, "\(shown.stderr)")
        let lines = shown.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "state folder: \(stateFolder.path)", "\(shown.stdout)")
        #expect(lines.dropFirst().first?.hasPrefix("identity: uuid ") == true && lines.dropFirst().first?.contains(", mac 52:54:00:") == true, "\(shown.stdout)")
        #expect(lines.contains { $0.hasPrefix("  disk0.qcow2 ") && $0.hasSuffix("persistent overlay of disks[0] over \(base.path); base unchanged") }, "\(shown.stdout)")
        // A base changed under its overlay (here only its time) fails the next run before QEMU, exit 71, with the fix.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1_600_000_000)], ofItemAtPath: base.path)
        let changed = try CLITests.launch(["run", url.path], environment: xdg)
        #expect(changed.status == 71, "\(changed.stderr)")
        #expect(changed.stderr.contains("launch: host problem: disks[0]: the base image \(base.path) changed since its persistent overlay"), "\(changed.stderr)")
        #expect(changed.stderr.contains("set the time back: touch -d @"), "\(changed.stderr)")
        #expect(try CLITests.launch(["state", url.path], environment: xdg).stdout.contains("; UNUSABLE: the base image \(base.path) changed"))

        let after = try CLITests.launch(["state", url.path, "--reset"], environment: xdg)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout.contains("deleted \(stateFolder.path): disk0.base.json"), "\(after.stdout)")
        #expect(!FileManager.default.fileExists(atPath: stateFolder.path))
        expectNothingLeft(in: folder)
    }
}

extension LaunchRunTests {
    /// Connects to the Unix socket at `path`; nil when nothing accepts there.
    static func connectUnix(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Reads from `fd` until the text holds a full line or `seconds` pass.
    static func readLine(_ fd: Int32, seconds: Int) -> String {
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end = ContinuousClock.now + .seconds(seconds)
        while !bytes.contains(UInt8(ascii: "\n")) && ContinuousClock.now < end {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n > 0 { bytes += buffer[0..<n] }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("a profile's extra console port is a socket another tool reaches during launch run: it reads what the guest writes and its reply reaches the guest")
    func consolePortReachable() async throws {
        let folder = try Fixture.temporaryDirectory("con")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The guest finds the port by name, opens it once (data from the host while the guest
        // has it closed is discarded by the guest's driver), writes a line, reads the reply.
        let script = """
            for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = agent ] && dev=/dev/${p##*/}; done
            [ -n "$dev" ] || { echo "no port named agent" >&2; exit 3; }
            exec 3<>$dev
            echo writing
            echo hello-from-the-guest >&3
            head -n 1 <&3
            """
        var profile = try Fixture.guestProfile("consoleport", command: ["sh", "-c", script])
        profile.consoles = ["agent"]
        profile.runtimeDir = folder.path
        let url = try write(profile, to: folder)

        // Which portN.sock is "agent": the plan says, by its chardev.
        let plan = try CLITests.launch(["plan", url.path, "--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        let qemu = try #require(object["qemu"] as? [String])
        let device = try #require(qemu.first { $0.hasPrefix("virtserialport,") && $0.hasSuffix(",name=agent") })
        let chardev = try #require(device.split(separator: ",").first { $0.hasPrefix("chardev=") }?.dropFirst("chardev=".count))

        let launcher = try BackgroundLaunch(["run", url.path])
        try await launcher.waitForStdout("writing\n")
        let runtime = try #require(runtimeDirs(in: folder).first, "no runtime dir under \(folder.path)")
        let socketPath = folder.path + "/" + runtime + "/" + chardev + ".sock"
        let fd = try #require(Self.connectUnix(socketPath), "nothing accepts on \(socketPath)")
        defer { close(fd) }
        // QEMU serves one client per socket chardev: if the launcher held this one, the
        // connection would sit in the listen backlog and nothing would ever arrive.
        let line = Self.readLine(fd, seconds: 60)
        #expect(line == "hello-from-the-guest\n", "read \(line.debugDescription) from \(socketPath)")
        _ = "reply-from-the-host\n".withCString { Glibc.write(fd, $0, strlen($0)) }
        let status = try await launcher.exitStatus(seconds: line.isEmpty ? 5 : 120)
        #expect(status == 0, "\(launcher.stderr)")
        #expect(launcher.stdout == "writing\nreply-from-the-host\n", "\(launcher.stdout)")
        expectNothingLeft(in: folder)
    }
}

extension LaunchRunTests {
    @Test("launch run's --memory, --cpus, --no-fast-boot, -v and --keep-runtime-dir each change the run")
    func runFlags() throws {
        let folder = try Fixture.temporaryDirectory("flags")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The profile has 256 MiB and one vCPU, and would boot the extracted PVH vmlinux under TCG.
        var profile = try Fixture.guestProfile("flags", command: nil)
        profile.runtimeDir = folder.path
        let url = try write(profile, to: folder)
        // The boot protocol version in the guest's boot_params (hdr.version, offset 0x206): a bzImage
        // keeps its own header's (2.15 for Linux 6.1: "0f 02"); a PVH entry (the fast boot's vmlinux)
        // gets 2.12 ("0c 02") from the kernel's PVH code.
        let script = "nproc; grep MemTotal /proc/meminfo; od -An -tx1 -j 518 -N 2 /sys/kernel/boot_params/data"
        let outcome = try CLITests.launch(["run", url.path, "--memory", "320M", "--cpus", "2", "--no-fast-boot",
                                           "-v", "--keep-runtime-dir", "--", "sh", "-c", script])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        try #require(lines.count == 3, "\(outcome.stdout)")
        #expect(lines[0] == "2", "--cpus 2: nproc said \(lines[0])")
        // MemTotal is the RAM less what the kernel keeps: above what 256 MiB could give, at most 320 MiB.
        let kibibytes = Int(lines[1].split(separator: " ").dropFirst().first ?? "") ?? 0
        #expect(kibibytes > 256 * 1024 && kibibytes <= 320 * 1024, "--memory 320M: \(lines[1])")
        #expect(lines[2].hasSuffix(" 02") && lines[2] != "0c 02", "--no-fast-boot: boot protocol \(lines[2]), and 0c 02 is the PVH entry")
        #expect(!outcome.stderr.contains("fast boot: booting"), "\(outcome.stderr)")
        // -v: the kernel console (booted without quiet) and the launcher's debug lines on stderr.
        #expect(outcome.stderr.contains("Linux version "), "-v: no kernel console on stderr")
        #expect(outcome.stderr.contains("launch: debug: "), "-v: no debug lines")
        // --keep-runtime-dir: said, and there with the console log.
        // With -v a log line ends with its metadata (" vm.name=flags").
        let kept = try #require(outcome.stderr.split(separator: "\n").first { $0.hasPrefix("launch: runtime dir kept: ") }?
            .dropFirst("launch: runtime dir kept: ".count).split(separator: " ").first.map(String.init),
            "--keep-runtime-dir: no line saying where")
        #expect(kept.hasPrefix(folder.path + "/launch-"), "\(kept)")
        let console = try String(contentsOfFile: kept + "/console.log", encoding: .utf8)
        #expect(console.contains("Linux version "))
        #expect(FileManager.default.fileExists(atPath: kept + "/qemu.log"))
    }

    @Test("launch run --initrd boots the user's own initramfs with the serial console on stdout; -q leaves stderr without info lines")
    func ownInitrdQuiet() throws {
        let folder = try Fixture.temporaryDirectory("ird")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("owninitrd", command: nil)
        profile.runtimeDir = folder.path
        // Without --initrd this would be the guest kit's console shell, which only ends at timeouts.run.
        profile.timeouts.run = TimeLimit(.seconds(120))
        let url = try write(profile, to: folder)
        let initrd = try Fixture.initramfs(script: "echo own-initrd-ran; poweroff -f", in: folder)
        let outcome = try CLITests.launch(["run", url.path, "--initrd", initrd, "-q"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("own-initrd-ran"), "\(outcome.stdout.suffix(2000))")
        #expect(!outcome.stdout.contains("starting a shell on the console"))
        let chatty = outcome.stderr.split(separator: "\n").filter { $0.hasPrefix("launch: ") && !$0.hasPrefix("launch: warning: ") }
        #expect(chatty.isEmpty, "-q: \(chatty)")
        expectNothingLeft(in: folder)
    }

    @Test("launch run --rootfs host --rwdir DIR --root-overlay: writes to DIR reach the host, writes elsewhere in the root don't")
    func rootfsFlags() throws {
        let folder = try Fixture.temporaryDirectory("rwd")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rw = folder.appendingPathComponent("rw")
        try FileManager.default.createDirectory(at: rw, withIntermediateDirectories: true)
        var profile = try Fixture.guestProfile("rootflags", command: nil)
        profile.memory = .mebibytes(512)
        profile.runtimeDir = folder.path
        let url = try write(profile, to: folder)
        // /usr is read-only in the host root unless the whole root has an overlay.
        let elsewhere = "/usr/lt-root-overlay-\(getpid())"
        let script = "echo through > \(rw.path)/file && echo kept > \(elsewhere) && cat \(elsewhere)"
        let outcome = try CLITests.launch(["run", url.path, "-q", "--rootfs", "host", "--rwdir", rw.path, "--root-overlay",
                                           "--", "/bin/sh", "-c", script])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == "kept\n", "\(outcome.stdout)")
        #expect(FileManager.default.contents(atPath: rw.appendingPathComponent("file").path) == Data("through\n".utf8), "--rwdir: the guest's write did not reach the host")
        #expect(!FileManager.default.fileExists(atPath: elsewhere), "--root-overlay: the guest wrote the host's \(elsewhere)")
        try? FileManager.default.removeItem(atPath: elsewhere)
        expectNothingLeft(in: folder)
    }
}

extension LaunchRunTests {
    @Test("batch exits 0 when every job exited 0, and 1 when the failures' codes differ")
    func batchExitStatuses() throws {
        let allPassed = try CLITests.launch(["batch", "Profiles/hello.json", "--jobs", "2", "-c", "true", "-c", "exit 0"])
        #expect(allPassed.status == 0, "\(allPassed.stderr)")
        let mixed = try CLITests.launch(["batch", "Profiles/hello.json", "--jobs", "2", "-c", "exit 3", "-c", "exit 4"])
        #expect(mixed.status == 1, "\(mixed.stderr)")
        // The table still says each job's own code.
        let rows = mixed.stderr.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { $0.first?.hasPrefix("hello#") == true }
        #expect(rows.map { $0.count > 1 ? $0[1] : "" } == ["3", "4"], "\(mixed.stderr)")
    }

    @Test("a console boot (no command) ends at timeouts.run through the ladder with exit 124")
    func consoleBootRunTimeout() throws {
        let folder = try Fixture.temporaryDirectory("cto")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("consoletimeout", command: nil)
        profile.runtimeDir = folder.path
        // Long enough to boot on a loaded host; the guest kit's console shell never ends by itself.
        profile.timeouts.run = TimeLimit(.seconds(40))
        let outcome = try CLITests.launch(["run", try write(profile, to: folder).path])
        #expect(outcome.status == 124, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("starting a shell on the console"), "the guest never got to its shell: \(outcome.stdout.suffix(2000))")
        #expect(outcome.stderr.contains("timeouts.run (40s) passed; stopping the VM"), "\(outcome.stderr)")
        expectNothingLeft(in: folder)
    }

    @Test("launch plan reads a VM's state folder but never makes it: it prints the qemu-img create the first run would make")
    func planMakesNoStateFolder() throws {
        let folder = try Fixture.temporaryDirectory("pst")
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = folder.appendingPathComponent("base.img")
        try Data(repeating: 0, count: 1 << 20).write(to: base)
        var profile = try Fixture.guestProfile("planonly", command: ["true"])
        profile.disks = [Profile.Disk(path: base.path, overlay: .persistent)]
        let xdg = folder.appendingPathComponent("xdg")
        let outcome = try CLITests.launch(["plan", try write(profile, to: folder).path], environment: ["XDG_STATE_HOME": xdg.path])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let overlay = xdg.path + "/qemu-launch/planonly/disk0.qcow2"
        #expect(outcome.stdout.contains("qemu-img create -q -f qcow2 -F raw -b \(base.path) \(overlay)"), "\(outcome.stdout)")
        #expect(!FileManager.default.fileExists(atPath: xdg.path), "launch plan made \(xdg.path)")
    }
}

extension LaunchRunTests {
    @Test("--rootfs DIR serves that folder as the root (a relative DIR from the current folder); --rootfs disk:N names disks[N]")
    func rootfsFolderAndDiskFlags() throws {
        let folder = try Fixture.temporaryDirectory("rfd")
        defer { try? FileManager.default.removeItem(at: folder) }
        let root = folder.appendingPathComponent("my root")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("bin"), withIntermediateDirectories: true)
        // Relative to launch's current folder (the package root), as a user would type it.
        let relative = String(repeating: "../", count: CLITests.root.pathComponents.count - 1) + String(root.path.dropFirst())
        let plan = try CLITests.launch(["plan", "Profiles/hello.json", "--accel", "tcg", "--rootfs", relative])
        #expect(plan.status == 0, "\(plan.stderr)")
        // Served by virtiofsd (a read-only bind of the folder) or by QEMU's 9p, whichever this host has.
        #expect(plan.stdout.contains("recursive bind of \(root.path) ") || plan.stdout.contains("path=\(root.path),"), "\(plan.stdout)")
        #expect(plan.stdout.contains("tag=launch.root") || plan.stdout.contains("mount_tag=launch.root"), "\(plan.stdout)")

        let disk = try CLITests.launch(["plan", "Profiles/hello.json", "--accel", "tcg", "--rootfs", "disk:0"])
        #expect(disk.status == 65, "\(disk.stderr)")
        #expect(disk.stderr.contains("  - rootfs.disk: there is no disks[0] (the profile has 0 disks)"), "\(disk.stderr)")
    }
}
