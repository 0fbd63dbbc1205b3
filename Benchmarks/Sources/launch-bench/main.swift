// launch-bench: the Swift side of Benchmarks/run-supervision.sh.
//
//   launch-bench rtt   --socket PATH [--n 2000] [--window 64] [--reps 2] [--warmup 200] [--executor global|io]
//   launch-bench spawn --qemu BIN --dir DIR [--runs 6] [--warmup 1] [--poll-ms 2] [--transport socket|socketpair]
//   launch-bench scale --qemu BIN --dir DIR [--count 32] [--transport socket|socketpair]
//   launch-bench spawn-call [--program /bin/true] [--runs 50]
//   launch-bench session-vs-boots | session-rtt | session-scale   (see Sessions.swift)
//
// Each prints one JSON object per measurement on stdout (the driver,
// Benchmarks/supervision.py, collects them) and diagnostics on stderr. It measures;
// it never judges a figure.
import Foundation
import QEMULaunch
import QMP
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Small helpers

struct Options {
    var values: [String: String] = [:]
    init(_ arguments: ArraySlice<String>) {
        var iterator = arguments.makeIterator()
        while let key = iterator.next() {
            guard key.hasPrefix("--") else { fail("unexpected argument \(key)") }
            guard let value = iterator.next() else { fail("\(key) needs a value") }
            values[String(key.dropFirst(2))] = value
        }
    }
    func string(_ key: String, _ fallback: String? = nil) -> String {
        if let value = values[key] ?? fallback { return value }
        fail("--\(key) is required")
    }
    func int(_ key: String, _ fallback: Int) -> Int {
        guard let text = values[key] else { return fallback }
        guard let value = Int(text) else { fail("--\(key) wants an integer, got \(text)") }
        return value
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("launch-bench: \(message)\n".utf8))
    exit(2)
}

/// User + system CPU seconds of this process so far (all threads).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Voluntary + involuntary context switches of this process so far.
func contextSwitches() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_nvcsw + usage.ru_nivcsw
}

func seconds(_ duration: Duration) -> Double {
    let (s, atto) = duration.components
    return Double(s) + Double(atto) / 1e18
}

/// One JSON object per line; values are numbers or strings.
func emit(_ fields: KeyValuePairs<String, Any>) {
    var parts: [String] = []
    for (key, value) in fields {
        let rendered: String
        switch value {
        case let d as Double: rendered = d.isFinite ? String(format: "%.9g", d) : "null"
        case let i as Int: rendered = String(i)
        case let s as String:
            rendered = "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        default: rendered = "\"\(value)\""
        }
        parts.append("\"\(key)\":\(rendered)")
    }
    FileHandle.standardOutput.write(Data(("{" + parts.joined(separator: ",") + "}\n").utf8))
}

/// A field of /proc/self/status in KiB (VmHWM, VmRSS) or as a count (Threads).
func procStatus(_ field: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? -1
    }
    return -1
}

/// Threads of this process whose name says what they are (reapers, readers, qmp-io, ...).
func threadNames() -> [String: Int] {
    var counts: [String: Int] = [:]
    for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
        var name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? "?"
        name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        // "qemu7-reaper" -> "qemu-reaper": group per kind, not per VM.
        let kind = name.replacingOccurrences(of: #"[0-9]+"#, with: "", options: .regularExpression)
        counts[kind, default: 0] += 1
    }
    return counts
}

/// Peak thread count, sampled every few milliseconds by a thread of its own
/// (which is not counted).
final class ThreadSampler: Sendable {
    private let state = Mutex((peak: 0, running: true))
    init(intervalMicroseconds: UInt32 = 5000) {
        let thread = Thread { [self] in
            while state.withLock({ $0.running }) {
                let now = procStatus("Threads") - 1
                state.withLock { $0.peak = max($0.peak, now) }
                usleep(intervalMicroseconds)
            }
        }
        thread.name = "bench-sampler"
        thread.start()
    }
    func stop() -> Int {
        state.withLock { s in
            s.running = false
            return s.peak
        }
    }
}

