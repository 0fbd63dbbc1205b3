import Foundation
import QEMULaunch
import QMP
import Testing

@Suite("Scale: one process supervises many QEMUs (slow)", .serialized)
struct ScaleTests {
    static func peakRSSKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    @Test("32 paused microvms all reach QMP-ready, answer commands and shut down cleanly, with the launcher's threads and fds back to where they were")
    func thirtyTwoMachines() async throws {
        let folder = try Fixture.temporaryDirectory("scale")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = Profile(name: "scale")
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(64)
        profile.kernel = try Fixture.kernel
        profile.runtimeDir = folder.path
        profile.timeouts.boot = TimeLimit(.seconds(120))
        // Warm up: one-time costs (the spawner thread, Dispatch's and Foundation's own fds and
        // threads) are not per-VM and must not count.
        let warmup = try await Machine.start(profile)
        await warmup.shutdown(stepTimeout: .seconds(10), skipACPI: true)
        let threadsBefore = Fixture.launcherThreadCount()
        let fdsBefore = Fixture.launcherFileDescriptorCount()
        let rssBefore = Self.peakRSSKiB()
        let started = ContinuousClock.now
        let machines = try await withThrowingTaskGroup(of: Machine.self) { group in
            for index in 0..<32 {
                var copy = profile
                copy.name = "scale\(index)"
                group.addTask { try await Machine.start(copy) }
            }
            var all: [Machine] = []
            for try await machine in group { all.append(machine) }
            return all
        }
        let ready = started.duration(to: .now)
        #expect(machines.count == 32)
        let threadsAtPeak = Fixture.threadCount()
        let statuses = try await withThrowingTaskGroup(of: String.self) { group in
            for machine in machines { group.addTask { try await machine.qmp.queryStatus().status } }
            var all: [String] = []
            for try await status in group { all.append(status) }
            return all
        }
        #expect(statuses == Array(repeating: "prelaunch", count: 32))
        let outcomes = await withTaskGroup(of: ShutdownStep.self) { group in
            for machine in machines { group.addTask { await machine.shutdown(stepTimeout: .seconds(10), skipACPI: true).step } }
            var all: [ShutdownStep] = []
            for await step in group { all.append(step) }
            return all
        }
        #expect(outcomes == Array(repeating: .qmpQuit, count: 32))
        let peakGrowth = Self.peakRSSKiB() - rssBefore
        for _ in 0..<100 where Fixture.launcherThreadCount() > threadsBefore || Fixture.launcherFileDescriptorCount() > fdsBefore {
            try await Task.sleep(for: .milliseconds(20))
        }
        print("scale: 32 VMs QMP-ready in \(ready); supervisor threads \(threadsBefore) -> \(threadsAtPeak) at peak; peak RSS grew \(peakGrowth) KiB (\(peakGrowth / 32) KiB per VM)")
        #expect(Fixture.launcherThreadCount() <= threadsBefore)
        #expect(Fixture.launcherFileDescriptorCount() <= fdsBefore)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).isEmpty)
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }
}
