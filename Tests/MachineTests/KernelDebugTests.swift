import Foundation
@testable import GuestKit
import QEMULaunch
import QMP
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A kernel developer's tools through the `launch` command, as a user runs them: gdb,
/// crash captures, the kernel's log level, modules (slow: boots guests under TCG).
@Suite("Kernel debugging through the launch command (slow: boots guests under TCG)", .serialized)
struct KernelDebugTests {
    static let root = CLITests.root

    /// `launch ARGS` running in the background, its stdout and stderr read as they come.
    final class RunningLaunch {
        let process: Process
        /// stdout, stderr, and how many of the two readers reached EOF.
        private final class Output: Sendable {
            let text = Mutex<(stdout: String, stderr: String, closed: Int)>(("", "", 0))
        }
        private let output = Output()

        init(_ arguments: [String]) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
            process.arguments = arguments
            process.currentDirectoryURL = KernelDebugTests.root
            process.standardInput = FileHandle.nullDevice
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let output = self.output
            for (handle, isStdout) in [(out.fileHandleForReading, true), (err.fileHandleForReading, false)] {
                Thread {
                    while true {
                        let data = handle.availableData
                        if data.isEmpty { break }
                        let text = String(decoding: data, as: UTF8.self)
                        output.text.withLock { if isStdout { $0.stdout += text } else { $0.stderr += text } }
                    }
                    output.text.withLock { $0.closed += 1 }
                }.start()
            }
        }

        var stdout: String { output.text.withLock { $0.stdout } }
        var stderr: String { output.text.withLock { $0.stderr } }

        /// Polls `condition` until it holds or `limit` passes.
        func waitUntil(_ limit: Duration, _ condition: () -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if condition() { return true }
                if !process.isRunning { return condition() }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return condition()
        }

        /// Waits for the exit (killing it after `limit`) and for all of its output.
        func finish(within limit: Duration = .seconds(300)) async -> Int32 {
            if await !waitUntil(limit, { !process.isRunning }) { process.terminate() }
            process.waitUntilExit()
            while output.text.withLock({ $0.closed < 2 }) { try? await Task.sleep(for: .milliseconds(20)) }
            return process.terminationStatus
        }