let environment: [String: String] = {
    // What Machine gives QEMU (childEnvironment() in Machine.swift).
    let inherited = ProcessInfo.processInfo.environment
    var env = ["PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"]
    for key in ["HOME", "TMPDIR", "XDG_RUNTIME_DIR"] { if let v = inherited[key] { env[key] = v } }
    return env
}()

/// How QEMU's monitor is reached: its own listening Unix socket (what Machine does
/// today), or one end of a socketpair handed to QEMU as fd 0 (`-chardev socket,fd=0`),
/// which needs no socket file, no polling and no accept() in QEMU.
enum Transport: String {
    case unixSocket = "socket"
    case socketPair = "socketpair"
}

func qemuArgv(_ qemu: String, socket: String, transport: Transport) -> [String] {
    let common = [qemu, "-M", "none", "-S", "-nodefaults", "-display", "none"]
    switch transport {
    case .unixSocket:
        return common + ["-qmp", "unix:\(socket.replacingOccurrences(of: ",", with: ",,")),server=on,wait=off"]
    case .socketPair:
        return common + ["-chardev", "socket,id=qmp,fd=0", "-mon", "chardev=qmp,mode=control"]
    }
}

struct Started: Sendable {
    let child: ChildProcess
    let qmp: QMP.Client
    /// spawn() returned (fork + exec done), the socket file appeared, QMP negotiated.
    let spawned: Duration
    let socketSeen: Duration
    let ready: Duration
    /// Connection attempts refused or not found before one succeeded.
    let retries: Int
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// QEMU accepted the connection (and may have greeted) but never answered: the QEMU
/// 7.2 listener race, where its main thread blocks in accept4() (see RESULTS-supervision.md).
struct Hung: Error, CustomStringConvertible {
    let pid: pid_t
    let error: QMP.Error
    var description: String { "QEMU pid \(pid) accepted the QMP connection but did not answer: \(error)" }
}

/// Our path to QMP-ready, as Machine.start does it: ChildProcess.spawn, poll for the
/// socket file every `pollMilliseconds` (Machine: 2 ms), then QMP.Client.connect
/// (connect + greeting + qmp_capabilities), retried on ECONNREFUSED / ENOENT the way
/// Machine's connectQMP does (it waits up to 50 ms on QEMU's exit between tries).
/// With `.socketPair`: spawn with one end as fd 0, connect(fileDescriptor:) on the other.
func startQEMU(_ qemu: String, socket: String, name: String, pollMilliseconds: Int,
               transport: Transport = .unixSocket, connectTimeout: Duration = .seconds(5)) async throws -> Started {
    unlink(socket)
    let argv = qemuArgv(qemu, socket: socket, transport: transport)
    var pair: [Int32] = [-1, -1]
    if transport == .socketPair {
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw BenchError("socketpair: \(String(cString: strerror(errno)))")
        }
    }
    let t0 = ContinuousClock.now
    let child: ChildProcess
    do {
        child = try ChildProcess.spawn(name: name, argv: argv, environment: environment,
                                       stdin: transport == .socketPair ? pair[1] : nil)
    } catch {
        if transport == .socketPair { close(pair[0]); close(pair[1]) }
        throw error
    }
    let spawned = t0.duration(to: .now)
    func hung(_ error: QMP.Error) async -> Hung {
        await child.terminate(grace: .milliseconds(200))
        return Hung(pid: child.pid, error: error)
    }
    if transport == .socketPair {
        close(pair[1])
        do {
            let qmp = try await QMP.Client.connect(fileDescriptor: pair[0], timeout: connectTimeout)
            return Started(child: child, qmp: qmp, spawned: spawned, socketSeen: spawned,
                           ready: t0.duration(to: .now), retries: 0)
        } catch {
            throw await hung(error)
        }
    }
    while !FileManager.default.fileExists(atPath: socket) {
        if let status = child.exitStatus {
            throw BenchError("\(name) \(status) before its QMP socket appeared: \(child.outputTail.lines(last: 5))")
        }
        try await Task.sleep(for: .milliseconds(pollMilliseconds))
    }
    let socketSeen = t0.duration(to: .now)
    var retries = 0
    while true {
        do {
            let qmp = try await QMP.Client.connect(unixPath: socket, timeout: connectTimeout)
            return Started(child: child, qmp: qmp, spawned: spawned, socketSeen: socketSeen,
                           ready: t0.duration(to: .now), retries: retries)
        } catch {
            if case .connectFailed(_, let err) = error, err == ECONNREFUSED || err == ENOENT, retries < 1000 {
                retries += 1
                if let status = await child.wait(timeout: .milliseconds(50)) {
                    throw BenchError("\(name) \(status) before QMP was ready")
                }
                continue
            }
            switch error {
            case .greetingTimeout, .timeout: throw await hung(error)
            default: throw error
            }
        }
    }
}

