import Foundation
import QEMULaunch
import TestSupport
import Testing

/// The `launch` command as a user runs it (slow: boots guests).
@Suite("The launch command, run as a user would (slow: boots guests under TCG)", .serialized)
struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `launch ARGS` to completion with `stdin` bytes and extra environment.
    static func launch(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Outcome {
        let run = try TestProcess.run([try Fixture.launchExecutable] + arguments, input: stdin.map { Data($0.utf8) },
                                      environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                      currentDirectory: root)
        return Outcome(status: run.status, stdout: run.stdoutText, stderr: run.stderrText)
    }

    @Test("`launch plan --json` prints {qemu, virtiofsd, cmdline, runtimeDir} for each bundled x86 profile",
          arguments: ["Profiles/hello.json", "Profiles/boot.json", "Profiles/q35.json", "Profiles/pc.json"])
    func planJSON(profile: String) throws {
        let outcome = try Self.launch(["plan", profile, "--json"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        let qemu = try #require(object["qemu"] as? [String])
        #expect(qemu.first?.hasSuffix("qemu-system-x86_64") == true)
        #expect(object["virtiofsd"] is [[String]])
        #expect(object["cmdline"] is String)
        #expect((object["runtimeDir"] as? String)?.contains("/launch-") == true)
    }

    @Test("an invalid profile exits 65 and lists every problem at once, the JSON's and the host's, under one header")
    func invalidProfile() throws {
        let folder = try Fixture.temporaryDirectory("bad")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = folder.appendingPathComponent("bad.json")
        // Decode-level problems (unknown key, bad size, wrong type) beside semantic and host
        // ones (a machine the arch can't have, a missing share folder, a duplicate tag).
        try Data("""
            {"name": "bad", "kernel": "auto", "memroy": "1G", "memory": "lots", "machine": "virt", "cpus": "two",
             "shares": [{"tag": "a", "path": "/nonexistent"}, {"tag": "a", "path": "\(folder.path)"}]}
            """.utf8).write(to: profile)
        let expected = """
            launch: invalid profile \(profile.path): 6 problems
              - memroy: unknown key "memroy" in a profile (fix: did you mean "memory"?)
              - cpus: expected a whole number of CPUs
              - memory: expected a size like "512M" or "2G" (not a size: "lots")
              - machine: the virt machine is for aarch64; an x86_64 guest can't have it (fix: use "microvm", "q35" or "pc")
              - shares[0].path: no folder at /nonexistent (fix: create it or fix the path)
              - shares[1].tag: duplicate tag "a" (also shares[0].tag) (fix: give every share its own tag)

            """
        for subcommand in ["plan", "run", "batch"] {
            let outcome = try Self.launch([subcommand, profile.path])
            #expect(outcome.status == 65, "\(subcommand)")
            #expect(outcome.stderr == expected, "\(subcommand)")
        }
    }

    @Test("exit codes as numbers: 70 when QEMU fails, 71 for a host problem, each with what, why and the fix")
    func failureExitCodes() throws {
        let folder = try Fixture.temporaryDirectory("ec")
        defer { try? FileManager.default.removeItem(at: folder) }
        var qemuFails = try Fixture.guestProfile("qemufails", command: ["true"])
        qemuFails.runtimeDir = folder.path
        // Past the capability check (QEMU knows -smp), refused by QEMU itself.
        qemuFails.qemu.extraArgs = ["-smp", "cpus=banana"]
        let qemuURL = folder.appendingPathComponent("qemu.json")
        try JSONEncoder().encode(qemuFails).write(to: qemuURL)
        let failed = try Self.launch(["run", qemuURL.path])
        #expect(failed.status == 70, "\(failed.stderr)")
        #expect(failed.stderr.contains("launch: QEMU failed: "), "\(failed.stderr)")
        #expect(failed.stderr.contains("-smp cpus=banana"))

        var hostProblem = try Fixture.guestProfile("hostproblem", command: ["true"])
        // /proc takes no new folders, even from root.
        hostProblem.runtimeDir = "/proc/launch-no-such-folder"
        let hostURL = folder.appendingPathComponent("host.json")
        try JSONEncoder().encode(hostProblem).write(to: hostURL)
        let refused = try Self.launch(["run", hostURL.path])
        #expect(refused.status == 71, "\(refused.stderr)")
        #expect(refused.stderr.contains("launch: host problem: cannot create the runtime dir under /proc/launch-no-such-folder"), "\(refused.stderr)")
        #expect(refused.stderr.contains("fix: "))
    }

    @Test("a kernel built for another arch than the profile's is refused before QEMU starts, with the fix")
    func kernelArchMismatch() throws {
        let folder = try Fixture.temporaryDirectory("arch")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("archmismatch", command: ["true"])
        profile.arch = .aarch64
        profile.machine = .virt
        let kernel = try Fixture.kernel
        let url = folder.appendingPathComponent("arm.json")
        try JSONEncoder().encode(profile).write(to: url)
        for subcommand in ["plan", "run"] {
            let outcome = try Self.launch([subcommand, url.path])
            #expect(outcome.status == 65, "\(subcommand): \(outcome.stderr)")
            #expect(outcome.stderr.contains("the kernel \(kernel) is an x86_64 image, but the profile's arch is aarch64"), "\(outcome.stderr)")
            #expect(outcome.stderr.contains("set \"arch\": \"x86_64\", or use a aarch64 kernel") || outcome.stderr.contains("set \"arch\": \"x86_64\""))
            #expect(Fixture.processes(mentioning: "archmismatch").isEmpty)
        }
    }

    @Test("stdin from a pipe reaches the guest command: echo hi | launch run hello -- cat")
    func pipedStdin() throws {
        let outcome = try Self.launch(["run", "-q", "Profiles/hello.json", "--", "cat"], stdin: "hi\n")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == "hi\n")
    }

    @Test("the guest command's exit code becomes launch's, and the bundled hello prints its lines")
    func helloAndExitCode() throws {
        let hello = try Self.launch(["Profiles/hello.json"])
        #expect(hello.status == 0, "\(hello.stderr)")
        let release = try #require(KernelLocator.newest()?.release)
        #expect(hello.stdout == "kernel \(release)\nhello from the host, read through virtiofs\n")
        let failing = try Self.launch(["run", "-q", "Profiles/hello.json", "-c", "echo oops >&2; exit 7"])
        #expect(failing.status == 7)
        #expect(failing.stderr.contains("oops"))
    }

    @Test("without QEMU on PATH, launch exits 69 naming the Debian package")
    func missingQEMU() throws {
        let empty = try Fixture.temporaryDirectory("path")
        defer { try? FileManager.default.removeItem(at: empty) }
        let outcome = try Self.launch(["run", "Profiles/hello.json"], environment: ["PATH": empty.path])
        #expect(outcome.status == 69)
        #expect(outcome.stderr.contains("qemu-system-x86"))
    }

    @Test("`launch doctor --json` lists the checks, and this host can run the bundled profiles")
    func doctorJSON() throws {
        let outcome = try Self.launch(["doctor", "--json"])
        #expect(outcome.status == 0, "\(outcome.stdout)")
        let checks = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        let names = Set(checks.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["qemu x86_64", "kvm", "virtiofsd", "busybox", "runtime dir", "memlock", "uefi x86_64"]))
        for check in checks where (check["status"] as? String) != "ok" {
            #expect(check["fix"] is String, "\(check["name"] ?? "?") has no fix")
        }
    }

    @Test("with accel auto the first run on a host probes KVM, the next one reuses the verdict; both complete")
    func kvmProbeCached() throws {
        let cache = try Fixture.temporaryDirectory("cache")
        defer { try? FileManager.default.removeItem(at: cache) }
        let kvmOpens = FileManager.default.isWritableFile(atPath: "/dev/kvm")
        let first = try Self.launch(["run", "Profiles/hello.json"], environment: ["LAUNCH_CACHE_DIR": cache.path])
        let second = try Self.launch(["run", "Profiles/hello.json"], environment: ["LAUNCH_CACHE_DIR": cache.path])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        #expect(first.stdout.hasSuffix("hello from the host, read through virtiofs\n"))
        #expect(first.stderr.contains("KVM health: probing") == kvmOpens)
        #expect(!second.stderr.contains("KVM health: probing"))
        func accelerator(_ stderr: String) -> String {
            stderr.split(separator: "\n").first { $0.contains("accelerator: ") }.map(String.init) ?? "no accelerator line"
        }
        let picked = accelerator(first.stderr)
        if kvmOpens {
            // The probe's verdict, said once: KVM, or TCG in one warning line with the reason and the fix.
            let healthy = picked.hasPrefix("launch: accelerator: kvm ")
            let diagnosed = picked.hasPrefix("launch: warning: accelerator: tcg: auto: kvm unusable: /dev/kvm opens, but ")
                && picked.contains("Set \"accel\": \"tcg\"")
            #expect(healthy || diagnosed, "\(picked)")
            let verdicts = try String(contentsOf: cache.appendingPathComponent("accelerator-health.json"), encoding: .utf8)
            #expect(verdicts.contains("kvm|"), "no verdict cached: \(verdicts)")
        } else {
            #expect(picked.hasPrefix("launch: accelerator: tcg "), "\(picked)")
        }
        // The second run takes the cached verdict: the same choice; an unusable KVM is said
        // again in one line that names the cache instead of the whole finding.
        if picked.hasPrefix("launch: warning: accelerator: tcg: auto: kvm unusable: ") {
            let short = "launch: warning: accelerator: tcg: auto: kvm unusable here (an earlier probe's verdict, cached in \(cache.path)/accelerator-health.json); emulating instead."
            #expect(accelerator(second.stderr).hasPrefix(short), "\(accelerator(second.stderr))")
        } else {
            #expect(accelerator(second.stderr) == picked)
        }
        let warnings = second.stderr.split(separator: "\n").filter { $0.hasPrefix("launch: warning:") }
        #expect(warnings.count <= 1, "\(warnings)")
        // "accel": "kvm" asked for explicitly never falls back: where the verdict was "unusable" it
        // is refused with the probe's diagnosis (exit 65); where KVM works it runs.
        if kvmOpens {
            let explicit = try Self.launch(["run", "-q", "Profiles/hello.json", "--accel", "kvm", "--", "true"],
                                           environment: ["LAUNCH_CACHE_DIR": cache.path])
            if picked.hasPrefix("launch: accelerator: kvm ") {
                #expect(explicit.status == 0, "\(explicit.stderr)")
            } else {
                #expect(explicit.status == 65, "\(explicit.stderr)")
                #expect(explicit.stderr.contains("  - accel: kvm was asked for, but /dev/kvm opens, but "), "\(explicit.stderr)")
            }
            #expect(!explicit.stderr.contains("KVM health: probing"))
        }
    }

    @Test("Ctrl-C on a console boot stops the VM through the shutdown ladder and leaves nothing behind")
    func interruptConsoleBoot() async throws {
        let folder = try Fixture.temporaryDirectory("int")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("interrupt", command: nil)
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(2))
        let profileURL = folder.appendingPathComponent("boot.json")
        try JSONEncoder().encode(profile).write(to: profileURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = ["run", profileURL.path]
        let err = Pipe()
        process.standardError = err
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let console = Mutex("")
        let reader = Thread { while case let data = out.fileHandleForReading.availableData, !data.isEmpty { console.withLock { $0 += String(decoding: data, as: UTF8.self) } } }
        reader.start()
        // Wait for the guest kit's console shell to announce itself.
        for _ in 0..<1200 where !console.withLock({ $0.contains("starting a shell on the console") }) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(console.withLock { $0.contains("starting a shell on the console") })
        kill(process.processIdentifier, SIGINT)
        for _ in 0..<300 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(stderr)")
        // The guest init powers off on the ACPI power button: the ladder's ACPI step ends it.
        #expect(stderr.contains("shutdown: acpi-powerdown after"), "\(stderr)")
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasPrefix("launch-") }.isEmpty)
    }

    @Test("batch runs jobs in parallel with prefixed output and a summary; Ctrl-C stops every VM")
    func batch() async throws {
        let ok = try Self.launch(["batch", "Profiles/hello.json", "--jobs", "2", "-c", "echo first", "-c", "echo second; exit 3"])
        #expect(ok.status == 3, "\(ok.stderr)")
        #expect(ok.stdout.contains("[hello#1] first\n"))
        #expect(ok.stdout.contains("[hello#2] second\n"))
        // The summary ends stderr: a header, then one row per job in job order.
        let lines = ok.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.lastIndex { $0.hasPrefix("JOB ") }, "no summary table: \(ok.stderr)")
        #expect(lines[header].split(separator: " ") == ["JOB", "EXIT", "DURATION", "SHUTDOWN"])
        let rows = lines[(header + 1)...].filter { !$0.isEmpty }.map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == 2, "\(rows)")
        for (row, expected) in zip(rows, [("hello#1", "0"), ("hello#2", "3")]) {
            // label, exit, duration as "N.NN s" (or "N ms"), shutdown step.
            #expect(row.count == 5, "\(row)")
            guard row.count == 5 else { continue }
            #expect(row[0] == expected.0 && row[1] == expected.1, "\(row)")
            #expect(Double(row[2]) != nil && ["s", "ms", "min"].contains(row[3]), "\(row)")
            #expect(row[4] == "guest-poweroff", "\(row)")
        }

        let folder = try Fixture.temporaryDirectory("bat")
        defer { try? FileManager.default.removeItem(at: folder) }
        var profile = try Fixture.guestProfile("sleeper", command: ["sleep", "600"])
        profile.runtimeDir = folder.path
        profile.timeouts.shutdown = TimeLimit(.seconds(2))
        let profileURL = folder.appendingPathComponent("sleeper.json")
        try JSONEncoder().encode(profile).write(to: profileURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = ["batch", profileURL.path, profileURL.path, profileURL.path, "--jobs", "2"]
        process.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        try process.run()
        var running: [Int32] = []
        for _ in 0..<1200 {
            running = Fixture.processes(mentioning: folder.path + "/launch-").filter { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("qemu-system") == true
            }
            if running.count == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(running.count == 2, "two VMs at once with --jobs 2")
        try await Task.sleep(for: .seconds(1))
        kill(process.processIdentifier, SIGINT)
        for _ in 0..<300 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("not started: interrupted"))
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }

    @Test("a guest that never reaches the guest kit's init (rdinit=/bin/sh) ends at --boot-timeout with exit 124, naming the boot and showing the console")
    func bootTimeout() throws {
        let outcome = try Self.launch(["run", "Profiles/hello.json", "-q", "--accel", "tcg", "--append", "rdinit=/bin/sh", "--boot-timeout", "20s"])
        #expect(outcome.status == 124, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("did not finish booting within timeouts.boot (20s)"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("last console lines:"), "\(outcome.stderr)")
    }

    @Test("--timeout bounds the command: past it the command is killed and launch exits 124 naming timeouts.run")
    func commandTimeout() throws {
        let outcome = try Self.launch(["run", "Profiles/hello.json", "-q", "--accel", "tcg", "--timeout", "3s", "--", "sleep", "300"])
        #expect(outcome.status == 124, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("ran past timeouts.run (3"), "\(outcome.stderr)")
    }

    @Test("--kernel-tree naming no folder says so (exit 65), not \"build the kernel first\"")
    func missingKernelTree() throws {
        let outcome = try Self.launch(["run", "Profiles/hello.json", "--kernel-tree", "/nonexistent/linux"])
        #expect(outcome.status == 65)
        #expect(outcome.stderr.contains("--kernel-tree /nonexistent/linux: the kernel tree /nonexistent/linux does not exist"), "\(outcome.stderr)")
    }

    @Test("--kernel-tree boots DIR/arch/x86/boot/bzImage with the modules folder --modules names")
    func kernelTree() throws {
        let tree = try Fixture.temporaryDirectory("tree")
        defer { try? FileManager.default.removeItem(at: tree) }
        let kernel = try Fixture.kernel
        let release = try #require(KernelLocator.newest()?.release)
        let image = tree.appendingPathComponent("arch/x86/boot/bzImage")
        try FileManager.default.createDirectory(at: image.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: kernel, toPath: image.path)
        // An INSTALL_MOD_PATH-style root, <root>/lib/modules/<release>, that differs from the
        // host's where it shows: its modules.dep has no evdev (the host's has), so the
        // initramfs line can only say "not in this kernel: evdev" if --modules was used.
        let host = URL(fileURLWithPath: "/lib/modules/\(release)")
        let modules = tree.appendingPathComponent("mods/lib/modules/\(release)")
        try FileManager.default.createDirectory(at: modules, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: modules.appendingPathComponent("kernel").path,
                                                   withDestinationPath: host.appendingPathComponent("kernel").path)
        try FileManager.default.copyItem(at: host.appendingPathComponent("modules.builtin"), to: modules.appendingPathComponent("modules.builtin"))
        let dep = try String(contentsOf: host.appendingPathComponent("modules.dep"), encoding: .utf8)
        let withoutEvdev = dep.split(separator: "\n").filter { !$0.hasPrefix("kernel/drivers/input/evdev.ko") }
        try #require(withoutEvdev.count < dep.split(separator: "\n").count, "the host's modules.dep lists evdev")
        try Data((withoutEvdev.joined(separator: "\n") + "\n").utf8).write(to: modules.appendingPathComponent("modules.dep"))
        let arguments = ["--kernel-tree", tree.path, "--modules", tree.appendingPathComponent("mods").path]

        // The plan names the tree's image (without fast boot, which would name a cached vmlinux).
        let plan = try Self.launch(["plan", "Profiles/hello.json", "--no-fast-boot"] + arguments)
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains(" -kernel \(image.path) "), "\(plan.stdout)")

        let outcome = try Self.launch(["run", "Profiles/hello.json"] + arguments + ["--", "uname", "-r"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == release + "\n")
        // A fresh copy has a new identity, so its vmlinux is extracted now, from the tree's image.
        #expect(outcome.stderr.contains("fast boot: extracted the PVH vmlinux from \(image.path) "), "\(outcome.stderr)")
        let initramfsLine = outcome.stderr.split(separator: "\n").first { $0.hasPrefix("launch: initramfs: ") } ?? ""
        #expect(initramfsLine.contains("power button: button;") && initramfsLine.contains("not in this kernel: evdev"), "\(initramfsLine)")
    }

    @Test("--kernel may name an uncompressed vmlinux: it boots through its PVH entry")
    func vmlinuxDirectly() throws {
        let folder = try Fixture.temporaryDirectory("vmlx")
        defer { try? FileManager.default.removeItem(at: folder) }
        let vmlinux = folder.appendingPathComponent("vmlinux-\(try #require(KernelLocator.newest()?.release))")
        _ = try GuestKitExtract.extract(try Fixture.kernel, to: vmlinux)
        let outcome = try Self.launch(["run", "Profiles/hello.json", "--kernel", vmlinux.path, "--", "true"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("vmlinux (PVH entry)"))
        #expect(!outcome.stderr.contains("fast boot: booting"))
    }
}

import GuestKit

enum GuestKitExtract {
    static func extract(_ bzImage: String, to destination: URL) throws -> KernelImage {
        try KernelImage.extractVmlinux(fromBzImage: URL(fileURLWithPath: bzImage), to: destination)
    }
}
