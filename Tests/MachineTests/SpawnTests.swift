import Foundation
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

/// The C shim's spawn (vfork on Linux): what the child starts with, and how a failed
/// exec is reported. QEMU and virtiofsd are started this way.
@Suite("ChildProcess.spawn: the child's signals, fds and environment, and exec failures")
struct SpawnTests {
    /// The child's /proc/self/status lines for its signal masks and dispositions.
    func childSignalState(whileParentIgnores ignored: Int32) async throws -> [String: String] {
        let previous = signal(ignored, SIG_IGN)
        defer { signal(ignored, previous) }
        let child = try ChildProcess.spawn(
            name: "probe", argv: ["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign|Cgt):' /proc/self/status"],
            environment: ["PATH": "/usr/bin:/bin"])
        #expect(await child.wait(timeout: .seconds(20)) == .exited(0))
        var fields: [String: String] = [:]
        for line in await settledOutput(child, lines: 3) {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }

    @Test("the child starts with no blocked and no ignored signals, whatever the launcher ignores")
    func cleanSignalState() async throws {
        // SIGPIPE and SIGHUP ignored in the launcher (as many hosts do) must not leak into QEMU.
        let fields = try await childSignalState(whileParentIgnores: SIGHUP)
        #expect(fields["SigBlk"].map { UInt64($0, radix: 16) } == 0, "\(fields)")
        // sh itself may ignore nothing at start-up; SIGHUP (bit 0) must not be ignored.
        let ignoredMask = fields["SigIgn"].flatMap { UInt64($0, radix: 16) }
        #expect(ignoredMask.map { $0 & 1 } == 0, "\(fields)")
    }

    @Test("a program that does not exist is a missingProgram error, and no child is left")
    func missingProgram() async throws {
        let before = zombieCount()
        #expect(throws: LaunchError.self) {
            _ = try ChildProcess.spawn(name: "ghost", argv: ["/nonexistent/qemu-ghost"], environment: [:])
        }
        do {
            _ = try ChildProcess.spawn(name: "ghost", argv: ["/nonexistent/qemu-ghost"], environment: [:])
        } catch {
            #expect(error.code == .missingProgram)
            #expect(error.message.contains("/nonexistent/qemu-ghost does not exist"))
        }
        #expect(zombieCount() <= before)
    }

    @Test("a file that is not executable fails with its reason (EACCES)")
    func notExecutable() throws {
        let path = NSTemporaryDirectory() + "spawn-not-exec-\(getpid())"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o644]))
        defer { unlink(path) }
        do {
            _ = try ChildProcess.spawn(name: "noexec", argv: [path], environment: [:])
            Issue.record("spawning a non-executable file succeeded")
        } catch {
            #expect(error.message.contains(String(cString: strerror(EACCES))), "\(error.message)")
        }
    }

    @Test("the child gets exactly the environment given, its exit code, and an extra fd at its target number")
    func environmentAndFds() async throws {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let child = try ChildProcess.spawn(
            name: "env", argv: ["/bin/sh", "-c", "env | sort; echo via-fd-5 >&5; exit 3"],
            environment: ["PATH": "/usr/bin:/bin", "ONLY_THIS": "yes"],
            extraFileDescriptors: [(source: fds[1], target: 5)])
        close(fds[1])
        #expect(await child.wait(timeout: .seconds(20)) == .exited(3))
        let lines = await settledOutput(child, lines: 3).filter { !$0.hasPrefix("PWD=") && !$0.hasPrefix("SHLVL=") && !$0.hasPrefix("_=") }
        #expect(lines == ["ONLY_THIS=yes", "PATH=/usr/bin:/bin"])
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fds[0], &buffer, buffer.count)
        #expect(n > 0 && String(decoding: buffer[0..<max(0, n)], as: UTF8.self) == "via-fd-5\n")
    }

    /// The child's output once its reader thread has caught up (it reads on after the reap).
    func settledOutput(_ child: ChildProcess, lines count: Int) async -> [String] {
        for _ in 0..<500 where child.outputTail.lines().count < count {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return child.outputTail.lines()
    }

    func zombieCount() -> Int {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { entry in
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[0] == "Z" && Int32(fields[1]) == me
        }.count
    }
}