/// quit, then wait until the reaper has the exit status. Returns (quit returned, reaped).
func quitAndReap(_ started: Started) async throws -> (Duration, Duration, ExitStatus) {
    let t0 = ContinuousClock.now
    try await started.qmp.quit(timeout: .seconds(10))
    let acknowledged = t0.duration(to: .now)
    let status = await started.child.wait()
    return (acknowledged, t0.duration(to: .now), status)
}

// MARK: - rtt

func rtt(_ options: Options) async throws {
    let socket = options.string("socket")
    let n = options.int("n", 2000)
    let window = options.int("window", 64)
    let reps = options.int("reps", 2)
    let warmup = options.int("warmup", 200)
    let onIOThread = options.string("executor", "global") == "io"
    let label = options.string("label", onIOThread ? "swift-io" : "swift")
    let qmp = try await QMP.Client.connect(unixPath: socket, timeout: .seconds(5))
    if onIOThread {
        // The whole measurement prefers the connection's I/O thread (QMP.Client.taskExecutor).
        try await withTaskExecutorPreference(qmp.taskExecutor) {
            try await rttRounds(qmp, n: n, window: window, reps: reps, warmup: warmup, label: label)
        }
    } else {
        try await rttRounds(qmp, n: n, window: window, reps: reps, warmup: warmup, label: label)
    }
    qmp.close()
}

func rttRounds(_ qmp: QMP.Client, n: Int, window: Int, reps: Int, warmup: Int, label: String) async throws {
    for _ in 0..<warmup {
        let status = try await qmp.queryStatus()
        guard status.status == "prelaunch" else { throw BenchError("unexpected status \(status)") }
    }
    for rep in 0..<reps {
        // Sequential: one after another, from one task.
        var (cpu0, csw0) = (cpuSeconds(), contextSwitches())
        var t0 = ContinuousClock.now
        for _ in 0..<n { _ = try await qmp.queryStatus() }
        var elapsed = seconds(t0.duration(to: .now))
        emit(["client": label, "mode": "seq", "rep": rep, "n": n, "window": 1, "seconds": elapsed, "us_per_cmd": elapsed / Double(n) * 1e6,
              "cpu_us_per_cmd": (cpuSeconds() - cpu0) / Double(n) * 1e6, "csw_per_cmd": Double(contextSwitches() - csw0) / Double(n)])

        // Pipelined, sliding window: up to `window` child tasks in flight; a new one
        // starts as soon as any finishes.
        (cpu0, csw0) = (cpuSeconds(), contextSwitches())
        t0 = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var issued = 0
            while issued < min(window, n) {
                group.addTask { _ = try await qmp.queryStatus() }
                issued += 1
            }
            while try await group.next() != nil {
                if issued < n {
                    group.addTask { _ = try await qmp.queryStatus() }
                    issued += 1
                }
            }
        }
        elapsed = seconds(t0.duration(to: .now))
        emit(["client": label, "mode": "pipe-window", "rep": rep, "n": n, "window": window, "seconds": elapsed, "us_per_cmd": elapsed / Double(n) * 1e6,
              "cpu_us_per_cmd": (cpuSeconds() - cpu0) / Double(n) * 1e6, "csw_per_cmd": Double(contextSwitches() - csw0) / Double(n)])

        // Pipelined, batches: `window` commands issued together, all answered, repeat
        // (the shape of the raw floor's write-a-batch-then-read).
        (cpu0, csw0) = (cpuSeconds(), contextSwitches())
        t0 = ContinuousClock.now
        var done = 0
        while done < n {
            let batch = min(window, n - done)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<batch { group.addTask { _ = try await qmp.queryStatus() } }
                try await group.waitForAll()
            }
            done += batch
        }
        elapsed = seconds(t0.duration(to: .now))
        emit(["client": label, "mode": "pipe-batch", "rep": rep, "n": n, "window": window, "seconds": elapsed, "us_per_cmd": elapsed / Double(n) * 1e6,
              "cpu_us_per_cmd": (cpuSeconds() - cpu0) / Double(n) * 1e6, "csw_per_cmd": Double(contextSwitches() - csw0) / Double(n)])
    }
}

