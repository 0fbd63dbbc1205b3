// Guest sessions: the Swift side of Benchmarks/sessions.py.
//
//   launch-bench session-vs-boots --profile P [--commands 100] [--boots 100] [--rounds 4]
//   launch-bench session-rtt      --profile P [--batches 20] [--batch 25] [--warmup 10]
//   launch-bench session-scale    --profile P --guests N [--memory 256M] [--slots 1] [--boot-timeout 600]
//
// Like the other subcommands: one JSON object per measurement on stdout, diagnostics
// on stderr; it measures, it never judges a figure.
import Foundation
import GuestKit
import QEMULaunch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

func loadProfile(_ options: Options) -> Profile {
    let path = options.string("profile")
    do {
        return try Profile.load(contentsOf: URL(fileURLWithPath: path))
    } catch {
        fail("\(path): \(error)")
    }
}

/// One slot: what `GuestKit.run` boots, so a session and a boot run the same guest.
func sessionOptions(slots: Int = 1) -> GuestKit.Options {
    var options = GuestKit.Options()
    options.concurrency = slots
    return options
}

func milliseconds(_ duration: Duration) -> Double { seconds(duration) * 1e3 }

// MARK: - a. N commands in one session against N boots

/// Rounds of: one session that runs `--commands` trivial commands (`true`), then
/// `--boots / --rounds` separate `GuestKit.run`s of `true`, so load swings hit both.
func sessionVsBoots(_ options: Options) async throws {
    let profile = loadProfile(options)
    let commands = options.int("commands", 100)
    let boots = options.int("boots", 100)
    let rounds = max(1, options.int("rounds", 4))
    // Warm-up (not measured): caches, the accelerator verdict, the first spawn.
    var warm = sessionOptions()
    warm.command = ["true"]
    _ = try await GuestKit.run(profile, options: warm)
    var bootsDone = 0
    for round in 0..<rounds {
        // The session: from the call to its return (boot, commands, poweroff, cleanup).
        let started = ContinuousClock.now
        let (ready, perCommand, end): (Duration, [Duration], ContinuousClock.Instant) = try await GuestKit.withSession(profile, options: sessionOptions()) { guest in
            let ready = started.duration(to: .now)
            var times: [Duration] = []
            times.reserveCapacity(commands)
            for _ in 0..<commands {
                let t0 = ContinuousClock.now
                let result = try await guest.run(["true"])
                times.append(t0.duration(to: .now))
                guard result.exitCode == 0 else { throw BenchError("true exited \(result.exitCode)") }
            }
            return (ready, times, ContinuousClock.now)
        }
        let total = started.duration(to: .now)
        let sorted = perCommand.map(milliseconds).sorted()
        emit(["kind": "session", "round": round, "commands": commands, "total_s": seconds(total),
              "ready_s": seconds(ready), "commands_s": seconds(perCommand.reduce(.zero, +)),
              "poweroff_s": seconds(end.duration(to: .now)),
              "median_ms": sorted[sorted.count / 2], "min_ms": sorted.first!, "max_ms": sorted.last!,
              "per_command_ms": sorted.map { String(format: "%.3f", $0) }.joined(separator: " ")])
        // This round's share of the boots.
        let share = (boots * (round + 1)) / rounds - bootsDone
        for _ in 0..<share {
            var one = sessionOptions()
            one.command = ["true"]
            let t0 = ContinuousClock.now
            let result = try await GuestKit.run(profile, options: one)
            let wall = t0.duration(to: .now)
            guard result.exitCode == 0 else { throw BenchError("true exited \(result.exitCode)") }
            emit(["kind": "boot", "round": round, "wall_s": seconds(wall)])
            bootsDone += 1
        }
    }
}

// MARK: - b. per-command round trip against the hand-written floor

