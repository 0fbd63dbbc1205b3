import CLaunchShim
import Foundation
import LaunchSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// It exited by itself with this status (0 to 255).
    case exited(Int32)
    /// A signal ended it: this signal's number (`SIGKILL` is 9).
    case signalled(Int32)

    /// "exited with status 1", "killed by signal 9 (SIGKILL)".
    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signalled(let sig): return "killed by signal \(sig) (\(signalName(sig)))"
        }
    }

    /// Whether it exited with status 0.
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
    /// How many complete lines it keeps; older ones are dropped.
    public let maxLines: Int

    /// An empty tail keeping the last `maxLines` lines.
    package init(maxLines: Int = 200) {
        self.maxLines = maxLines
        state = Mutex(([], ""))
    }

    /// Adds bytes as they come; lines end at LF (a CR before it is dropped), and an unterminated
    /// line is kept (at most its last 8 KiB) until its end arrives.
    package func append(_ bytes: some Collection<UInt8>) {
        let text = String(decoding: bytes, as: UTF8.self)
        state.withLock { s in
            var pending = s.partial + text
            // "\r\n" is one Character, which firstIndex(of: "\n") never finds: a serial
            // console's CRLF lines would stay one line. Split on Unicode scalars instead.
            while let newline = pending.unicodeScalars.firstIndex(of: "\n") {
                var line = String(pending.unicodeScalars[..<newline])
                if line.unicodeScalars.last == "\r" { line = String(line.unicodeScalars.dropLast()) }
                s.lines.append(line)
                pending = String(pending.unicodeScalars[pending.unicodeScalars.index(after: newline)...])
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

/// A child process the launcher started: QEMU, a virtiofsd (``Machine/qemu``,
/// ``Machine/virtiofsd``), or a helper program.
///
/// Every child is spawned through the C shim: in a new session, with the parent-death
/// signal (SIGKILL when the launcher dies, even by SIGKILL), exactly the fds it needs and
/// an explicit environment. The launcher's I/O thread reads its output into
/// ``outputTail`` (and its log file) and reaps it. Use ``wait()`` to learn how it ended
/// and ``signal(_:)`` or ``terminate(grace:)`` to end it; to stop a whole VM, use
/// ``Machine/shutdown(guestGrace:stepTimeout:skipACPI:)`` instead.
public final class ChildProcess: Sendable {
    /// The child's process id, valid until it is reaped (``exitStatus`` set).
    public let pid: pid_t
    /// The argv it was started with, program first.
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
    package static func spawn(
        name: String, argv: [String], environment: [String: String],
        stdin: Int32? = nil, logPath: String? = nil, extraFileDescriptors: [(source: Int32, target: Int32)] = [],
        readOnlyView: Plan.ReadOnlyView? = nil
    ) throws(LaunchError) -> ChildProcess {
        let (pid, outputFd) = try start(name: name, argv: argv, environment: environment, stdin: stdin,
                                        stdout: nil, extraFileDescriptors: extraFileDescriptors, readOnlyView: readOnlyView)
        let child = ChildProcess(pid: pid, argv: argv, name: name)
        child.startReaders(outputFd: outputFd, logPath: logPath)
        return child
    }

    /// Runs `argv` to its end and returns how it ended and its output (stderr, and stdout
    /// unless `stdout` is given), at most the last `outputLimit` bytes. Blocks the calling
    /// thread: call it from a thread of its own (`onOwnThread`), never from the cooperative
    /// pool. Spawned like every child (parent-death signal, new session, exact fds); killed
    /// with SIGKILL when `timeout` passes first (then `timedOut` is true).
    package static func run(
        name: String, argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
        stdin: Int32? = nil, stdout: Int32? = nil, timeout: Duration? = nil, outputLimit: Int = 1 << 20
    ) throws(LaunchError) -> (status: ExitStatus, output: String, timedOut: Bool) {
        let (pid, outputFd) = try start(name: name, argv: argv, environment: environment, stdin: stdin,
                                        stdout: stdout, extraFileDescriptors: [], readOnlyView: nil)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        var timedOut = false
        while true {
            var pollFd = pollfd(fd: outputFd, events: Int16(POLLIN), revents: 0)
            var waitMs: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero {
                    timedOut = true
                    kill(pid, SIGKILL)
                    break
                }
                waitMs = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            }
            let ready = poll(&pollFd, 1, waitMs)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(outputFd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output += buffer[0..<n]
            if output.count > outputLimit { output.removeFirst(output.count - outputLimit) }
        }
        close(outputFd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (ExitStatus(waitStatus: status), String(decoding: output, as: UTF8.self), timedOut)
    }

    /// The one place a child is spawned: through the shim, with the parent-death signal,
    /// in a new session, with exactly stdin, stdout, stderr and `extraFileDescriptors`.
    /// Returns the pid and the read end of the pipe that has its stderr (and stdout,
    /// unless `stdout` is given).
    private static func start(
        name: String, argv: [String], environment: [String: String],
        stdin: Int32?, stdout: Int32?, extraFileDescriptors: [(source: Int32, target: Int32)],
        readOnlyView: Plan.ReadOnlyView?
    ) throws(LaunchError) -> (pid: pid_t, outputFd: Int32) {
        guard let program = argv.first else { throw LaunchError(.internalError, "empty argv for \(name)") }
        var pipeFds: [Int32] = [-1, -1]
        guard cls_pipe_cloexec(&pipeFds) == 0 else {
            throw LaunchError(.internalError, "pipe() failed for \(name): \(POSIX.describe(errno))",
                              fix: "the launcher may be out of file descriptors: raise `ulimit -n`")
        }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let fdMap: [Int32] = [stdin ?? devNull, 0, stdout ?? pipeFds[1], 1, pipeFds[1], 2]
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
            let reason = POSIX.describe(spawnError)
            if let view = readOnlyView, spawnError == EPERM || spawnError == ENOSYS || spawnError == EINVAL {
                // unshare/mount need root (CAP_SYS_ADMIN); mount_setattr needs Linux 5.12.
                throw LaunchError(.hostProblem, "cannot start \(name): making the read-only view of \(view.source) at \(view.view) failed: \(reason)",
                                  fix: "run as root on Linux 5.12 or later, or use \"transport\": \"9p\" (QEMU's readonly=on)")
            }
            if spawnError == ENOENT {
                throw LaunchError(.missingProgram, "cannot start \(name): \(program) does not exist", fix: "install it or fix the path")
            }
            if spawnError == EAGAIN {
                throw LaunchError(.hostProblem, "cannot start \(name) (\(program)): \(reason): no new thread or process could be made",
                                  fix: "the user's process or thread limit is reached: stop other processes, or raise `ulimit -u`")
            }
            throw LaunchError(.internalError, "cannot start \(name) (\(program)): \(reason)")
        }
        return (pid, pipeFds[0])
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
        let log = logPath.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) } ?? -1
        // The launcher's I/O thread reads the output and reaps the child: no thread per child.
        IOLoop.shared.read(outputFd, onData: { bytes in
            tail.append(bytes)
            if log >= 0 { _ = write(log, bytes.baseAddress, bytes.count) }
        }, onEnd: {
            close(outputFd)
            if log >= 0 { close(log) }
        })
        let pid = self.pid
        let reaped: @Sendable (Int32) -> Void = { [self] status in
            let exit = ExitStatus(waitStatus: status)
            let waiters = state.withLock { s in
                s.status = exit
                defer { s.waiters = [:] }
                return s.waiters.values
            }
            for waiter in waiters { waiter.resume(returning: exit) }
        }
        if IOLoop.shared.reap(pid, onExit: reaped) { return }
        // No pidfds (Linux before 5.3): a thread blocks in waitpid instead.
        let name = self.name.replacingOccurrences(of: "virtiofsd[", with: "vfsd").replacingOccurrences(of: "]", with: "")
        let reaper = Thread {
            cls_name_this_thread("\(name)-reap")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            reaped(status)
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

extension ExitStatus {
    /// From waitpid's status: WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros in C).
    init(waitStatus status: Int32) {
        self = (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }
}

/// Names the calling thread for ps/top (Linux keeps 15 bytes); Foundation's
/// Thread.name doesn't reach the OS on Linux, and a new thread would otherwise
/// show its creator's name.
package func nameThisThread(_ name: String) {
    cls_name_this_thread(name)
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
