import Foundation
import GuestKit
import QEMULaunch
import Testing

@Suite("Root filesystems for guest commands: the host's, a folder, a disk partition (slow: boots the host kernel under TCG)", .serialized)
struct RootFSTests {
    func run(_ command: [String], root: Profile.RootFS, in folder: URL? = nil,
             profile edit: (inout Profile) throws -> Void = { _ in }) async throws -> GuestKit.Result {
        var profile = try Fixture.guestProfile("rootfs", command: command)
        // python3 and the host's shared libraries want more than the busybox guest's 256 MiB.
        profile.memory = .mebibytes(512)
        profile.rootfs = root
        try edit(&profile)
        var options = GuestKit.Options()
        options.workingDirectory = folder?.path
        return try await GuestKit.run(profile, options: options)
    }

    @Test("a dynamically linked C program built in the working folder runs in the host's root, with its exit code")
    func hostDynamicBinary() async throws {
        let folder = try Fixture.temporaryDirectory("dyn")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("#include <stdio.h>\nint main(void) { puts(\"dynamic hello\"); return 42; }\n".utf8)
            .write(to: folder.appendingPathComponent("hello.c"))
        try Fixture.run(["/usr/bin/gcc", "-o", folder.appendingPathComponent("hello").path, folder.appendingPathComponent("hello.c").path])
        let result = try await run(["./hello"], root: Profile.RootFS(.host), in: folder)
        #expect(result.exitCode == 42, "stderr: \(result.stderrText)")
        #expect(result.stdoutText == "dynamic hello\n")
    }

    @Test("python3 and bash from the host run in the guest, in the host's working folder, with the host's PATH")
    func hostPythonAndBash() async throws {
        let folder = try Fixture.temporaryDirectory("py")
        defer { try? FileManager.default.removeItem(at: folder) }
        // /usr/bin/python3: python3 on this machine's PATH is a pyenv shim (bash running pyenv), 20 s under TCG.
        let result = try await run(["bash", "-c", "pwd; echo \"$PATH\"; /usr/bin/python3 -c 'import sys; print(sys.version_info[0]); sys.exit(7)'; echo rc=$?"],
                                   root: Profile.RootFS(.host), in: folder)
        #expect(result.exitCode == 0, "stderr: \(result.stderrText)")
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        #expect(result.stdoutText == "\(folder.path)\n\(path)\n3\nrc=7\n")
    }

