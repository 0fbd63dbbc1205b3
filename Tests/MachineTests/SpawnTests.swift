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

import CLaunchShim

/// How every child of the launcher is spawned: probes and tools too, not only QEMU.
@Suite("One way to spawn: the shim, for probes and tools too, and its failures reported", .serialized)
struct ShimSpawnPathTests {
    /// "pid sid" of the process that read /proc/self/stat.
    static func pidAndSession(_ stat: String) -> (pid: Int, session: Int)? {
        // Fields after the command name (which is in parentheses): state ppid pgrp session ...
        guard let close = stat.lastIndex(of: ")"), let pid = Int(stat.prefix(while: { $0 != " " })) else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 3, let session = Int(rest[3]) else { return nil }
        return (pid, session)
    }

    @Test("a host probe (HostProbe.capture) runs through the shim: its child leads a session of its own")
    func probeThroughShim() throws {
        // Foundation's Process keeps the launcher's session; the shim calls setsid() (and
        // sets the parent-death signal in the same step).
        let output = try HostProbe.capture(["/bin/sh", "-c", "exec cat /proc/self/stat"])
        let ids = try #require(Self.pidAndSession(output), "\(output)")
        #expect(ids.session == ids.pid, "\(output)")
        #expect(ids.session != Int(getsid(0)))
    }

    @Test("a probe that hangs is killed at its deadline and the error says so")
    func probeDeadline() throws {
        let started = ContinuousClock.now
        do {
            _ = try HostProbe.capture(["/bin/sleep", "600"], timeout: .milliseconds(300))
            Issue.record("a hanging probe returned")
        } catch {
            #expect(error.code == .hostProblem)
            #expect(error.message.contains("did not finish within 300 ms"), "\(error)")
        }
        // A hang guard, not a timing claim: the probe must not wait for sleep's 600 s.
        #expect(started.duration(to: .now) < .seconds(120))
    }

    @Test("when the shim can't start its spawner thread, spawn fails with the reason instead of waiting forever")
    func spawnerThreadFailure() async throws {
        cls_test_fail_spawner_start(1)
        defer { cls_test_fail_spawner_start(0) }
        // On a thread of its own: a regression blocks in the shim, and the test must still end.
        let outcome = Mutex<Result<ChildProcess, LaunchError>?>(nil)
        let thread = Thread {
            let result = Result { () throws(LaunchError) in
                try ChildProcess.spawn(name: "true", argv: ["/bin/true"], environment: [:])
            }
            outcome.withLock { $0 = result }
        }
        thread.start()
        for _ in 0..<600 where outcome.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(100)) }
        switch outcome.withLock({ $0 }) {
        case nil:
            Issue.record("spawn still waits 60 s after the spawner thread failed to start")
        case .success(let child):
            Issue.record("spawn succeeded without a spawner thread")
            _ = await child.wait()
        case .failure(let error):
            #expect(error.code == .hostProblem)
            #expect(error.message.contains("Resource temporarily unavailable"), "\(error)")
            #expect(error.fix?.contains("ulimit -u") == true)
        }
    }
}
