// How a test suite uses the launcher from its own package: boot a guest, run
// commands in it, and trust that whatever ends a test (a result, a throw, a
// cancelled task) ends its VM and leaves the process as it was.

import Foundation
import GuestKit
import QEMULaunch
import Synchronization
import Testing

@Suite("Guest sessions in a test runner's process (slow: boots guests under TCG)", .serialized)
struct GuestSessionTests {
    @Test("one session runs many commands in one boot, each with its own exit code, environment, working directory and stdin")
    func manyCommandsOneBoot() async throws {
        let folder = try temporaryFolder("many")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try guestProfile("many", folder: folder)
        let results = try await GuestKit.withSession(profile) { guest in
            var bootIDs: Set<String> = []
            for _ in 0..<5 {
                bootIDs.insert(try await guest.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdoutText)
            }
            let env = try await guest.run(shell: "echo \"$GREETING\"", options: .init(environment: ["GREETING": "hello there"]))
            let cwd = try await guest.run(["pwd"], options: .init(workingDirectory: "/mnt/work"))
            let read = try await guest.run(["cat", "greeting.txt"], options: .init(workingDirectory: "/mnt/work"))
            let stdin = try await guest.run(["tr", "a-z", "A-Z"], options: .init(stdin: .bytes(Data("shout\n".utf8))))
            let failed = try await guest.run(shell: "echo oops >&2; exit 42")
            return (bootIDs, env, cwd, read, stdin, failed)
        }
        #expect(results.0.count == 1, "every command saw the same boot: \(results.0)")
        #expect(results.1.stdoutText == "hello there\n")
        #expect(results.2.stdoutText == "/mnt/work\n")
        #expect(results.3.stdoutText == "from the host\n")
        #expect(results.4.stdoutText == "SHOUT\n")
        #expect(results.5.exitCode == 42)
        #expect(results.5.stderrText == "oops\n")
        #expect(processes(mentioning: folder.path).isEmpty)
    }