        /// The runtime dir `--verbose` names ("runtime dir: PATH").
        var runtimeDirectory: String? {
            stderr.split(separator: "\n").lazy.compactMap { line in
                line.range(of: "runtime dir: ").map { String(line[$0.upperBound...]).split(separator: " ").first.map(String.init) ?? "" }
            }.first
        }
    }

    /// A TCP port nobody listens on now (the kernel's pick for port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something listens on 127.0.0.1:`port`, from /proc/net/tcp (connecting
    /// would be a debugger attaching: QEMU's stub stops the guest for it).
    static func isListening(_ port: Int) -> Bool {
        let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
        let local = String(format: "0100007F:%04X", port)
        // State 0A = LISTEN.
        return table.split(separator: "\n").contains { $0.contains(local) && $0.split(separator: " ").dropFirst(3).first == "0A" }
    }

    static func gdb(_ arguments: [String]) throws -> ProcessOutcome {
        try TestProcess.run(["/usr/bin/gdb", "-nx", "-batch"] + arguments)
    }

    @Test("--gdb holds the guest until gdb continues, longer than the boot timeout; then the command runs and launch exits 0",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb"), "needs gdb (Debian package gdb)"))
    func gdbHoldsUntilContinue() async throws {
        let port = try Self.freePort()
        let run = try RunningLaunch(["run", "Profiles/hello.json", "--accel", "tcg", "-v", "--boot-timeout", "40s",
                                     "--gdb", String(port), "--", "echo", "hi"])
        let listening = await run.waitUntil(.seconds(120)) { Self.isListening(port) && run.stderr.contains("QMP ready") }
        #expect(listening, "the gdb stub never listened: \(run.stderr)")
        #expect(run.stderr.contains("launch: gdb: gdb -ex 'target remote 127.0.0.1:\(port)'"), "\(run.stderr)")

        // Held: QEMU says the vCPUs never ran, and past the boot timeout nothing timed out.
        let runtime = try #require(run.runtimeDirectory, "\(run.stderr)")
        let qmp = try await QMP.Client.connect(unixPath: runtime + "/qmp.sock")
        #expect(try await qmp.queryStatus() == QMP.Status(status: "prelaunch", running: false))
        qmp.close()
        // Longer than the boot timeout (generous, for a loaded host): only running time counts.
        try await Task.sleep(for: .seconds(45))
        #expect(run.process.isRunning, "launch ended while the guest was held: \(run.stderr)")
        #expect(!run.stderr.contains("Linux version"), "the kernel printed before gdb continued")

        let gdb = try Self.gdb(["-ex", "target remote 127.0.0.1:\(port)", "-ex", "info registers rip", "-ex", "continue"])
        #expect(gdb.stdoutText.contains("rip "), "\(gdb.stdoutText)\(gdb.stderrText)")
        let status = await run.finish()
        #expect(status == 0, "\(run.stderr)")
        #expect(run.stdout == "hi\n")
        #expect(run.stderr.contains("Linux version"), "the guest never booted after gdb continued")
    }

    @Test("--gdb-wait no starts the guest at once: the command runs with nobody attached")
    func gdbWithoutWaiting() async throws {
        let port = try Self.freePort()
        let run = try RunningLaunch(["run", "Profiles/hello.json", "--accel", "tcg", "--gdb", String(port), "--gdb-wait", "no", "--", "echo", "hi"])
        let status = await run.finish()
        #expect(status == 0, "\(run.stderr)")
        #expect(run.stdout == "hi\n")
        #expect(run.stderr.contains("gdb: stub on 127.0.0.1:\(port) (the guest runs at once; nokaslr)"), "\(run.stderr)")
    }

    @Test("the run timeout counts guest running time: a command stopped with QMP stop for longer than its timeout still finishes")
    func runTimeoutPausesWhileStopped() async throws {
        let run = try RunningLaunch(["run", "Profiles/hello.json", "--accel", "tcg", "-v", "--timeout", "20s",
                                     "-c", "echo started; sleep 8; echo done"])
        let started = await run.waitUntil(.seconds(180)) { run.stdout.contains("started") }
        try #require(started, "\(run.stderr)")
        let runtime = try #require(run.runtimeDirectory, "\(run.stderr)")
        let qmp = try await QMP.Client.connect(unixPath: runtime + "/qmp.sock")
        try await qmp.stop()
        // Stopped for longer than the whole timeout: only guest running time may count.
        try await Task.sleep(for: .seconds(25))
        #expect(run.process.isRunning, "launch ended while the guest was stopped: \(run.stderr)")
        try await qmp.cont()
        qmp.close()
        let status = await run.finish()
        #expect(status == 0, "\(run.stderr)")
        #expect(run.stdout == "started\ndone\n")
    }

    @Test("a kernel panic exits 125 and saves the console log and an ELF core memory dump in the folder the message names",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/readelf"), "needs readelf (Debian package binutils)"))
    func panicCapture() throws {
        let folder = try Fixture.temporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(at: folder) }
        let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--memory", "256M", "--crash-dir", folder.path,
                                           "--", "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"])
        #expect(outcome.status == 125, "\(outcome.stderr)")
        let line = try #require(outcome.stderr.split(separator: "\n").first { $0.contains("crash capture: kernel panic: saved console.log and vmcore (256 MiB, ELF) in ") },
                                "\(outcome.stderr)")
        let capture = String(line[line.range(of: " in ")!.upperBound...])
        #expect(capture.hasPrefix(folder.path + "/hello-"))

        let console = try String(contentsOfFile: capture + "/console.log", encoding: .utf8)
        #expect(console.contains("Kernel panic - not syncing: sysrq triggered crash"))
        let header = try Fixture.run(["/usr/bin/readelf", "-h", capture + "/vmcore"])
        #expect(header.contains("CORE (Core file)"), "\(header)")
        #expect(header.contains("X86-64"), "\(header)")
        let segments = try Fixture.run(["/usr/bin/readelf", "-l", capture + "/vmcore"])
        #expect(segments.contains("NOTE"), "\(segments)")
        // Guest RAM in PT_LOAD segments: together at least the 256 MiB asked for, less the PC holes.
        let loads = segments.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("LOAD") }
        #expect(!loads.isEmpty, "\(segments)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: capture + "/vmcore")[.size] as? Int)
        #expect(size > 250 << 20)
    }

    @Test("--kernel-log lifts quiet: a notice-level printk reaches the console log only with it")
    func kernelLogLevel() throws {
        func consoleLog(_ extra: [String]) throws -> String {
            let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--keep-runtime-dir"] + extra
                                              + ["--", "sh", "-c", "echo '<5>kernel-log-marker' > /dev/kmsg"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let line = try #require(outcome.stderr.split(separator: "\n").first { $0.contains("runtime dir kept: ") }, "\(outcome.stderr)")
            let folder = String(line[line.range(of: "runtime dir kept: ")!.upperBound...])
            defer { try? FileManager.default.removeItem(atPath: folder) }
            return try String(contentsOfFile: folder + "/console.log", encoding: .utf8)
        }
        #expect(!(try consoleLog([])).contains("kernel-log-marker"), "quiet should hide a notice")
        #expect(try consoleLog(["--kernel-log", "notice"]).contains("kernel-log-marker"))
    }

    @Test("--modules pointed at a kernel build tree says to use --kernel-tree, not depmod")
    func modulesFromABuildTree() throws {
        let tree = try Fixture.temporaryDirectory("tree")
        defer { try? FileManager.default.removeItem(at: tree) }
        for file in ["Kconfig", "Kbuild", "Makefile"] { try Data().write(to: tree.appendingPathComponent(file)) }
        let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--modules", tree.path, "--", "true"])
        #expect(outcome.status == 71, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("\(tree.path) is a kernel build tree, not installed modules: that's a build tree: use --kernel-tree \(tree.path)"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("depmod"), "\(outcome.stderr)")
    }
}

