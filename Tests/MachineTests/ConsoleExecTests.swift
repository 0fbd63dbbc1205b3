import Foundation
import GuestKit
import LaunchSupport
import QEMULaunch
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The console hub and the exec server, served from this process for a real guest, with
/// their clients: raw sockets, `RemoteSession`, and `launch console` / `launch exec` as
/// subprocesses (console ones on a pty). The CLI finds the sockets in the record folder
/// under `XDG_RUNTIME_DIR`, which the tests point at a temporary folder.
@Suite("Console hub and exec server (boots real guests)", .serialized)
struct ConsoleExecTests {
    /// A record folder `<root>/qemu-launch/vms/<name>` as `launch console`/`exec` compute it
    /// from `XDG_RUNTIME_DIR=<root>`.
    static func recordFolder(_ name: String) throws -> (root: URL, folder: String) {
        let root = try Fixture.temporaryDirectory("rec")
        let folder = root.path + "/qemu-launch/vms/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        return (root, folder)
    }

    @Test("two hub clients both see a line the guest prints; `launch console` on a pty shows scroll-back, sends Ctrl-C to the guest and detaches on Ctrl-] with the VM still running")
    func consoleHub() async throws {
        let (root, folder) = try Self.recordFolder("hub")
        defer { try? FileManager.default.removeItem(at: root) }
        let machine = try await GuestKit.startInteractive(try Fixture.guestProfile("hub", command: nil))
        do {
            // Foundation's Process opens a socket pair on first use and keeps it: before the count.
            _ = try TestProcess.run(["/bin/true"])
            let (fds, threads) = (Fixture.launcherFileDescriptorCount(), Fixture.launcherThreadCount())
            let hub = try ConsoleHub.serve(console: machine.console, socketPath: folder + "/console.sock")
            do {
                try await Self.consoleChecks(machine: machine, hub: hub, root: root, folder: folder)
            } catch {
                await hub.stop()
                throw error
            }
            // Stopped, the hub leaves nothing open: its socket, clients and thread are gone.
            // At most as many as before, not exactly as many: fds of earlier work in this test
            // process may close meanwhile (in a CI run the count fell from 30 to 27).
            try await Self.settle { Fixture.launcherFileDescriptorCount() <= fds && Fixture.launcherThreadCount() <= threads }
            #expect(Fixture.launcherFileDescriptorCount() <= fds)
            #expect(Fixture.launcherThreadCount() <= threads)
        } catch {
            await machine.shutdown(skipACPI: true)
            throw error
        }
        await machine.shutdown(skipACPI: true)
    }

    /// A CLI run that hangs (a server that never replies, an output fd kept open) ends
    /// after 120 s with timeout(1)'s 124 instead of hanging the suite.
    static let bounded = ["/usr/bin/timeout", "-s", "KILL", "120"]

    /// Waits up to 10 s for `condition` (a count that settles after a thread ends).
    static func settle(_ condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
    }

    static func consoleChecks(machine: Machine, hub: ConsoleHub, root: URL, folder: String) async throws {
        for _ in 0..<1200 where !machine.console.tail.lines().contains(where: { $0.contains("starting a shell on the console") }) {
            try await Task.sleep(for: .milliseconds(100))
        }

        let first = try ConsoleHub.Attachment.connect(socketPath: hub.socketPath)
        let second = try ConsoleHub.Attachment.connect(socketPath: hub.socketPath)
        defer { second.close() }
        #expect(hub.clientCount == 2)
        // $((6*7)) is only 42 once the guest's shell ran it: the typed echo shows the expression.
        #expect(Self.type(first.fd, "echo hub-$((6*7))\n"))
        let firstSaw = await Self.read(first.fd, until: "hub-42")
        let secondSaw = await Self.read(second.fd, until: "hub-42")
        #expect(firstSaw.contains("hub-42"), "\(firstSaw)")
        #expect(secondSaw.contains("hub-42"), "\(secondSaw)")
        // One client leaving stops nothing: the other types and reads on.
        first.close()
        #expect(Self.type(second.fd, "echo second-$((2+3))\n"))
        let afterLeave = await Self.read(second.fd, until: "second-5")
        #expect(afterLeave.contains("second-5"), "\(afterLeave)")

        // `launch console` on a pty: scroll-back, then live; Ctrl-C interrupts the guest's
        // `sleep` (only a byte can: with ISIG on, the pty would kill launch instead).
        let launch = try Fixture.launchExecutable
        let session = try await Self.onThread {
            try TestProcess.run(["/usr/bin/python3", "-c", Self.ptyDriver, launch, "console", "hub", "--lines", "30"],
                                input: Data("""
                                    [{"wait": "attached to hub's console", "timeout": 30},
                                     {"send": "sleep 1000\\r"}, {"wait": "sleep 1000", "timeout": 30},
                                     {"interruptUntil": "pty-42", "probe": "echo pty-$((6*7))\\r", "timeout": 90},
                                     {"send": "\\u001d"}, {"wait": "detached from hub's console", "timeout": 30}]
                                    """.utf8),
                                environment: ProcessInfo.processInfo.environment.merging(["XDG_RUNTIME_DIR": root.path]) { $1 })
        }
        let shown = session.stdoutText
        #expect(session.status == 0, "\(shown)\n\(session.stderrText)")
        let scrollBack = try #require(shown.range(of: "second-5"), "\(shown)")
        let attached = try #require(shown.range(of: "attached to hub's console"), "\(shown)")
        #expect(scrollBack.lowerBound < attached.lowerBound, "scroll-back comes before the live console: \(shown)")
        // The shell's prompts in the log carry a cursor query the terminal must not answer again.
        #expect(!shown[..<attached.lowerBound].contains("\u{1b}[6n"), "\(shown)")
        #expect(shown.contains("pty-42"))

        // Detached, not stopped: the VM runs and the hub still serves the other client.
        #expect(machine.end == nil)
        #expect(Self.type(second.fd, "echo still-$((3*3))\n"))
        let still = await Self.read(second.fd, until: "still-9")
        #expect(still.contains("still-9"), "\(still)")

        await hub.stop()
        #expect(!FileManager.default.fileExists(atPath: folder + "/console.sock"))
    }