    @Test("a session runs several commands at the same time")
    func concurrentCommands() async throws {
        let folder = try temporaryFolder("conc")
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = GuestKit.Options()
        options.concurrency = 4
        let outputs = try await GuestKit.withSession(try guestProfile("conc", folder: folder), options: options) { guest in
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<4 {
                    // Each waits until all four have started: they finish only if they run at once.
                    group.addTask {
                        let script = "touch /tmp/started-\(index); while [ $(ls /tmp | grep -c started-) -lt 4 ]; do sleep 0.1; done; echo \(index)"
                        return try await guest.run(shell: script, options: .init(timeout: .after(.seconds(120)))).stdoutText
                    }
                }
                var all: [String] = []
                for try await output in group { all.append(output) }
                return all.sorted()
            }
        }
        #expect(outputs == ["0\n", "1\n", "2\n", "3\n"])
    }

    @Test("with one slot, commands wait their turn; a waiting command whose task is cancelled throws cancelled and takes no slot")
    func waitingForASlot() async throws {
        let folder = try temporaryFolder("slot")
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = GuestKit.Options()
        options.concurrency = 1
        let outputs = try await GuestKit.withSession(try guestProfile("slot", folder: folder), options: options) { guest in
            async let first = guest.run(shell: "sleep 2; echo first")
            try await Task.sleep(for: .milliseconds(300))
            let waiting = Task { try await guest.run(shell: "echo never") }
            try await Task.sleep(for: .milliseconds(300))
            waiting.cancel()
            var cancelled = false
            do { _ = try await waiting.value } catch let error as LaunchError { cancelled = error.code == .cancelled }
            let second = try await guest.run(shell: "echo second")
            return (try await first.stdoutText, cancelled, second.stdoutText)
        }
        #expect(outputs.0 == "first\n")
        #expect(outputs.1, "the waiting command threw cancelled")
        #expect(outputs.2 == "second\n", "the slot went to the next command")
    }

    @Test("a command past its timeout is killed with its children and the session goes on")
    func timeoutKillsAndContinues() async throws {
        let folder = try temporaryFolder("to")
        defer { try? FileManager.default.removeItem(at: folder) }
        let after = try await GuestKit.withSession(try guestProfile("to", folder: folder)) { guest in
            do {
                // A child that outlives the shell would keep stdout open: the whole group must go.
                _ = try await guest.run(shell: "sleep 300 & sleep 301; echo never", options: .init(timeout: .after(.seconds(3))))
                Issue.record("the timeout did not fire")
            } catch let error as LaunchError {
                #expect(error.code == .timeout)
            }
            return try await guest.run(shell: "ps | grep -c '[s]leep 30' || true").stdoutText
        }
        #expect(after == "0\n", "no sleep survives its command's timeout")
    }

    @Test("cancelling the task that runs GuestKit.run stops QEMU and virtiofsd within seconds and throws cancelled")
    func cancellationStopsTheVM() async throws {
        let folder = try temporaryFolder("cancel")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = StreamedText()
        var options = GuestKit.Options()
        options.command = ["sh", "-c", "echo running; sleep 60"]
        options.stdout = .handler { output.append($0) }
        let profile = try guestProfile("cancel", folder: folder)
        let run = Task { try await GuestKit.run(profile, options: options) }
        try await output.wait(for: "running\n")
        #expect(processes(mentioning: folder.path).count >= 2, "QEMU and virtiofsd run")
        let cancelled = ContinuousClock.now
        run.cancel()
        do {
            let result = try await run.value
            Issue.record("a cancelled run returned a result: exit \(result.exitCode)")
        } catch let error as LaunchError {
            #expect(error.code == .cancelled)
        }
        let took = cancelled.duration(to: .now)
        // A hang guard, not a speed claim: the sleep would have run for 60 s.
        #expect(took < .seconds(30), "cancellation took \(took)")
        #expect(processes(mentioning: folder.path).isEmpty, "QEMU or virtiofsd still running")
        #expect(ProcessFootprint.now(runtimeBase: folder).runtimeDirs == 0)
    }

    struct Failure: Error {}

    @Test("a throw inside withSession's body ends the VM: nothing runs and no runtime dir is left")
    func throwInScopedBody() async throws {
        let folder = try temporaryFolder("throw")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try guestProfile("throw", folder: folder)
        var sawVM = false
        await #expect(throws: Failure.self) {
            try await GuestKit.withSession(profile) { guest in
                _ = try await guest.run(["true"])
                sawVM = !processes(mentioning: folder.path).isEmpty
                throw Failure()
            }
        }
        #expect(sawVM)
        #expect(processes(mentioning: folder.path).isEmpty)
        #expect(ProcessFootprint.now(runtimeBase: folder).runtimeDirs == 0)
    }

    @Test("a throw inside Machine.withRunning's body ends the VM through the ladder")
    func throwInMachineBody() async throws {
        let folder = try temporaryFolder("mthrow")
        defer { try? FileManager.default.removeItem(at: folder) }
        let prepared = try await GuestKit.prepare(try guestProfile("mthrow", folder: folder), options: GuestKit.Options(), sessionSlots: 0)
        var options = Machine.Options()
        options.kernelEntry = prepared.kernelEntry
        options.kernelArguments = prepared.kernelArguments
        await #expect(throws: Failure.self) {
            try await Machine.withRunning(prepared.profile, options: options) { vm in
                _ = try await vm.qmp.queryStatus()
                throw Failure()
            }
        }
        #expect(processes(mentioning: folder.path).isEmpty)
        #expect(ProcessFootprint.now(runtimeBase: folder).runtimeDirs == 0)
    }

    @Test("running guests cost the launcher at most two OS threads each (QMP's reader, and a stdin pump while a command reads stdin)")
    func threadsPerGuest() async throws {
        let folder = try temporaryFolder("thr")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try guestProfile("thr", folder: folder)
        // Warm up: the shared I/O thread, the spawner thread, Dispatch's and Foundation's own threads.
        _ = try await GuestKit.withSession(profile) { try await $0.run(["true"]) }
        let baseline = ProcessFootprint.now(runtimeBase: folder).threads
        let guests = 3
        final class Counts: Sendable {
            let ready = Mutex(0)
            let peak = Mutex(0)
        }
        let counts = Counts()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<guests {
                var named = profile
                named.name = "thr\(index)"
                let guestProfile = named
                group.addTask {
                    try await GuestKit.withSession(guestProfile) { guest in
                        _ = try await guest.run(["true"])
                        counts.ready.withLock { $0 += 1 }
                        // Hold the guest up until all are running, then count.
                        while counts.ready.withLock({ $0 }) < guests { try await Task.sleep(for: .milliseconds(50)) }
                        let now = ProcessFootprint.now(runtimeBase: folder).threads
                        counts.peak.withLock { $0 = max($0, now) }
                        _ = try await guest.run(["sleep", "1"])
                    }
                }
            }
            try await group.waitForAll()
        }
        let peak = counts.peak.withLock { $0 }
        let perGuest = Double(peak - baseline) / Double(guests)
        print("threads: \(baseline) with no guest, \(peak) with \(guests) running: \(perGuest) per guest")
        #expect(perGuest <= 2, "\(perGuest) threads per running guest")
    }
}