/// The small kernel tree CI builds (Scripts/build-test-kernel), at `$LAUNCH_TEST_KERNEL_DIR`.
enum TestKernelTree {
    static var path: String? {
        guard let dir = ProcessInfo.processInfo.environment["LAUNCH_TEST_KERNEL_DIR"], !dir.isEmpty,
              FileManager.default.fileExists(atPath: dir + "/vmlinux") else { return nil }
        return dir
    }
    /// CI sets `LAUNCH_REQUIRE_TEST_KERNEL=1`: then a missing tree fails instead of skipping.
    static var required: Bool { ProcessInfo.processInfo.environment["LAUNCH_REQUIRE_TEST_KERNEL"] == "1" }
    static var enabled: Bool { path != nil || required }
    static let missing: Comment = "needs the test kernel tree: set LAUNCH_TEST_KERNEL_DIR (Scripts/build-test-kernel builds one)"

    static var tree: String {
        get throws { try #require(path, "LAUNCH_REQUIRE_TEST_KERNEL=1 but LAUNCH_TEST_KERNEL_DIR has no built tree (vmlinux)") }
    }

    /// Builds a one-file out-of-tree module against `tree`, the way a developer does.
    static func buildModule(named name: String, against tree: String) throws -> (folder: URL, module: URL) {
        let folder = try Fixture.temporaryDirectory("mod")
        try Data("""
            #include <linux/module.h>
            #include <linux/init.h>
            static int __init \(name)_init(void) { pr_info("\(name): loaded\\n"); return 0; }
            static void __exit \(name)_exit(void) { }
            module_init(\(name)_init);
            module_exit(\(name)_exit);
            MODULE_LICENSE("GPL");

            """.utf8).write(to: folder.appendingPathComponent("\(name).c"))
        try Data("obj-m += \(name).o\n".utf8).write(to: folder.appendingPathComponent("Kbuild"))
        try Fixture.run(["/usr/bin/make", "-s", "-C", tree, "M=\(folder.path)", "modules"])
        return (folder, folder.appendingPathComponent("\(name).ko"))
    }
}

@Suite("A kernel tree's modules and the developer's own (slow: builds a module, boots the test kernel under TCG)", .serialized,
       .enabled(if: TestKernelTree.enabled, TestKernelTree.missing))
struct KernelTreeModuleTests {
    @Test("--kernel-tree: the guest modprobes a module of the tree's build (minix) without --modules")
    func modprobeTreeModule() throws {
        let tree = try TestKernelTree.tree
        let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", tree,
                                           "--", "sh", "-c", "modprobe minix && grep -c '^minix ' /proc/modules"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == "1\n")
        #expect(outcome.stderr.contains("modprobe: "), "\(outcome.stderr)")
    }

