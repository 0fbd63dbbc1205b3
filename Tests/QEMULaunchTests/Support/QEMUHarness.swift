import Foundation
import QMP
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

/// This host's facts with KVM set aside: here /dev/kvm opens but guests never boot
/// (see DESIGN.md), so real-QEMU tests run on TCG.
let tcgHost: HostFacts = {
    var host = HostProbe.current()
    host.kvm = .absent("the tests run on TCG")
    return host
}()

let hasQEMUx86 = tcgHost.qemu[.x86_64] != nil && tcgHost.qemuImg != nil
let hasQEMUarm = tcgHost.qemu[.aarch64] != nil && tcgHost.qemuImg != nil

/// Runs a short command to completion and returns its exit status and combined output.
@discardableResult
func runCommand(_ argv: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Makes a raw image with qemu-img.
func makeRawImage(_ path: String, size: String = "8M") throws {
    let result = try runCommand([tcgHost.qemuImg ?? "/usr/bin/qemu-img", "create", "-q", "-f", "raw", path, size])
    guard result.status == 0 else { throw TestFailure("qemu-img create \(path) failed: \(result.output)") }
}

/// A TCP port nobody listens on right now (bound to port 0, then released).
func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

func isSocket(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
func eventually(timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A plan's processes started for real: virtiofsd first (QEMU connects to its
/// socket while starting), then QEMU, which `-S` keeps paused.
final class RunningPlan: Sendable {
    let plan: Plan
    let qemu: Process
    let virtiofsd: [Process]
    let qemuLog: String

    private init(plan: Plan, qemu: Process, virtiofsd: [Process], qemuLog: String) {
        self.plan = plan
        self.qemu = qemu
        self.virtiofsd = virtiofsd
        self.qemuLog = qemuLog
    }

    /// Runs `plan.prepare`, starts each virtiofsd and waits for its socket (by stat:
    /// a probe connection would be taken as the VMM), then starts QEMU and waits for
    /// its QMP socket. The runtime dir must exist. Cleans up after itself on failure.
    static func start(_ plan: Plan, logDirectory: String) async throws -> RunningPlan {
        for argv in plan.prepare {
            let result = try runCommand(argv)
            guard result.status == 0 else {
                throw TestFailure("prepare failed (\(result.status)): \(QEMUSyntax.shellLine(argv))\n\(result.output)")
            }
        }
        var daemons: [Process] = []
        func killAll() {
            for process in daemons where process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        for (index, argv) in plan.virtiofsd.enumerated() {
            let log = "\(logDirectory)/virtiofsd\(index).log"
            // A read-only view: the launcher's shim makes it in the child (a private mount
            // namespace, a recursive bind); here util-linux's unshare does the same, without
            // the read-only remount, which a paused guest never notices.
            var command = argv
            if index < plan.virtiofsdViews.count, let view = plan.virtiofsdViews[index] {
                command = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                           "mkdir -p \"$1\" && mount --rbind \"$2\" \"$1\" && shift 2 && exec \"$@\"", "sh", view.view, view.source] + argv
            }
            let daemon = try spawn(command, stderrPath: log)
            daemons.append(daemon)
            let socket = plan.sockets.virtiofs[index]
            guard await eventually(timeout: .seconds(10), { isSocket(socket) || !daemon.isRunning }), daemon.isRunning else {
                killAll()
                throw TestFailure("virtiofsd made no socket at \(socket): \(QEMUSyntax.shellLine(argv))\n\(tail(log))")
            }
        }
        let qemuLog = "\(logDirectory)/qemu.log"
        let qemu: Process
        do {
            qemu = try spawn(plan.qemu, stderrPath: qemuLog)
        } catch {
            killAll()
            throw error
        }
        daemons.append(qemu)
        guard await eventually(timeout: .seconds(20), { isSocket(plan.sockets.qmp) || !qemu.isRunning }), qemu.isRunning else {
            killAll()
            throw TestFailure("QEMU exited (\(qemu.isRunning ? "running" : "status \(qemu.terminationStatus)")) before its QMP socket appeared\n"
                + "argv: \(QEMUSyntax.shellLine(plan.qemu))\nstderr: \(tail(qemuLog))")
        }
        daemons.removeLast()
        return RunningPlan(plan: plan, qemu: qemu, virtiofsd: daemons, qemuLog: qemuLog)
    }

    private static func spawn(_ argv: [String], stderrPath: String) throws -> Process {
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stderrPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
        return process
    }

    static func tail(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
    }

    var qemuStderr: String { Self.tail(qemuLog) }

    func connect() async throws -> QMP.Client {
        try await QMP.Client.connect(unixPath: plan.sockets.qmp, timeout: .seconds(10))
    }

    /// Kills whatever still runs and reaps it.
    func stop() {
        for process in [qemu] + virtiofsd where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The newest /boot/vmlinuz-*, the kernel real-QEMU tests boot (paused, so never run).
let hostKernel: String? = KernelLocator.newest()?.path