/// The floor: a guest booted exactly as a session's (`GuestKit.prepare` with one
/// slot, `Machine.start` with its ports), driven by plain blocking reads and writes
/// on `launch.ctl` from a thread of its own: `run 0 LEN` + the script, read the
/// `exit 0 ...` line. Nothing else.
final class FloorGuest: Sendable {
    let machine: Machine
    let ctl: Int32
    /// The bytes GuestSession sends for `run(["true"])` on slot 0
    /// (SessionProtocol.runMessage + commandScript: no stdin, no cwd, no environment).
    static let script = Array("set -- true\n".utf8)
    static let request = Array("run 0 \(script.count)\n".utf8) + script

    init(machine: Machine, ctl: Int32) {
        self.machine = machine
        self.ctl = ctl
    }

    static func boot(_ profile: Profile) async throws -> FloorGuest {
        var guestOptions = sessionOptions()
        guestOptions.command = ["true"]
        let prepared = try await GuestKit.prepare(profile, options: guestOptions, sessionSlots: 1)
        var machineOptions = Machine.Options()
        machineOptions.host = prepared.host
        machineOptions.kernelEntry = prepared.kernelEntry
        machineOptions.kernelArguments = prepared.kernelArguments
        machineOptions.guestPorts = prepared.guestPorts
        machineOptions.boundsLifeByRunTimeout = false
        let machine = try await Machine.start(prepared.profile, options: machineOptions)
        guard let ctl = machine.takePort("launch.ctl") else { throw BenchError("no launch.ctl port in \(prepared.guestPorts)") }
        let setup = Array(prepared.setupScript.utf8)
        guard writeAll(ctl, Array("\(setup.count)\n".utf8) + setup) else { throw BenchError("writing the setup failed") }
        try await machine.resume()
        let floor = FloorGuest(machine: machine, ctl: ctl)
        let line = await onThread("floor-boot") { floor.readLine() }
        guard line == "ready" else { throw BenchError("the floor guest said \(line ?? "nothing") instead of ready") }
        return floor
    }

    /// One line from launch.ctl, a byte at a time (the replies are short; nothing to buffer past them).
    func readLine() -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(ctl, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            if byte == 0x0a { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }

    /// `count` commands in a row; each one's round trip in seconds.
    func batch(_ count: Int) -> [Double]? {
        var times: [Double] = []
        times.reserveCapacity(count)
        for _ in 0..<count {
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            guard writeAll(ctl, Self.request), let line = readLine() else { return nil }
            clock_gettime(CLOCK_MONOTONIC, &t1)
            guard line == "exit 0 0 0 0" else { return nil }
            times.append(Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9)
        }
        return times
    }

    func end() async {
        _ = writeAll(ctl, Array("poweroff\n".utf8))
        _ = await machine.shutdown(guestGrace: .seconds(5), stepTimeout: .seconds(2), skipACPI: true)
        close(ctl)
    }
}

@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
    }
    return true
}

/// Runs blocking `work` on a thread of its own (never on the cooperative pool).
func onThread<T: Sendable>(_ name: String, _ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread {
            continuation.resume(returning: work())
        }
        thread.name = name
        thread.start()
    }
}