    @Test("exec server: RemoteSession and `launch exec` get split streams, stdin, environment and the exit code; a client that hangs up has its command killed; no VM is one line with the fix")
    func execServer() async throws {
        let (root, folder) = try Self.recordFolder("ex")
        defer { try? FileManager.default.removeItem(at: root) }
        let launch = try Fixture.launchExecutable
        let environment = ProcessInfo.processInfo.environment.merging(["XDG_RUNTIME_DIR": root.path]) { $1 }
        var options = GuestKit.Options()
        options.concurrency = 2
        try await GuestKit.withSession(try Fixture.guestProfile("ex", command: nil), options: options) { guest in
            _ = FileHandle.nullDevice.fileDescriptor  // opened once per process: before the count
            let (fds, threads) = (Fixture.launcherFileDescriptorCount(), Fixture.launcherThreadCount())
            let server = try ExecServer.serve(session: guest, socketPath: folder + "/exec.sock")
            // From Swift: the fds given are the command's stdout and stderr, apart.
            let out = Pipe(), err = Pipe()
            let status = try await RemoteSession(socketPath: server.socketPath).run(
                shell: "echo out; echo err >&2; exit 3",
                options: .init(stdout: out.fileHandleForWriting.fileDescriptor, stderr: err.fileHandleForWriting.fileDescriptor))
            try out.fileHandleForWriting.close()
            try err.fileHandleForWriting.close()
            #expect(status == 3)
            #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "out\n")
            #expect(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "err\n")
            try out.fileHandleForReading.close()
            try err.fileHandleForReading.close()

            // The CLI: stdin in, split streams out, the command's exit code as its own.
            let shell = try await Self.onThread {
                try TestProcess.run(Self.bounded + [launch, "exec", "ex", "-e", "GREETING=hello", "-c", "cat; echo \"$GREETING\" >&2; exit 5"],
                                    input: Data("from stdin\n".utf8), environment: environment)
            }
            #expect(shell.status == 5, "\(shell.stderrText)")
            #expect(shell.stdoutText == "from stdin\n")
            #expect(shell.stderrText == "hello\n")
            let argv = try await Self.onThread {
                try TestProcess.run(Self.bounded + [launch, "exec", "ex", "--workdir", "/proc", "--", "sh", "-c", "pwd"], environment: environment)
            }
            #expect(argv.status == 0, "\(argv.stderrText)")
            #expect(argv.stdoutText == "/proc\n")

            // A client killed mid-command: the server sees the hang-up and kills it in the guest.
            let client = Process()
            client.executableURL = URL(fileURLWithPath: launch)
            client.arguments = ["exec", "ex", "--no-stdin", "--", "sleep", "1000"]
            client.environment = environment
            // The guest says "Killed" on the stderr it was given: not the test's output.
            client.standardError = FileHandle.nullDevice
            try client.run()
            for _ in 0..<600 where server.activeCount == 0 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(server.activeCount == 1)
            let sleeping = { @Sendable () async throws -> Int32 in
                try await RemoteSession(socketPath: server.socketPath).run(shell: "ps | grep -q '[s]leep 1000'")
            }
            var tries = 0
            while try await sleeping() != 0 && tries < 100 {
                tries += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await sleeping() == 0, "the sleep runs in the guest")
            client.interrupt()
            client.waitUntilExit()
            for _ in 0..<300 where server.activeCount > 0 { try await Task.sleep(for: .milliseconds(50)) }
            #expect(server.activeCount == 0)
            #expect(try await sleeping() == 1, "the sleep was killed in the guest")

            await server.stop()
            #expect(!FileManager.default.fileExists(atPath: folder + "/exec.sock"))
            // Every connection's fds (its socket, the passed streams, the hang-up watch) and
            // the server's thread are gone.
            // At most as many as before, not exactly as many: fds of earlier work in this test
            // process may close meanwhile (in a CI run the count fell from 30 to 27).
            try await Self.settle { Fixture.launcherFileDescriptorCount() <= fds && Fixture.launcherThreadCount() <= threads }
            #expect(Fixture.launcherFileDescriptorCount() <= fds)
            #expect(Fixture.launcherThreadCount() <= threads)
        }
        // No VM of that name: exit 71 (host problem), what to do next.
        let missing = try TestProcess.run(Self.bounded + [launch, "exec", "ex", "--", "true"], environment: environment)
        #expect(missing.status == 71)
        #expect(missing.stderrText.contains("VM ex: nothing serves the VM's exec server at \(folder)/exec.sock: the VM is not running"), "\(missing.stderrText)")
        #expect(missing.stderrText.contains("fix: launch list shows the VMs that run; launch up PROFILE starts one"))
    }