    @Test("a guest that remounts the root and a read-only share read-write can't change the host's files")
    func readOnlyOnTheHost() async throws {
        // Outside /tmp and /var/tmp (empty tmpfs in the guest) and the overlaid folders: a folder
        // the guest sees through the root itself, and through a read-only share at /mnt/lt-data.
        let victim = URL(fileURLWithPath: "/opt/lt-rootfs-victim-\(getpid())")
        try? FileManager.default.removeItem(at: victim)
        try FileManager.default.createDirectory(at: victim, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: victim) }
        try Data("original\n".utf8).write(to: victim.appendingPathComponent("file"))
        let script = """
            mount -o remount,rw / && echo remounted-root
            mount -o remount,rw /mnt/lt-data && echo remounted-share
            echo changed > \(victim.path)/file; echo changed > \(victim.path)/new-root
            echo changed > /mnt/lt-data/file; echo changed > /mnt/lt-data/new-share
            exit 0
            """
        let result = try await run(["sh", "-c", script], root: Profile.RootFS(.host)) { profile in
            profile.shares = [Profile.Share(tag: "data", path: victim.path, guestPath: "/mnt/lt-data", readOnly: true)]
        }
        #expect(result.stdoutText == "remounted-root\nremounted-share\n", "stderr: \(result.stderrText)")
        // The guest may remount (its own view); the host's kernel refuses the writes.
        #expect(result.stderrText.contains("Read-only file system"), "stderr: \(result.stderrText)")
        #expect(try String(contentsOf: victim.appendingPathComponent("file"), encoding: .utf8) == "original\n")
        #expect(!FileManager.default.fileExists(atPath: victim.appendingPathComponent("new-root").path))
        #expect(!FileManager.default.fileExists(atPath: victim.appendingPathComponent("new-share").path))
    }

    @Test("rwdirs are written on the host; a whole-root overlay makes every path writable and writes nothing on the host")
    func rwdirsAndOverlay() async throws {
        let folder = try Fixture.temporaryDirectory("rw")
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let result = try await run(["sh", "-c", "echo kept > out/file && echo gone > /usr/lt-overlay-file && cat /usr/lt-overlay-file"],
                                   root: Profile.RootFS(.host, rwdirs: [out.path], overlay: true), in: folder)
        #expect(result.exitCode == 0, "stderr: \(result.stderrText)")
        #expect(result.stdoutText == "gone\n")
        #expect(try String(contentsOf: out.appendingPathComponent("file"), encoding: .utf8) == "kept\n")
        #expect(!FileManager.default.fileExists(atPath: "/usr/lt-overlay-file"))
    }

    @Test("sharing / itself with the C virtiofsd fails with the daemon's own reason (pivot_root), not only QEMU's",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/qemu/virtiofsd"), "needs Debian 12's C virtiofsd"))
    func slashShareSaysWhy() async throws {
        var profile = try Fixture.guestProfile("slash", command: ["true"])
        profile.shares = [Profile.Share(tag: "all", path: "/")]
        do {
            _ = try await GuestKit.run(profile)
            Issue.record("sharing / with the C virtiofsd started")
        } catch {
            #expect(error.details.contains { $0.contains("pivot_root") }, "\(error.details)")
            #expect(error.fix?.contains("rootfs") == true)
        }
    }

    @Test("a root folder copied from busybox runs a command, with writable /etc (an overlay) and the host's copy untouched")
    func folderRoot() async throws {
        let root = try Fixture.temporaryDirectory("tree")
        defer { try? FileManager.default.removeItem(at: root) }
        try makeBusyboxTree(root)
        let result = try await run(["sh", "-c", "cat /etc/hostname; echo x > /etc/new && cat /etc/new; pwd; exit 5"],
                                   root: Profile.RootFS(.folder(root.path)))
        #expect(result.exitCode == 5, "stderr: \(result.stderrText)")
        #expect(result.stdoutText == "tree\nx\n/\n")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("etc/new").path))
    }

    @Test("the root partition of a GPT disk image (Discoverable Partitions type) runs a command")
    func diskRoot() async throws {
        let folder = try Fixture.temporaryDirectory("disk")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tree = folder.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        try makeBusyboxTree(tree)
        let image = folder.appendingPathComponent("disk.img").path
        // 64 MiB: an 8 MiB partition first (not the root), then the x86-64 root (8304).
        try Fixture.run(["/usr/bin/truncate", "-s", "64M", image])
        try Fixture.run(["/usr/sbin/sgdisk", "-n", "1:2048:+8M", "-t", "1:8300", "-n", "2:0:0", "-t", "2:8304", image])
        // Partition 2 starts at sector 18432 and ends at 131038 (sgdisk's layout for 64 MiB).
        try Fixture.run(["/usr/sbin/mkfs.ext4", "-q", "-F", "-d", tree.path, "-E", "offset=\(18432 * 512)", image, "\((131038 - 18432 + 1) / 2)k"])
        let result = try await run(["sh", "-c", "cat /etc/hostname; grep ' / ' /proc/mounts | cut -d' ' -f3; exit 9"],
                                   root: Profile.RootFS(.disk(0))) { profile in
            profile.disks = [Profile.Disk(path: image, ephemeral: true)]
        }
        #expect(result.exitCode == 9, "stderr: \(result.stderrText)")
        #expect(result.stdoutText == "tree\next4\n")
    }

    @Test("launch run P --rootfs host -- ./test runs a host-built test from the current folder with its exit code")
    func cli() throws {
        let folder = try Fixture.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("#!/bin/bash\necho \"in $PWD\"\nexit 3\n".utf8).write(to: folder.appendingPathComponent("my-test"))
        chmod(folder.appendingPathComponent("my-test").path, 0o755)
        let profile = folder.appendingPathComponent("p.json")
        try Data(#"{"name": "cli", "kernel": "\#(try Fixture.kernel)", "accel": "tcg", "timeouts": {"boot": "120s", "run": "240s"}}"#.utf8).write(to: profile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = ["run", "-q", profile.path, "--rootfs", "host", "--", "./my-test"]
        process.currentDirectoryURL = folder
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 3)
        #expect(text == "in \(folder.path)\n")
    }

    /// A minimal root: the host's static busybox and a few links, the folders the guest kit mounts on.
    func makeBusyboxTree(_ root: URL) throws {
        let fm = FileManager.default
        for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "run", "mnt"] {
            try fm.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/bin/busybox", toPath: root.appendingPathComponent("bin/busybox").path)
        for applet in ["sh", "cat", "echo", "grep", "cut", "pwd"] {
            try fm.createSymbolicLink(atPath: root.appendingPathComponent("bin/\(applet)").path, withDestinationPath: "busybox")
        }
        try Data("tree\n".utf8).write(to: root.appendingPathComponent("etc/hostname"))
    }
}
