import Foundation
import GuestKit
import QEMULaunch
import TestSupport
import Testing

/// `launch plan` and `launch run` on a profile with problems of every kind (boots nothing).
@Suite("An invalid profile's problems of every kind are listed at once by launch plan and launch run")
struct OnePassCLITests {
    /// A folder with a QEMU that lacks 9p (a wrapper of the real one that leaves the
    /// virtio-9p devices out of `-device help`) and a profile with problems of every kind.
    struct Setup {
        let folder: URL
        let profile: URL
        let qemu: String
    }

    func setup() throws -> Setup {
        let folder = try Fixture.temporaryDirectory("onepass")
        let qemu = folder.appendingPathComponent("qemu-system-x86_64").path
        let real = try #require(HostProbe.findProgram("qemu-system-x86_64"), "no qemu-system-x86_64 on PATH")
        try Data("""
            #!/bin/sh
            # A QEMU built without virtfs (9p).
            if [ "$1" = "-device" ] && [ "$2" = "help" ]; then
                \(real) -device help | grep -v virtio-9p
                exit 0
            fi
            exec \(real) "$@"

            """.utf8).write(to: URL(fileURLWithPath: qemu))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: qemu)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("src"), withIntermediateDirectories: true)
        let profile = folder.appendingPathComponent("bad.json")
        // The JSON's problems (an unknown key, a bad size), the host's (a missing share
        // folder, a duplicate tag), the planner's (hvf on Linux) and the QEMU binary's (no 9p).
        try Data("""
            {"name": "bad", "kernel": "\(try Fixture.kernel)", "memroy": "1G", "memory": "lots", "accel": "hvf",
             "qemu": {"binary": "\(qemu)"},
             "shares": [{"tag": "a", "path": "/nonexistent", "transport": "9p"},
                        {"tag": "a", "path": "\(folder.path)/src", "transport": "9p"}]}
            """.utf8).write(to: profile)
        return Setup(folder: folder, profile: profile, qemu: qemu)
    }

    @Test("decode, host-file, planner and capability problems in one list, each with its path and fix, exit 65",
          arguments: ["plan", "run"])
    func everyKindAtOnce(subcommand: String) throws {
        let setup = try setup()
        defer { try? FileManager.default.removeItem(at: setup.folder) }
        let outcome = try CLITests.launch([subcommand, setup.profile.path])
        let expected = """
            launch: invalid profile \(setup.profile.path): 6 problems
              - memroy: unknown key "memroy" in a profile (fix: did you mean "memory"?)
              - memory: expected a size like "512M" or "2G" (not a size: "lots")
              - shares[0].path: no folder at /nonexistent (fix: create it or fix the path)
              - shares[1].tag: duplicate tag "a" (also shares[0].tag) (fix: give every share its own tag)
              - accel: hvf is not available on linux (fix: use "accel": "kvm", "tcg" or "auto")
              - shares: \(setup.qemu) has no device virtio-9p-device (fix: this QEMU was built without virtfs (9p): use "transport": "virtiofs", or a QEMU with 9p (Debian's qemu-system-x86/-arm have it; some distro and Homebrew builds don't))

            """
        #expect(outcome.status == 65)
        // Nothing else: no second header, no initramfs built, no VM started.
        #expect(outcome.stderr == expected)
        #expect(outcome.stdout == "")
    }

    @Test("a profile whose JSON is fine lists the planner's and the QEMU binary's problems with the host's, at once",
          arguments: ["plan", "run"])
    func cleanJSONStillOnePass(subcommand: String) throws {
        let setup = try setup()
        defer { try? FileManager.default.removeItem(at: setup.folder) }
        var text = try String(contentsOf: setup.profile, encoding: .utf8)
        text = text.replacingOccurrences(of: #""memroy": "1G", "memory": "lots", "#, with: "")
        try Data(text.utf8).write(to: setup.profile)
        let outcome = try CLITests.launch([subcommand, setup.profile.path])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.hasPrefix("launch: invalid profile \(setup.profile.path): 4 problems\n"), "\(outcome.stderr)")
        for path in ["shares[0].path", "shares[1].tag", "accel", "shares"] {
            #expect(outcome.stderr.contains("\n  - \(path): "), "\(path)")
        }
    }

    @Test("Machine.start and GuestKit.run on a profile read with its problems deferred throw the same one list")
    func libraryCallersGetTheSameList() async throws {
        let setup = try setup()
        defer { try? FileManager.default.removeItem(at: setup.folder) }
        let profile = try Profile.loadDeferringProblems(contentsOf: setup.profile)
        let paths = ["memroy", "memory", "shares[0].path", "shares[1].tag", "accel", "shares"]
        do {
            _ = try await Machine.start(profile)
            Issue.record("Machine.start started an invalid profile")
        } catch {
            #expect(error.code == .invalidProfile)
            #expect(error.problems?.source == setup.profile.path)
            #expect(error.problems?.problems.map(\.path) == paths, "\(error)")
        }
        var options = GuestKit.Options()
        options.command = ["true"]
        // Refused before the initramfs is built: building it would fail on this busybox first.
        options.busybox = setup.folder.appendingPathComponent("no-busybox").path
        do {
            _ = try await GuestKit.run(profile, options: options)
            Issue.record("GuestKit.run booted an invalid profile")
        } catch {
            #expect(error.code == .invalidProfile)
            #expect(error.problems?.problems.map(\.path) == paths, "\(error)")
        }
    }
}