    @Test("the foreground `launch run` console on a pty: Ctrl-C reaches the guest's program, Ctrl-] stops the VM through the shutdown ladder")
    func runConsoleKeys() async throws {
        let folder = try Fixture.temporaryDirectory("keys")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("keys", command: nil)
        profile.runtimeDir = folder.path
        let profileURL = folder.appendingPathComponent("keys.json")
        try JSONEncoder().encode(profile).write(to: profileURL)
        let launch = try Fixture.launchExecutable
        let session = try await Self.onThread {
            try TestProcess.run(["/usr/bin/python3", "-c", Self.ptyDriver, launch, "run", profileURL.path],
                                input: Data("""
                                    [{"wait": "starting a shell on the console", "timeout": 150},
                                     {"send": "sleep 1000\\r"}, {"wait": "sleep 1000", "timeout": 30},
                                     {"interruptUntil": "keys-42", "probe": "echo keys-$((6*7))\\r", "timeout": 90},
                                     {"send": "\\u001d"}, {"wait": "stopping the VM", "timeout": 30}]
                                    """.utf8))
        }
        let shown = session.stdoutText
        #expect(session.status == 0, "\(shown)\n\(session.stderrText)")
        #expect(shown.contains("keys-42"))
        // The guest kit's init powers off on the ACPI button: a clean stop.
        #expect(shown.contains("shutdown: acpi-powerdown after"), "\(shown)")
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    /// Sends all of `text` to a socket.
    static func type(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads `fd` until `needle` shows up (or 90 s pass, or it ends); returns what came.
    static func read(_ fd: Int32, until needle: String) async -> String {
        await onThreadQuiet {
            var seen = Data()
            let deadline = ContinuousClock.now + .seconds(90)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !String(decoding: seen, as: UTF8.self).contains(needle) && ContinuousClock.now < deadline {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 500) >= 0 else { break }
                if poller.revents == 0 { continue }
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                seen.append(contentsOf: buffer[0..<n])
            }
            return String(decoding: seen, as: UTF8.self)
        }
    }

    /// Runs blocking work (a subprocess, a read) on its own thread, off the cooperative pool
    /// the guest's session needs.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    static func onThreadQuiet<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    /// Runs argv[1...] on a new pty and plays the JSON steps read from stdin: `wait` for
    /// text, `send` bytes, `interruptUntil`: send Ctrl-C then `probe` until the text shows
    /// (a Ctrl-C that lands before the guest's program runs is repeated). Then waits for
    /// the program to exit; prints everything the pty showed and exits with its status.
    static let ptyDriver = #"""
    import json, os, pty, select, sys, time
    steps = json.load(sys.stdin)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    out = b""
    def pump(seconds):
        global out
        r, _, _ = select.select([fd], [], [], seconds)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                return False
            out += chunk
        return True
    def fail(why):
        sys.stdout.write(out.decode(errors="replace"))
        sys.stdout.write("\nPTY DRIVER: " + why + "\n")
        sys.stdout.flush()
        os._exit(99)
    def wait(text, timeout):
        end = time.time() + timeout
        while text.encode() not in out:
            if time.time() > end:
                fail("timed out waiting for %r" % text)
            if not pump(0.2):
                fail("the program ended while waiting for %r" % text)
    for step in steps:
        if "wait" in step:
            wait(step["wait"], step["timeout"])
        elif "send" in step:
            os.write(fd, step["send"].encode())
        elif "interruptUntil" in step:
            end = time.time() + step["timeout"]
            while step["interruptUntil"].encode() not in out:
                if time.time() > end:
                    fail("timed out waiting for %r" % step["interruptUntil"])
                os.write(fd, b"\x03")
                time.sleep(1)
                os.write(fd, step["probe"].encode())
                limit = time.time() + 5
                while step["interruptUntil"].encode() not in out and time.time() < limit:
                    if not pump(0.2):
                        fail("the program ended on Ctrl-C")
    end = time.time() + 60
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            while pump(0.1):
                pass
            sys.stdout.write(out.decode(errors="replace"))
            sys.exit(os.waitstatus_to_exitcode(status))
        pump(0.2)
    fail("the program did not exit")
    """#
}

