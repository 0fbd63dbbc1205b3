import CLaunchShim
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signalled(let sig): return "killed by signal \(sig) (\(signalName(sig)))"
        }
    }

    public var isSuccess: Bool { self == .exited(0) }
}

func signalName(_ sig: Int32) -> String {
    switch sig {
    case SIGKILL: return "SIGKILL"
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGSEGV: return "SIGSEGV"
    case SIGABRT: return "SIGABRT"
    case SIGBUS: return "SIGBUS"
    case SIGHUP: return "SIGHUP"
    case SIGPIPE: return "SIGPIPE"
    default: return "signal \(sig)"
    }
}

/// A bounded in-memory tail of a byte stream, kept as text lines.
public final class OutputTail: Sendable {
    private let state: Mutex<(lines: [String], partial: String)>
    public let maxLines: Int

    public init(maxLines: Int = 200) {
        self.maxLines = maxLines
        state = Mutex(([], ""))
    }

    public func append(_ bytes: some Collection<UInt8>) {
        let text = String(decoding: bytes, as: UTF8.self)
        state.withLock { s in
            var pending = s.partial + text
            while let newline = pending.firstIndex(of: "\n") {
                var line = String(pending[..<newline])
                if line.hasSuffix("\r") { line.removeLast() }
                s.lines.append(line)
                pending = String(pending[pending.index(after: newline)...])
            }
            // A single runaway line must not grow without bound either.
            s.partial = pending.count > 8192 ? String(pending.suffix(8192)) : pending
            if s.lines.count > maxLines { s.lines.removeFirst(s.lines.count - maxLines) }
        }
    }

    /// The last `count` lines, including an unterminated last line.
    public func lines(last count: Int = .max) -> [String] {
        state.withLock { s in
            var all = s.lines
            if !s.partial.isEmpty { all.append(s.partial) }
            return Array(all.suffix(count))
        }
    }
}

