import Foundation
import QEMULaunch
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Warm start through the CLI, as a test suite runs it: `--snapshot auto` boots once and saves
/// the booted guest, later runs restore it (slow: boots guests under TCG).
@Suite("Warm start: runs restored from a snapshot instead of booting (slow: boots guests under TCG)", .serialized)
struct WarmStartTests {
    /// One cache folder (so one snapshot) and one share for the whole suite.
    final class Setup: Sendable {
        let folder: URL
        let cache: URL
        let share: URL
        let profile: URL

        init() throws {
            folder = try Fixture.temporaryDirectory("warm")
            cache = folder.appendingPathComponent("cache")
            share = folder.appendingPathComponent("share")
            try FileManager.default.createDirectory(at: share, withIntermediateDirectories: true)
            try Data("one\n".utf8).write(to: share.appendingPathComponent("file"))
            profile = folder.appendingPathComponent("warm.json")
            try Self.write(profile: profile, share: share, transport: "auto")
            // The suite's folder holds snapshots and a PVH vmlinux (100s of MB): gone when the
            // test process exits, since the suite's tests share it.
            atexit {
                if case .success(let setup) = WarmStartTests.fixture { try? FileManager.default.removeItem(at: setup.folder) }
            }
        }

        static func write(profile: URL, share: URL, transport: String) throws {
            try Data("""
                {"name": "warm", "machine": "microvm", "accel": "tcg", "memory": "256M", "kernel": "auto",
                 "shares": [{"tag": "s", "path": "\(share.path)", "guestPath": "/mnt/s", "transport": "\(transport)"}],
                 "timeouts": {"boot": "120s", "run": "120s", "shutdown": "10s"}}
                """.utf8).write(to: profile)
        }

        func launch(_ arguments: [String]) throws -> CLITests.Outcome {
            try CLITests.launch(arguments, environment: ["LAUNCH_CACHE_DIR": cache.path])
        }

        /// The snapshots in the cache: `KEY.state` files.
        var states: [URL] {
            let folder = cache.appendingPathComponent("snapshots")
            return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
                .filter { $0.hasSuffix(".state") && !$0.hasPrefix(".") }.map { folder.appendingPathComponent($0) }
        }

        /// Makes the snapshot with a cold run unless there is one (each test can run alone).
        func ensureSnapshot() throws {
            guard states.isEmpty else { return }
            let cold = try launch(["run", profile.path, "--snapshot", "auto", "--", "true"])
            try #require(cold.status == 0, "\(cold.stderr)")
            try #require(states.count == 1, "\(cold.stderr)")
        }
    }

    static let fixture = Swift.Result { try Setup() }

