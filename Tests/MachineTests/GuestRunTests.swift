import Foundation
import GuestKit
import QEMULaunch
import Testing

@Suite("Running commands in real guests (slow: boots the host kernel under TCG)", .serialized)
struct GuestRunTests {
    func run(_ command: [String], profile edit: (inout Profile) throws -> Void = { _ in }, stdin: GuestInput = .none) async throws -> GuestKit.Result {
        var profile = try Fixture.guestProfile("guestrun", command: command)
        try edit(&profile)
        var options = GuestKit.Options()
        options.stdin = stdin
        return try await GuestKit.run(profile, options: options)
    }

    @Test("the command's exit code comes back exactly", arguments: [0, 1, 7, 255])
    func exitCodes(code: Int32) async throws {
        let result = try await run(["sh", "-c", "exit \(code)"])
        #expect(result.exitCode == code)
        #expect(result.shutdown?.step == .guestPoweroff)
    }

    @Test("a command runs on every x86 machine: microvm (virtio-mmio), q35 and pc (PCI)", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing), arguments: [Profile.MachineKind.microvm, .q35, .pc])
    func everyMachine(machine: Profile.MachineKind) async throws {
        let folder = try Fixture.temporaryDirectory("m")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("shared\n".utf8).write(to: folder.appendingPathComponent("f"))
        let result = try await run(["sh", "-c", "cat /mnt/s/f; ls /sys/bus/virtio/devices | wc -l"]) { profile in
            profile.machine = machine
            profile.shares = [Profile.Share(tag: "s", path: folder.path)]
        }
        #expect(result.exitCode == 0, "stderr: \(result.stderrText)")
        let lines = result.stdoutText.split(separator: "\n")
        #expect(lines.first == "shared")
        // virtio-serial, virtio-rng and vhost-user-fs at least.
        #expect((Int(lines.last ?? "") ?? 0) >= 3)
    }

    @Test("stdout and stderr arrive separately, each in order")
    func separateStreams() async throws {
        let result = try await run(["sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"])
        #expect(result.stdoutText == "out1\nout2\nout3\nout4\nout5\n")
        #expect(result.stderrText == "err1\nerr2\nerr3\nerr4\nerr5\n")
        #expect(result.exitCode == 0)
    }

    @Test("a 10 MiB stdout arrives intact")
    func largeOutput() async throws {
        let size = 10 << 20
        let result = try await run(["sh", "-c", "yes 0123456789abcdef | head -c \(size)"])
        #expect(result.stdout.count == size)
        let line = Array("0123456789abcdef\n".utf8)
        let expected = Data((0..<size).map { line[$0 % line.count] })
        #expect(result.stdout == expected)
    }

    @Test("stdin bytes reach the command, then EOF")
    func stdinBytes() async throws {
        let result = try await run(["sh", "-c", "cat; echo done"], stdin: .bytes(Data("line one\nline two\n".utf8)))
        #expect(result.stdoutText == "line one\nline two\ndone\n")
    }

    @Test("a command reading stdin with no input sees EOF at once")
    func stdinEmpty() async throws {
        let result = try await run(["sh", "-c", "wc -c"])
        #expect(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test("a virtiofs share is readable, and writable when not read-only", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing))
    func virtiofsShareReadWrite() async throws {
        let folder = try Fixture.temporaryDirectory("shr")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("from the host\n".utf8).write(to: folder.appendingPathComponent("in.txt"))
        let result = try await run(["sh", "-c", "cat /mnt/work/in.txt && echo 'from the guest' > /mnt/work/out.txt"]) { profile in
            profile.shares = [Profile.Share(tag: "work", path: folder.path)]
        }
        #expect(result.exitCode == 0)
        #expect(result.stdoutText == "from the host\n")
        let written = try String(contentsOf: folder.appendingPathComponent("out.txt"), encoding: .utf8)
        #expect(written == "from the guest\n")
    }

    @Test("a read-only share refuses writes from the guest", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing), arguments: [Profile.ShareTransport.virtiofs, .ninep])
    func readOnlyShare(transport: Profile.ShareTransport) async throws {
        let folder = try Fixture.temporaryDirectory("ro")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("ro\n".utf8).write(to: folder.appendingPathComponent("in.txt"))
        let result = try await run(["sh", "-c", "cat /data/in.txt; echo x > /data/new.txt"]) { profile in
            profile.shares = [Profile.Share(tag: "data", path: folder.path, guestPath: "/data", readOnly: true, transport: transport)]
        }
        #expect(result.stdoutText == "ro\n")
        #expect(result.exitCode != 0)
        #expect(result.stderrText.contains("Read-only file system"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("new.txt").path))
    }

    @Test("a 9p share is readable and writable")
    func ninepShare() async throws {
        let folder = try Fixture.temporaryDirectory("9p")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("nine\n".utf8).write(to: folder.appendingPathComponent("in.txt"))
        let result = try await run(["sh", "-c", "cat /mnt/p9/in.txt && echo back > /mnt/p9/out.txt"]) { profile in
            profile.shares = [Profile.Share(tag: "p9", path: folder.path, transport: .ninep)]
        }
        #expect(result.stdoutText == "nine\n")
        #expect(try String(contentsOf: folder.appendingPathComponent("out.txt"), encoding: .utf8) == "back\n")
    }

    @Test("a guest panic is an error with code guestPanic (exit 125) and the console's last lines")
    func panic() async throws {
        do {
            _ = try await run(["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"])
            Issue.record("the panic was not reported")
        } catch let error as LaunchError {
            #expect(error.code == .guestPanic)
            #expect(error.description.contains("Kernel panic"))
        }
    }

    @Test("a command that runs past timeouts.run is an error with code timeout (exit 124), and nothing is left running")
    func runTimeout() async throws {
        let folder = try Fixture.temporaryDirectory("to")
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            _ = try await run(["sleep", "600"]) { profile in
                profile.timeouts.run = TimeLimit(.seconds(20))
                profile.runtimeDir = folder.path
            }
            Issue.record("the timeout did not fire")
        } catch let error as LaunchError {
            #expect(error.code == .timeout)
            #expect(error.message.contains("timeouts.run"))
        }
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).isEmpty)
    }

    @Test("a command that does not exist in the guest exits 127 with the shell's message")
    func missingCommand() async throws {
        let result = try await run(["no-such-program-here"])
        #expect(result.exitCode == 127)
        #expect(result.stderrText.contains("not found"))
    }
}

/// Scripts/fetch-guest-arm64 puts Debian's arm64 kernel, modules and busybox here (.ci/run runs it).
let arm64GuestReady = FileManager.default.fileExists(
    atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".cache/guests/arm64/.complete").path)

@Suite("An aarch64 guest on this host (slow: emulated virt machine)", .enabled(if: arm64GuestReady))
struct Arm64GuestTests {
    @Test("the bundled arm64 profile boots Debian's arm64 kernel under TCG and runs a guest-kit command")
    func arm64Command() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var profile = try Profile.load(contentsOf: root.appendingPathComponent("Profiles/arm64.json"))
        profile.timeouts.boot = TimeLimit(.seconds(180))
        profile.timeouts.run = TimeLimit(.seconds(240))
        var options = GuestKit.Options()
        options.command = ["sh", "-c", "uname -m; echo to-stderr >&2; exit 5"]
        let result = try await GuestKit.run(profile, options: options)
        #expect(result.stdoutText == "aarch64\n")
        #expect(result.stderrText == "to-stderr\n")
        #expect(result.exitCode == 5)
    }
}