// MARK: - spawn

func spawnBench(_ options: Options) async throws {
    let qemu = options.string("qemu")
    let dir = options.string("dir")
    let runs = options.int("runs", 6)
    let warmup = options.int("warmup", 1)
    let poll = options.int("poll-ms", 2)
    guard let transport = Transport(rawValue: options.string("transport", "socket")) else { fail("--transport socket|socketpair") }
    let label = options.string("label", transport == .socketPair ? "swift-socketpair" : "swift")
    var run = -warmup
    var attempt = 0
    while run < runs {
        attempt += 1
        if attempt > (runs + warmup) * 3 { throw BenchError("too many hung starts") }
        let started: Started
        do {
            started = try await startQEMU(qemu, socket: "\(dir)/s\(attempt).sock", name: "qemu", pollMilliseconds: poll,
                                          transport: transport)
        } catch let hang as Hung {
            // Counted, not timed: the driver reports how often QEMU hung.
            emit(["client": label, "run": run, "hung": 1, "error": hang.description])
            continue
        }
        let status = try await started.qmp.queryStatus()
        guard status.status == "prelaunch" else { throw BenchError("unexpected status \(status)") }
        let (acknowledged, reaped, exit) = try await quitAndReap(started)
        guard exit.isSuccess else { throw BenchError("QEMU \(exit) after quit") }
        defer { run += 1 }
        if run < 0 { continue }
        emit(["client": label, "run": run, "hung": 0,
              "spawn_ms": seconds(started.spawned) * 1e3, "socket_ms": seconds(started.socketSeen) * 1e3,
              "ready_ms": seconds(started.ready) * 1e3, "retries": started.retries,
              "quit_ack_ms": seconds(acknowledged) * 1e3, "quit_reaped_ms": seconds(reaped) * 1e3])
    }
}

// MARK: - spawn-call

/// The spawn call alone: ChildProcess.spawn of a trivial program, then wait().
func spawnCall(_ options: Options) async throws {
    let program = options.string("program", "/bin/true")
    let runs = options.int("runs", 50)
    for run in -3..<runs {
        let t0 = ContinuousClock.now
        let child = try ChildProcess.spawn(name: "true", argv: [program], environment: environment)
        let spawned = t0.duration(to: .now)
        let status = await child.wait()
        let reaped = t0.duration(to: .now)
        guard status.isSuccess else { throw BenchError("\(program) \(status)") }
        if run < 0 { continue }
        emit(["client": "swift", "run": run, "spawn_ms": seconds(spawned) * 1e3, "reaped_ms": seconds(reaped) * 1e3])
    }
}

// MARK: - scale