    @Test("a cold run with --snapshot auto saves the booted guest and returns the command's exit code; a warm run restores it, reads a share file changed after the snapshot, returns its own exit code and has the current wall clock")
    func coldThenWarm() async throws {
        let fixture = try Self.fixture.get()
        try Data("one\n".utf8).write(to: fixture.share.appendingPathComponent("file"))
        for state in fixture.states { try FileManager.default.removeItem(at: state) }

        let cold = try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--", "sh", "-c", "cat /mnt/s/file; exit 5"])
        #expect(cold.status == 5, "\(cold.stderr)")
        #expect(cold.stdout == "one\n")
        #expect(cold.stderr.contains("shares[0] \"s\": 9p (warm start:"), "\(cold.stderr)")
        #expect(cold.stderr.contains("snapshot: booting and saving one: no snapshot for this key yet"), "\(cold.stderr)")
        #expect(cold.stderr.contains("snapshot: saved the booted guest"), "\(cold.stderr)")
        let state = try #require(fixture.states.first, "no snapshot in \(fixture.cache.path): \(cold.stderr)")

        try Data("two\n".utf8).write(to: fixture.share.appendingPathComponent("file"))
        // The saved guest's clock stopped when it was saved: let it fall behind by more than
        // the check below allows, so a clock that was not set shows.
        let saved = try #require(try FileManager.default.attributesOfItem(atPath: state.path)[.modificationDate] as? Date)
        let behind = 4 - Date().timeIntervalSince(saved)
        if behind > 0 { try await Task.sleep(for: .milliseconds(Int(behind * 1000))) }

        let before = Date().timeIntervalSince1970
        let warm = try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--", "sh", "-c", "cat /mnt/s/file; date +%s; exit 7"])
        let after = Date().timeIntervalSince1970
        #expect(warm.status == 7, "\(warm.stderr)")
        #expect(warm.stderr.contains("snapshot: restoring the saved guest \(state.path)"), "\(warm.stderr)")
        let lines = warm.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "two", "\(warm.stdout)")
        let guestClock = try #require(lines.count == 2 ? Double(lines[1]) : nil, "\(warm.stdout)")
        // Whole seconds (date -s @N): at most a second behind the host, never ahead of it.
        #expect(guestClock >= before.rounded(.down) - 1 && guestClock <= after + 1,
                "guest clock \(guestClock), host \(before)...\(after)")
    }

    @Test("two runs restored from one snapshot at once both succeed, each with its own output, hostname and random bytes")
    func twoAtOnce() async throws {
        let fixture = try Self.fixture.get()
        try fixture.ensureSnapshot()
        let script = "echo run-$0; hostname; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo"
        async let a = Task.detached { try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--", "sh", "-c", script, "a"]) }.value
        async let b = Task.detached { try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--", "sh", "-c", script, "b"]) }.value
        let (first, second) = try await (a, b)
        for (outcome, name) in [(first, "a"), (second, "b")] {
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.stderr.contains("snapshot: restoring the saved guest"), "\(outcome.stderr)")
            #expect(outcome.stdout.hasPrefix("run-\(name)\n"), "\(outcome.stdout)")
        }
        let (linesA, linesB) = (first.stdout.split(separator: "\n"), second.stdout.split(separator: "\n"))
        try #require(linesA.count == 3 && linesB.count == 3, "\(first.stdout)\n\(second.stdout)")
        #expect(linesA[1] != linesB[1], "the same hostname: \(linesA[1])")
        #expect(linesA[2] != linesB[2], "the same random bytes from /dev/urandom: \(linesA[2])")
    }

    @Test("a run whose key differs (here --memory) boots cold and saves its own snapshot, said in one line")
    func changedKey() throws {
        let fixture = try Self.fixture.get()
        try fixture.ensureSnapshot()
        let count = fixture.states.count
        let changed = try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--memory", "320M", "--", "sh", "-c", "exit 3"])
        #expect(changed.status == 3, "\(changed.stderr)")
        #expect(changed.stderr.contains("snapshot: booting and saving one: no snapshot for this key yet"), "\(changed.stderr)")
        #expect(fixture.states.count == count + 1, "\(changed.stderr)")
        let again = try fixture.launch(["run", fixture.profile.path, "--snapshot", "auto", "--memory", "320M", "--", "true"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("snapshot: restoring the saved guest"), "\(again.stderr)")
    }

    @Test("a share that insists on virtiofs on microvm says in one line why it can't warm-start, and the run boots and succeeds",
          .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing))
    func virtiofsShareBootsCold() throws {
        let fixture = try Self.fixture.get()
        let profile = fixture.folder.appendingPathComponent("virtiofs.json")
        try Setup.write(profile: profile, share: fixture.share, transport: "virtiofs")
        let outcome = try fixture.launch(["run", profile.path, "--snapshot", "auto", "--", "cat", "/mnt/s/file"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(!outcome.stdout.isEmpty)
        #expect(outcome.stderr.contains("snapshot: off for this run, booting: shares[0] \"s\" asks for virtiofs, which QEMU 7.2 can't save in a snapshot"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("snapshot: saved"), "\(outcome.stderr)")
    }
}