/// A child process spawned through the C shim: new session, parent-death
/// signal, exact fds, explicit environment; reaped by its own thread.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let argv: [String]
    /// Short name for messages: "qemu", "virtiofsd[0]".
    public let name: String
    /// Its stderr (and stdout), last lines.
    public let outputTail: OutputTail
    private struct State {
        var status: ExitStatus?
        var waiters: [Int: CheckedContinuation<ExitStatus?, Never>] = [:]
        var nextID = 0
        /// Waits whose deadline passed before they registered.
        var expired: Set<Int> = []
    }
    private let state: Mutex<State>

    /// Spawns `argv`. Its stdout and stderr go to `outputTail` and, when given, to `logPath`.
    /// With `readOnlyView`, the child runs in a mount namespace of its own where the view's
    /// folder is a recursive, read-only bind of its source (see `Plan.ReadOnlyView`).
    public static func spawn(
        name: String, argv: [String], environment: [String: String],
        stdin: Int32? = nil, logPath: String? = nil, extraFileDescriptors: [(source: Int32, target: Int32)] = [],
        readOnlyView: Plan.ReadOnlyView? = nil
    ) throws(LaunchError) -> ChildProcess {
        guard let program = argv.first else { throw LaunchError(.internalError, "empty argv for \(name)") }
        var pipeFds: [Int32] = [-1, -1]
        guard cls_pipe_cloexec(&pipeFds) == 0 else {
            throw LaunchError(.internalError, "pipe() failed for \(name): \(String(cString: strerror(errno)))")
        }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let fdMap: [Int32] = [stdin ?? devNull, 0, pipeFds[1], 1, pipeFds[1], 2]
            + extraFileDescriptors.flatMap { [$0.source, $0.target] }
        var spawnError: Int32 = 0
        let envList = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let pid = withCStrings(argv) { cArgv in
            withCStrings(envList) { cEnv in
                fdMap.withUnsafeBufferPointer { map in
                    cls_spawn_read_only_view(program, cArgv, cEnv, map.baseAddress, Int32(fdMap.count / 2), 1, SIGKILL,
                                             readOnlyView?.source, readOnlyView?.view, &spawnError)
                }
            }
        }
        close(pipeFds[1])
        if pid < 0 {
            close(pipeFds[0])
            let reason = String(cString: strerror(spawnError))
            if let view = readOnlyView, spawnError == EPERM || spawnError == ENOSYS || spawnError == EINVAL {
                // unshare/mount need root (CAP_SYS_ADMIN); mount_setattr needs Linux 5.12.
                throw LaunchError(.hostProblem, "cannot start \(name): making the read-only view of \(view.source) at \(view.view) failed: \(reason)",
                                  fix: "run as root on Linux 5.12 or later, or use \"transport\": \"9p\" (QEMU's readonly=on)")
            }
            if spawnError == ENOENT {
                throw LaunchError(.missingProgram, "cannot start \(name): \(program) does not exist", fix: "install it or fix the path")
            }
            throw LaunchError(.internalError, "cannot start \(name) (\(program)): \(reason)")
        }
        let child = ChildProcess(pid: pid, argv: argv, name: name)
        child.startReaders(outputFd: pipeFds[0], logPath: logPath)
        return child
    }

    private init(pid: pid_t, argv: [String], name: String) {
        self.pid = pid
        self.argv = argv
        self.name = name
        outputTail = OutputTail(maxLines: 100)
        state = Mutex(State())
    }

    private func startReaders(outputFd: Int32, logPath: String?) {
        let tail = outputTail
        // "virtiofsd[0]" → "vfsd0", so the suffix survives the 15-byte limit.
        let name = self.name.replacingOccurrences(of: "virtiofsd[", with: "vfsd").replacingOccurrences(of: "]", with: "")
        let output = Thread {
            cls_name_this_thread("\(name)-out")
            let log = logPath.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) } ?? -1
            var buffer = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(outputFd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                tail.append(buffer[0..<n])
                if log >= 0 { _ = buffer.withUnsafeBytes { write(log, $0.baseAddress, n) } }
            }
            close(outputFd)
            if log >= 0 { close(log) }
        }
        output.name = "\(name)-output"
        output.start()
        let pid = self.pid
        let reaper = Thread { [self] in
            cls_name_this_thread("\(name)-reap")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros in C).
            let exit: ExitStatus = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            let waiters = state.withLock { s in
                s.status = exit
                defer { s.waiters = [:] }
                return s.waiters.values
            }
            for waiter in waiters { waiter.resume(returning: exit) }
        }
        reaper.name = "\(name)-reaper"
        reaper.start()
    }

    /// The exit status, once reaped.
    public var exitStatus: ExitStatus? { state.withLock { $0.status } }

    /// Suspends until the process has exited and been reaped.
    public func wait() async -> ExitStatus {
        // Without a deadline the wait ends only with the exit.
        await wait(deadline: nil)!
    }

    /// Waits up to `timeout`; nil if it is still running then.
    public func wait(timeout: Duration) async -> ExitStatus? {
        await wait(deadline: ContinuousClock.now + timeout)
    }

    private func wait(deadline: ContinuousClock.Instant?) async -> ExitStatus? {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        let timer = deadline.map { deadline in
            Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                let waiter = state.withLock { s in
                    let waiter = s.waiters.removeValue(forKey: id)
                    if waiter == nil && s.status == nil { s.expired.insert(id) }
                    return waiter
                }
                waiter?.resume(returning: nil)
            }
        }
        defer { timer?.cancel() }
        return await withCheckedContinuation { continuation in
            let (done, expired): (ExitStatus?, Bool) = state.withLock { s in
                if let status = s.status { return (status, false) }
                if s.expired.remove(id) != nil { return (nil, true) }
                s.waiters[id] = continuation
                return (nil, false)
            }
            if done != nil || expired { continuation.resume(returning: done) }
        }
    }

    /// Sends `signal` unless the process is already reaped.
    public func signal(_ sig: Int32) {
        state.withLock { s in
            // Holding the lock orders this against the reaper: a reaped pid may be reused.
            if s.status == nil { kill(pid, sig) }
        }
    }

    /// SIGTERM, up to `grace`, then SIGKILL and wait.
    @discardableResult
    public func terminate(grace: Duration) async -> ExitStatus {
        signal(SIGTERM)
        if let status = await wait(timeout: grace) { return status }
        signal(SIGKILL)
        return await wait()
    }

    /// One line for an error: the argv, shell-quoted.
    public var commandLine: String { QEMUSyntax.shellLine(argv) }
}

/// Names the calling thread for ps/top (Linux keeps 15 bytes); Foundation's
/// Thread.name doesn't reach the OS on Linux, and a new thread would otherwise
/// show its creator's name.
public func nameThisThread(_ name: String) {
    cls_name_this_thread(name)
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
