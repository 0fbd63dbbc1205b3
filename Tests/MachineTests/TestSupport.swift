import Foundation
@_exported import Synchronization
import GuestKit
import QEMULaunch
import TestSupport
import Testing

/// What a test needs from this host beyond QEMU, for `.enabled(if:)` traits that skip
/// visibly, saying what to install.
enum HostNeeds {
    /// A virtiofsd of either flavor: Debian 12's QEMU 7.2 ships the C one; QEMU >= 8
    /// packages ship none (the Rust one is its own package where there is one).
    static let virtiofsd = HostProbe.current().virtiofsd != nil
    static let virtiofsdMissing: Comment = "needs a virtiofsd: none on this host (QEMU >= 8 ships no C virtiofsd; install the Rust one, package virtiofsd)"
}

/// Shared fixtures for tests that boot real guests.
enum Fixture {
    /// The newest host kernel; the suites need one (CI installs linux-image-amd64).
    static var kernel: String {
        get throws {
            try #require(KernelLocator.newest()?.path, "no /boot/vmlinuz-*: install linux-image-amd64")
        }
    }

    /// A fresh folder under /tmp, short enough for socket paths.
    static func temporaryDirectory(_ label: String = "t") throws -> URL {
        var template = Array("/tmp/lt-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil)
        return URL(fileURLWithPath: template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    /// A profile for a guest-kit run on microvm under TCG.
    static func guestProfile(_ name: String, command: [String]?) throws -> Profile {
        var profile = Profile(name: name)
        profile.machine = .microvm
        profile.accel = .tcg
        profile.memory = .mebibytes(256)
        profile.kernel = try kernel
        profile.command = command
        // Generous: two cores, TCG, and other suites booting guests at the same time.
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.run = TimeLimit(.seconds(240))
        profile.timeouts.shutdown = TimeLimit(.seconds(10))
        return profile
    }

    /// A minimal initramfs whose init runs `script` with busybox, for supervision tests
    /// that don't use the guest kit's exec protocol.
    static func initramfs(script: String, in folder: URL) throws -> String {
        var archive = CpioArchive()
        for dir in ["/bin", "/proc", "/sys", "/dev"] { try archive.addDirectory(dir) }
        try archive.addCharacterDevice("/dev/console", major: 5, minor: 1, mode: 0o600)
        try archive.addFile("/bin/busybox", contentsOf: URL(fileURLWithPath: "/bin/busybox"), mode: 0o755)
        try archive.addSymlink("/bin/sh", target: "busybox")
        try archive.addFile("/init", contents: Data("#!/bin/sh\n/bin/busybox --install -s /bin\n\(script)\n".utf8), mode: 0o755)
        let url = folder.appendingPathComponent("test.cpio")
        try archive.write(to: url)
        return url.path
    }

    /// Processes whose command line mentions `needle` (QEMU and virtiofsd carry the runtime dir in theirs).
    static func processes(mentioning needle: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            // Zombies have an empty cmdline and are not running.
            return String(decoding: data, as: UTF8.self).contains(needle)
        }
    }

    static func openFileDescriptorCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    static func threadCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).count
    }

    /// Threads that are not Dispatch's own worker pool (which grows under load and
    /// shrinks on its own timer): the launcher's readers, reapers and QMP threads.
    static func launcherThreadCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).filter { task in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return !name.contains("qos")
        }.count
    }

    /// Open fds that are not Dispatch's per-worker epoll/timer/event fds.
    static func launcherFileDescriptorCount() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter { fd in
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? ""
            return !target.hasPrefix("anon_inode:")
        }.count
    }

    /// Runs a helper program to completion; throws when it fails.
    @discardableResult
    static func run(_ argv: [String]) throws -> String {
        try TestProcess.capture(argv)
    }

    /// The `launch` executable built next to the tests.
    static var launchExecutable: String {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let candidates = [".build/debug/launch", ".build/x86_64-unknown-linux-gnu/debug/launch"].map { root.appendingPathComponent($0).path }
            return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
                                "build the launch executable first (swift build)")
        }
    }
}
