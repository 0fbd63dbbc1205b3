import Foundation
import QEMULaunch
import TestSupport
import Testing

/// Named VMs run by the `launch` command as a user would: `up`, `list`, `qmp`, `down`
/// (slow: boots guest-kit guests under TCG). Each test has its own XDG_RUNTIME_DIR, so
/// it sees neither the user's VMs nor another test's.
@Suite("Named VMs: launch up, list, qmp, down (slow: boots guests under TCG)", .serialized)
struct NamedVMTests {
    /// A temporary XDG_RUNTIME_DIR and a guest-kit profile in it.
    struct Place {
        let folder: URL
        let profile: String
        var environment: [String: String] { ["XDG_RUNTIME_DIR": folder.path] }
        var records: String { folder.path + "/qemu-launch/vms" }

        /// A guest-kit profile, or with `ownInit` an initramfs of its own that prints a line
        /// the profile's `ready` waits for, then sleeps (it ignores its host going away).
        init(_ label: String, ownInit: Bool = false) throws {
            folder = try Fixture.temporaryDirectory(label)
            var profileValue = try Fixture.guestProfile("named", command: nil)
            if ownInit {
                profileValue.initrd = try Fixture.initramfs(script: "echo named-vm-ready\nwhile true; do sleep 1000; done", in: folder)
                profileValue.cmdline = "console=ttyS0"
                profileValue.ready = Profile.Readiness(consoleText: "named-vm-ready")
            }
            profile = folder.appendingPathComponent("named.json").path
            try JSONEncoder().encode(profileValue).write(to: URL(fileURLWithPath: profile))
        }

        func launch(_ arguments: [String]) throws -> CLITests.Outcome {
            try CLITests.launch(arguments, environment: environment)
        }

        /// `launch list --json`, parsed.
        func list() throws -> [[String: Any]] {
            let outcome = try launch(["list", "--json"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]], "\(outcome.stdout)")
        }

        func remove() { try? FileManager.default.removeItem(at: folder) }
    }

    /// Whether `pid` runs (a zombie waiting for its reaper does not).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test("up returns once the guest kit's init reports in; list shows it running; qmp answers; exec returns the exit code; the console has a shell; a second up of the name is refused; down ends it at the ACPI step and removes its record")
    func upListQMPDown() throws {
        let place = try Place("up")
        defer { place.remove() }
        let up = try place.launch(["up", place.profile, "--name", "dev", "--accel", "tcg"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("dev is up after"), "\(up.stdout)")
        #expect(up.stdout.contains("launch down dev"), "\(up.stdout)")
        defer { _ = try? place.launch(["down", "dev", "--force"]) }

        let listed = try place.list()
        let entry = try #require(listed.first { $0["name"] as? String == "dev" }, "\(listed)")
        #expect(listed.count == 1)
        #expect(entry["state"] as? String == "running")
        #expect(entry["memoryMiB"] as? Int == 256)
        let qemuPid = try #require(entry["qemuPid"] as? Int)
        #expect(Self.isRunning(Int32(qemuPid)))
        // The record folder is private, and the sockets are in it.
        var info = stat()
        #expect(lstat(place.records + "/dev", &info) == 0 && (info.st_mode & 0o777) == 0o700)
        #expect(FileManager.default.fileExists(atPath: place.records + "/dev/qmp.sock"))

        let status = try place.launch(["qmp", "dev", #"{"execute":"query-status"}"#])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains(#""status":"running""#), "\(status.stdout)")
        let bad = try place.launch(["qmp", "dev", #"{"execute":"no-such-command"}"#])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains(#""class":"CommandNotFound""#), "\(bad.stdout)")

        // The supervisor serves the guest session's exec channel: a command's exit code comes back.
        let exec = try place.launch(["exec", "dev", "--no-stdin", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(exec.status == 3, "\(exec.stderr)")
        #expect(exec.stdout == "out\n")
        #expect(exec.stderr == "err\n")
        #expect(FileManager.default.fileExists(atPath: place.records + "/dev/console.sock"))
        // `launch console` on a pty, as a user attaches: the console has a shell of its own
        // beside the session, so a line typed there runs and its answer shows; Ctrl-] detaches.
        let console = try TestProcess.run(
            ["/usr/bin/python3", "-c", ConsoleExecTests.ptyDriver, try Fixture.launchExecutable, "console", "dev"],
            input: Data("""
                [{"wait": "attached to dev's console", "timeout": 30},
                 {"send": "echo console-shell-$((6*7))\\r"}, {"wait": "console-shell-42", "timeout": 60},
                 {"send": "\\u001d"}, {"wait": "detached from dev's console", "timeout": 30}]
                """.utf8),
            environment: ProcessInfo.processInfo.environment.merging(place.environment) { $1 })
        #expect(console.status == 0, "\(console.stdoutText)\n\(console.stderrText)")
        #expect(console.stdoutText.contains("console-shell-42"), "no shell answered on the console: \(console.stdoutText)")

        let second = try place.launch(["up", place.profile, "--name", "dev", "--accel", "tcg"])
        #expect(second.status == 71)
        #expect(second.stderr.contains("VM dev is running already"), "\(second.stderr)")
        #expect(second.stderr.contains("launch down dev"), "\(second.stderr)")

        let down = try place.launch(["down", "dev"])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(down.stdout.contains("acpi-powerdown"), "\(down.stdout)")
        #expect(!Self.isRunning(Int32(qemuPid)))
        #expect(try place.list().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: place.records + "/dev"))
    }

    @Test("up of your own OS returns at its ready console line; a SIGKILLed supervisor takes its QEMU with it; list reports the record stale, up refuses the name, and down removes the record")
    func killedSupervisor() async throws {
        // Your own init, not the guest kit's: it would power off when its host hangs up,
        // which would hide a QEMU the supervisor's death failed to kill.
        let place = try Place("kill", ownInit: true)
        defer { place.remove() }
        let up = try place.launch(["up", place.profile, "--name", "gone", "--accel", "tcg"])
        #expect(up.status == 0, "\(up.stderr)")
        defer { _ = try? place.launch(["down", "gone", "--force"]) }
        let log = try String(contentsOfFile: place.records + "/gone/console.log", encoding: .utf8)
        #expect(log.contains("named-vm-ready"))
        let entry = try #require(try place.list().first)
        let supervisor = Int32(try #require(entry["supervisorPid"] as? Int))
        let qemu = Int32(try #require(entry["qemuPid"] as? Int))
        #expect(Self.isRunning(qemu))

        kill(supervisor, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.isRunning(qemu), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!Self.isRunning(qemu), "QEMU \(qemu) outlived its supervisor")

        #expect(try place.list().first?["state"] as? String == "stale")
        let again = try place.launch(["up", place.profile, "--name", "gone", "--accel", "tcg"])
        #expect(again.status == 71)
        #expect(again.stderr.contains("stale record"), "\(again.stderr)")
        let down = try place.launch(["down", "gone"])
        #expect(down.status == 0, "\(down.stderr)")
        #expect(down.stdout.contains("stale"), "\(down.stdout)")
        #expect(try place.list().isEmpty)
    }
}