    @Test("--module FILE: an out-of-tree module built against the tree is modprobe'd in the guest")
    func ownModule() throws {
        let tree = try TestKernelTree.tree
        let built = try TestKernelTree.buildModule(named: "launchhello", against: tree)
        defer { try? FileManager.default.removeItem(at: built.folder) }
        let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", tree, "--module", built.module.path,
                                           "--", "sh", "-c", "modprobe launchhello && cut -d' ' -f1 /proc/modules"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.split(separator: "\n").contains("launchhello"), "\(outcome.stdout)")
    }

    @Test("--module built for another release is refused before the boot, naming both releases")
    func mismatchedModule() throws {
        let tree = try TestKernelTree.tree
        let release = try String(contentsOfFile: tree + "/include/config/kernel.release", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let built = try TestKernelTree.buildModule(named: "launchother", against: tree)
        defer { try? FileManager.default.removeItem(at: built.folder) }
        // The host's (Debian's) kernel, whose release is not the tree's.
        let outcome = try CLITests.launch(["run", "Profiles/hello.json", "--accel", "tcg", "--module", built.module.path, "--", "true"])
        #expect(outcome.status == 65, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("--module \(built.module.path) was built for kernel \(release) (vermagic \"\(release) "), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("the guest would refuse to load it"))
        // Before the boot: QEMU was never chosen, let alone started.
        #expect(!outcome.stderr.contains("launch: qemu: "), "\(outcome.stderr)")
    }

    @Test("--gdb with --kernel-tree prints the tree's vmlinux, and gdb stops at a breakpoint in start_kernel",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb"), "needs gdb (Debian package gdb)"))
    func gdbBreakpoint() async throws {
        let tree = try TestKernelTree.tree
        let port = try KernelDebugTests.freePort()
        let run = try KernelDebugTests.RunningLaunch(["run", "Profiles/hello.json", "--accel", "tcg", "--kernel-tree", tree,
                                                      "--gdb", String(port), "--", "echo", "hi"])
        let listening = await run.waitUntil(.seconds(120)) { KernelDebugTests.isListening(port) }
        #expect(listening, "\(run.stderr)")
        #expect(run.stderr.contains("launch: gdb: gdb \(tree)/vmlinux -ex 'target remote 127.0.0.1:\(port)'"), "\(run.stderr)")
        let gdb = try KernelDebugTests.gdb([tree + "/vmlinux", "-ex", "target remote 127.0.0.1:\(port)", "-ex", "break start_kernel",
                                            "-ex", "continue", "-ex", "bt 1", "-ex", "continue"])
        #expect(gdb.stdoutText.contains("Breakpoint 1, start_kernel ()"), "\(gdb.stdoutText)\(gdb.stderrText)")
        let status = await run.finish()
        #expect(status == 0, "\(run.stderr)")
        #expect(run.stdout == "hi\n")
    }
}

@Suite("Kernel debugging: the plan's gdb stub and panic hold, and what a module file says about itself")
struct KernelDebugPlanTests {
    func plan(gdb: GDBStub?, holdOnPanic: Bool) throws -> Plan {
        var profile = Profile(name: "kdebug")
        profile.machine = .microvm
        profile.accel = .tcg
        profile.kernel = try Fixture.kernel
        var options = PlanOptions(runtimeDir: "/tmp/launch-kdebugplan")
        options.gdb = gdb
        options.holdOnPanic = holdOnPanic
        return try Planner.plan(LaunchFacts(profile: profile, host: HostProbe.current(), files: HostFiles.read(for: profile)), options: options)
    }

    @Test("--gdb plans QEMU's stub on loopback and nokaslr; a crash capture plans panic=20 and -action panic=pause; neither by default")
    func planArguments() throws {
        let debug = try plan(gdb: GDBStub(port: 4321), holdOnPanic: true)
        let argv = debug.qemu.joined(separator: " ")
        #expect(argv.contains(" -gdb tcp:127.0.0.1:4321 "), "\(argv)")
        #expect(argv.contains(" -action panic=pause"), "\(argv)")
        #expect(debug.cmdline.split(separator: " ").contains("panic=20"), "\(debug.cmdline)")
        #expect(debug.cmdline.split(separator: " ").contains("nokaslr"), "\(debug.cmdline)")
        #expect(!debug.cmdline.contains("panic=-1"))
        // The vCPUs start stopped either way: the launcher sends cont, or the debugger continues.
        #expect(debug.qemu.contains("-S"))

        let plain = try plan(gdb: nil, holdOnPanic: false)
        #expect(!plain.qemu.contains("-gdb") && !plain.qemu.contains("-action"), "\(plain.qemu)")
        #expect(plain.cmdline.split(separator: " ").contains("panic=-1"))
        #expect(!plain.cmdline.contains("nokaslr"))
    }

    @Test("a module's .modinfo gives its name, its kernel's vermagic and its dependencies (the host's virtiofs needs fuse and virtio)")
    func moduleInfo() throws {
        let release = try #require(KernelLocator.newest()?.release)
        let index = try ModuleIndex(kernelRelease: release)
        let line = try #require(index.line(of: "virtiofs"), "the host kernel has no virtiofs module")
        let info = try ModuleInfo.read(index.modulesDirectory.appendingPathComponent(line.path))
        #expect(info.name == "virtiofs")
        #expect(info.release == release)
        #expect(info.vermagic.hasPrefix(release + " SMP"))
        #expect(info.dependencies.sorted() == ["fuse", "virtio", "virtio_ring"])
        #expect(throws: Never.self) { try info.checkBuilt(for: release, kernel: "k", reference: info.vermagic) }
        let other = #expect(throws: LaunchError.self) { try info.checkBuilt(for: "6.1.999", kernel: "k", reference: nil) }
        #expect(other?.description.contains("was built for kernel \(release)") == true)
        let options = #expect(throws: LaunchError.self) { try info.checkBuilt(for: release, kernel: "k", reference: release + " SMP mod_unload ") }
        #expect(options?.description.contains("but this kernel's own modules have \"\(release) SMP mod_unload\"") == true)
    }
}