func scale(_ options: Options) async throws {
    let qemu = options.string("qemu")
    let dir = options.string("dir")
    let count = options.int("count", 32)
    let poll = options.int("poll-ms", 2)
    guard let transport = Transport(rawValue: options.string("transport", "socket")) else { fail("--transport socket|socketpair") }
    let label = options.string("label", transport == .socketPair ? "swift-socketpair" : "swift")
    // Warm up: one-time costs (the shim's spawner thread, Foundation, Dispatch, the
    // concurrency pool) are not per VM.
    let warm = try await startQEMU(qemu, socket: "\(dir)/warm.sock", name: "qemu", pollMilliseconds: poll, transport: transport)
    _ = try await quitAndReap(warm)
    try await Task.sleep(for: .milliseconds(100))
    let hwmBefore = procStatus("VmHWM")
    let rssBefore = procStatus("VmRSS")
    let threadsBefore = procStatus("Threads")
    let sampler = ThreadSampler()
    let t0 = ContinuousClock.now
    // A VM that hangs (QEMU's listener race) spoils the run: it is reported and the
    // others are shut down; the driver runs the round again.
    let results = await withTaskGroup(of: Result<Started, any Error>.self) { group in
        for index in 0..<count {
            group.addTask {
                do {
                    return .success(try await startQEMU(qemu, socket: "\(dir)/vm\(index).sock", name: "qemu\(index)",
                                                        pollMilliseconds: poll, transport: transport))
                } catch {
                    return .failure(error)
                }
            }
        }
        var all: [Result<Started, any Error>] = []
        for await result in group { all.append(result) }
        return all
    }
    let all = results.compactMap { try? $0.get() }
    let failures = results.compactMap { result -> (any Error)? in
        if case .failure(let error) = result { return error }
        return nil
    }
    if !failures.isEmpty {
        for started in all { _ = try? await quitAndReap(started) }
        let hangs = failures.filter { $0 is Hung }.count
        emit(["client": label, "count": count, "hung": hangs, "error": failures.map { "\($0)" }.joined(separator: "; ")])
        exit(hangs == failures.count ? 3 : 1)
    }
    let ready = t0.duration(to: .now)
    let threadsAtReady = procStatus("Threads") - 1
    let kinds = threadNames()
    let rssAtReady = procStatus("VmRSS")
    let statuses = try await withThrowingTaskGroup(of: String.self) { group in
        for started in all { group.addTask { try await started.qmp.queryStatus().status } }
        var statuses: [String] = []
        for try await status in group { statuses.append(status) }
        return statuses
    }
    guard statuses.allSatisfy({ $0 == "prelaunch" }) else { throw BenchError("statuses \(statuses)") }
    let t1 = ContinuousClock.now
    let exits = try await withThrowingTaskGroup(of: ExitStatus.self) { group in
        for started in all { group.addTask { try await quitAndReap(started).2 } }
        var exits: [ExitStatus] = []
        for try await exit in group { exits.append(exit) }
        return exits
    }
    let down = t1.duration(to: .now)
    let peakThreads = sampler.stop()
    guard exits.allSatisfy(\.isSuccess) else { throw BenchError("exits \(exits)") }
    let hwmAfter = procStatus("VmHWM")
    var threadsAfter = procStatus("Threads")
    for _ in 0..<100 where threadsAfter > threadsBefore {
        try await Task.sleep(for: .milliseconds(10))
        threadsAfter = procStatus("Threads")
    }
    let maxRetries = all.map(\.retries).max() ?? 0
    let readyTimes = all.map { seconds($0.ready) * 1e3 }.sorted()
    emit(["client": label, "count": count, "hung": 0,
          "ready_s": seconds(ready), "shutdown_s": seconds(down), "total_s": seconds(ready) + seconds(down),
          "slowest_ready_ms": readyTimes.last ?? 0, "median_ready_ms": readyTimes[readyTimes.count / 2],
          "hwm_before_kib": hwmBefore, "hwm_after_kib": hwmAfter,
          "rss_before_kib": rssBefore, "rss_at_ready_kib": rssAtReady,
          "threads_before": threadsBefore, "threads_at_ready": threadsAtReady, "threads_peak": peakThreads,
          "threads_after": threadsAfter, "max_connect_retries": maxRetries,
          "thread_kinds": kinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")])
}

// MARK: - main

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    fail("usage: launch-bench rtt|spawn|scale --option value ... (see the top of main.swift)")
}
let options = Options(arguments.dropFirst(2))
do {
    switch arguments[1] {
    case "rtt": try await rtt(options)
    case "spawn": try await spawnBench(options)
    case "scale": try await scale(options)
    case "spawn-call": try await spawnCall(options)
    case "session-vs-boots": try await sessionVsBoots(options)
    case "session-rtt": try await sessionRTT(options)
    case "session-scale": try await sessionScale(options)
    default: fail("unknown subcommand \(arguments[1])")
    }
} catch {
    fail("\(error)")
}