/// A session guest and a floor guest, both booted and idle side by side; batches of
/// `--batch` commands alternate between them (which goes first alternates too).
func sessionRTT(_ options: Options) async throws {
    let profile = loadProfile(options)
    let batches = options.int("batches", 20)
    let size = options.int("batch", 25)
    let warmup = options.int("warmup", 10)
    let floor = try await FloorGuest.boot(profile)
    do {
        try await GuestKit.withSession(profile, options: sessionOptions()) { guest in
            func sessionBatch(_ count: Int) async throws -> [Double] {
                var times: [Double] = []
                for _ in 0..<count {
                    let t0 = ContinuousClock.now
                    let result = try await guest.run(["true"])
                    times.append(seconds(t0.duration(to: .now)))
                    guard result.exitCode == 0 else { throw BenchError("true exited \(result.exitCode)") }
                }
                return times
            }
            func floorBatch(_ count: Int) async throws -> [Double] {
                guard let times = await onThread("floor-batch", { floor.batch(count) }) else {
                    throw BenchError("the floor guest stopped answering")
                }
                return times
            }
            _ = try await sessionBatch(warmup)
            _ = try await floorBatch(warmup)
            for index in 0..<batches {
                let order = index % 2 == 0 ? ["session", "floor"] : ["floor", "session"]
                for who in order {
                    let cpu0 = cpuSeconds(), switches0 = contextSwitches()
                    let times = who == "session" ? try await sessionBatch(size) : try await floorBatch(size)
                    let cpu = cpuSeconds() - cpu0, switches = contextSwitches() - switches0
                    let sorted = times.map { $0 * 1e3 }.sorted()
                    emit(["kind": who, "batch": index, "n": size, "median_ms": sorted[sorted.count / 2],
                          "min_ms": sorted.first!, "max_ms": sorted.last!,
                          "cpu_us_per_command": cpu / Double(size) * 1e6,
                          "switches_per_command": Double(switches) / Double(size),
                          "load": loadAverage(),
                          "times_ms": sorted.map { String(format: "%.3f", $0) }.joined(separator: " ")])
                }
            }
        }
    } catch {
        await floor.end()
        throw error
    }
    await floor.end()
}

func loadAverage() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return -1 }
    return Double(text.split(separator: " ").first ?? "") ?? -1
}

// MARK: - c. threads and RSS of the launcher per running guest

/// Waits until `count` arrivals, then lets every waiter go at once when `release` is called.
final class Barrier: Sendable {
    private let state = Mutex((arrived: 0, released: false, waiters: [CheckedContinuation<Void, Never>](),
                               allIn: [CheckedContinuation<Void, Never>]()))
    private let count: Int
    init(count: Int) { self.count = count }

    /// Counts this arrival, then waits for `release()`.
    func arriveAndWait() async {
        await withCheckedContinuation { continuation in
            let (resumeNow, allIn) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
                s.arrived += 1
                var allIn: [CheckedContinuation<Void, Never>] = []
                if s.arrived >= count { allIn = s.allIn; s.allIn = [] }
                if s.released { return (true, allIn) }
                s.waiters.append(continuation)
                return (false, allIn)
            }
            for waiter in allIn { waiter.resume() }
            if resumeNow { continuation.resume() }
        }
    }

    func waitForAll() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if s.arrived >= count { return true }
                s.allIn.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Lets every waiter (present and future) go.
    func release() {
        let waiters = state.withLock { s in
            s.released = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
        // Whoever waits for all to arrive: give up too (a session failed).
        let allIn = state.withLock { s in defer { s.allIn = [] }; return s.allIn }
        for waiter in allIn { waiter.resume() }
    }
}

final class Sampled: Sendable {
    let value = Mutex<(threads: Int, rss: Int, kinds: [String: Int], allUp: Double)?>(nil)
}

/// VmRSS's anonymous and file-backed parts (RssAnon, RssFile) while all run.
final class RSSSplit: Sendable {
    let value = Mutex<(anon: Int, file: Int)?>(nil)
}

