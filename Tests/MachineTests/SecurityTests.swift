import Foundation
import GuestKit
import QEMULaunch
import QMP
import Testing

@Suite("Security and hostile paths with real QEMU (slow)", .serialized)
struct SecurityTests {
    func pausedMachine(_ name: String, folder: URL, edit: (inout Profile) throws -> Void = { _ in }) async throws -> Machine {
        var profile = Profile(name: name)
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(128)
        profile.kernel = try Fixture.kernel
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(60))
        try edit(&profile)
        return try await Machine.start(profile)
    }

    @Test("the runtime dir is 0700 and another user can't reach its sockets", .enabled(if: geteuid() == 0, "switching users needs root"))
    func socketsPrivate() async throws {
        let folder = try Fixture.temporaryDirectory("sec")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The parent folder is open to all, so only the runtime dir's own mode protects the sockets.
        chmod(folder.path, 0o755)
        let machine = try await pausedMachine("private", folder: folder)
        let attributes = try FileManager.default.attributesOfItem(atPath: machine.runtimeDirectory.path)
        #expect(attributes[.posixPermissions] as? Int == 0o700)
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        probe.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/busybox", "ls", machine.plan.sockets.qmp]
        let pipe = Pipe()
        probe.standardError = pipe
        probe.standardOutput = pipe
        try probe.run()
        let said = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        probe.waitUntilExit()
        #expect(probe.terminationStatus != 0)
        #expect(said.contains("Permission denied"), "nobody saw: \(said)")
        await machine.shutdown(stepTimeout: .seconds(5), skipACPI: true)
    }

    @Test("QEMU and virtiofsd are the launcher's own children (no shell between), with an explicit environment", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing))
    func childrenAndEnvironment() async throws {
        let folder = try Fixture.temporaryDirectory("env")
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = folder.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        setenv("LAUNCH_TEST_SECRET", "do-not-leak", 1)
        defer { unsetenv("LAUNCH_TEST_SECRET") }
        let machine = try await pausedMachine("env", folder: folder) { $0.shares = [Profile.Share(tag: "s", path: shared.path)] }
        for child in [machine.qemu] + machine.virtiofsd {
            let stat = try String(contentsOfFile: "/proc/\(child.pid)/stat", encoding: .utf8)
            // Field 4 is the parent pid; the command name in field 2 may hold spaces, so split after ')'.
            let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
            #expect(Int32(fields[1]) == getpid(), "\(child.name)'s parent is not the launcher")
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/exe")
            #expect(exe == child.argv[0] || exe.hasSuffix(URL(fileURLWithPath: child.argv[0]).lastPathComponent))
            let environ = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(child.pid)/environ")), as: UTF8.self)
                .split(separator: "\0").map(String.init)
            #expect(!environ.contains { $0.hasPrefix("LAUNCH_TEST_SECRET=") })
            #expect(environ.contains("LC_ALL=C"))
            #expect(Set(environ.map { String($0.prefix { $0 != "=" }) }).isSubset(of: ["PATH", "LC_ALL", "HOME", "TMPDIR", "XDG_RUNTIME_DIR"]))
        }
        await machine.shutdown(stepTimeout: .seconds(5), skipACPI: true)
    }

    static let hostileNames = ["with space", "com,ma", "readonly=off,x", "new\nline", "quote'single", "quote\"double", "ünïcødé-日本", "dollar$(x)"]

    @Test("a disk path with spaces, commas, newlines, quotes or non-ASCII reaches QEMU as exactly that path", arguments: hostileNames)
    func hostileDiskPath(name: String) async throws {
        let folder = try Fixture.temporaryDirectory("dp")
        defer { try? FileManager.default.removeItem(at: folder) }
        let disk = folder.appendingPathComponent("\(name).img")
        try Data(count: 1 << 20).write(to: disk)
        let machine = try await pausedMachine("hostile", folder: folder) { $0.disks = [Profile.Disk(path: disk.path)] }
        let blocks = try await machine.qmp.execute("query-block")
        let files = (blocks.arrayValue ?? []).compactMap { $0["inserted"]?["file"]?.stringValue }
        #expect(files == [disk.path])
        await machine.shutdown(stepTimeout: .seconds(5), skipACPI: true)
    }

    @Test("a share whose path has hostile characters is read by the guest through virtiofs and 9p", .enabled(if: HostNeeds.virtiofsd, HostNeeds.virtiofsdMissing),
          arguments: [Profile.ShareTransport.virtiofs, .ninep])
    func hostileSharePath(transport: Profile.ShareTransport) async throws {
        let folder = try Fixture.temporaryDirectory("sp")
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = folder.appendingPathComponent("a b,c=d 'q' \"dq\" ünï")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        try Data("reached\n".utf8).write(to: shared.appendingPathComponent("f.txt"))
        var profile = try Fixture.guestProfile("hostileshare", command: ["cat", "/mnt/h/f.txt"])
        profile.shares = [Profile.Share(tag: "h", path: shared.path, transport: transport)]
        let result = try await GuestKit.run(profile)
        #expect(result.stdoutText == "reached\n", "stderr: \(result.stderrText)")
    }
}