/// Starts `--guests` sessions at once; each runs `true` once (so it is up and
/// answering), then waits until all are; this process's Threads and VmRSS are read
/// before (after a warm-up session, threads settled) and while all run.
func sessionScale(_ options: Options) async throws {
    var profile = loadProfile(options)
    let guests = options.int("guests", 1)
    let slots = options.int("slots", 1)
    if let memory = options.values["memory"] {
        guard let size = MemorySize(parsing: memory) else { fail("--memory \(memory) is not a size") }
        profile.memory = size
    }
    // Many TCG guests booting at once on two cores: each boot takes many times longer.
    profile.timeouts.boot = TimeLimit(.seconds(Int64(options.int("boot-timeout", 600))))
    // Warm-up: one-time costs (the cooperative pool, caches, lazily made globals) are not per guest.
    try await GuestKit.withSession(profile, options: sessionOptions(slots: slots)) { guest in
        _ = try await guest.run(["true"])
    }
    let threadsBaseline = procStatus("Threads")
    var threadsBefore = threadsBaseline
    for _ in 0..<200 {
        try await Task.sleep(for: .milliseconds(10))
        threadsBefore = procStatus("Threads")
        if threadsBefore <= threadsBaseline { break }
    }
    let rssBefore = procStatus("VmRSS"), hwmBefore = procStatus("VmHWM")
    let anonBefore = procStatus("RssAnon"), fileBefore = procStatus("RssFile")
    let kindsBefore = threadNames()
    let barrier = Barrier(count: guests)
    let started = ContinuousClock.now
    let sampled = Sampled()
    let split = RSSSplit()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<guests {
            var guestProfile = profile
            guestProfile.name = "\(profile.name)-\(index)"
            group.addTask {
                do {
                    try await GuestKit.withSession(guestProfile, options: sessionOptions(slots: slots)) { guest in
                        let result = try await guest.run(["true"])
                        guard result.exitCode == 0 else { throw BenchError("true exited \(result.exitCode)") }
                        await barrier.arriveAndWait()
                    }
                } catch {
                    barrier.release()
                    throw error
                }
            }
        }
        group.addTask {
            await barrier.waitForAll()
            let allUp = seconds(started.duration(to: .now))
            // All up, and each session idle: a few samples a little apart, the largest.
            var threads = 0, rss = 0, anon = 0, file = 0
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(100))
                threads = max(threads, procStatus("Threads"))
                rss = max(rss, procStatus("VmRSS"))
                anon = max(anon, procStatus("RssAnon"))
                file = max(file, procStatus("RssFile"))
            }
            split.value.withLock { $0 = (anon, file) }
            // Where the memory is, for a closer look: LAUNCH_BENCH_SMAPS=FILE copies /proc/self/smaps there.
            if let path = ProcessInfo.processInfo.environment["LAUNCH_BENCH_SMAPS"] {
                // A read loop: /proc files have no size, and Foundation's readers stop early on them.
                let fd = open("/proc/self/smaps", O_RDONLY)
                var text: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while fd >= 0 {
                    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    text += chunk[0..<n]
                }
                if fd >= 0 { close(fd) }
                _ = FileManager.default.createFile(atPath: path, contents: Data(text))
            }
            sampled.value.withLock { $0 = (threads, rss, threadNames(), allUp) }
            barrier.release()
        }
        try await group.waitForAll()
    }
    let total = seconds(started.duration(to: .now))
    guard let s = sampled.value.withLock({ $0 }) else { throw BenchError("the guests never were all up") }
    var threadsAfter = procStatus("Threads")
    for _ in 0..<200 where threadsAfter > threadsBefore {
        try await Task.sleep(for: .milliseconds(10))
        threadsAfter = procStatus("Threads")
    }
    func kinds(_ k: [String: Int]) -> String { k.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    emit(["guests": guests, "slots": slots, "memory_mib": Int(profile.memory.mebibytes), "all_up_s": s.allUp, "total_s": total,
          "threads_before": threadsBefore, "threads_running": s.threads, "threads_after": threadsAfter,
          "rss_before_kib": rssBefore, "rss_running_kib": s.rss, "rss_after_kib": procStatus("VmRSS"),
          "anon_before_kib": anonBefore, "file_before_kib": fileBefore,
          "anon_running_kib": split.value.withLock { $0?.anon ?? -1 }, "file_running_kib": split.value.withLock { $0?.file ?? -1 },
          "hwm_before_kib": hwmBefore, "hwm_after_kib": procStatus("VmHWM"),
          "thread_kinds_before": kinds(kindsBefore), "thread_kinds_running": kinds(s.kinds)])
}
