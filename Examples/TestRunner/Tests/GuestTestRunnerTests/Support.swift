import Foundation
import Synchronization
import GuestKit
import QEMULaunch
import Testing

/// What a test runner keeps an eye on in its own process: fds, threads, children
/// and the runtime dirs the launcher makes.
struct ProcessFootprint: Equatable, CustomStringConvertible {
    var fileDescriptors: Int
    var threads: Int
    var runtimeDirs: Int

    /// Now, in this process. Dispatch's own workers (named "…qos…") and their
    /// epoll/event fds come and go on their own timers, so they are left out.
    static func now(runtimeBase: URL) -> ProcessFootprint {
        let fm = FileManager.default
        let fds = ((try? fm.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).filter { fd in
            let target = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? ""
            return !target.hasPrefix("anon_inode:")
        }
        let threads = ((try? fm.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).filter { task in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return !name.contains("qos")
        }
        let dirs = ((try? fm.contentsOfDirectory(atPath: runtimeBase.path)) ?? []).filter { $0.hasPrefix("launch-") }
        return ProcessFootprint(fileDescriptors: fds.count, threads: threads.count, runtimeDirs: dirs.count)
    }

    var description: String { "\(fileDescriptors) fds, \(threads) threads, \(runtimeDirs) runtime dirs" }

    /// Threads end a moment after the VM (a reader sees EOF, then exits): give them a few seconds.
    static func settled(runtimeBase: URL, atMost baseline: ProcessFootprint) async -> ProcessFootprint {
        var now = ProcessFootprint.now(runtimeBase: runtimeBase)
        for _ in 0..<50 where now.fileDescriptors > baseline.fileDescriptors || now.threads > baseline.threads {
            try? await Task.sleep(for: .milliseconds(100))
            now = ProcessFootprint.now(runtimeBase: runtimeBase)
        }
        return now
    }
}

/// The processes whose command line names `needle`: QEMU and virtiofsd carry their runtime dir in theirs.
func processes(mentioning needle: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data, as: UTF8.self).contains(needle)
    }
}

/// A private folder under /tmp for one test's runtime dirs and shared files.
func temporaryFolder(_ label: String) throws -> URL {
    var template = Array("/tmp/gtr-\(label)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    try #require(made != nil)
    return URL(fileURLWithPath: template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
}

/// A profile built in code, as a test suite would: the host's newest kernel on
/// microvm under TCG (this machine's KVM is broken), a folder shared over virtiofs,
/// and runtime dirs under `folder` so the test can count them.
func guestProfile(_ name: String, folder: URL) throws -> Profile {
    var profile = Profile(name: name)
    profile.machine = .microvm
    profile.accel = .tcg
    profile.memory = .mebibytes(256)
    profile.kernel = try #require(KernelLocator.newest()?.path, "no /boot/vmlinuz-*: install linux-image-amd64")
    let shared = folder.appendingPathComponent("shared")
    try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
    try Data("from the host\n".utf8).write(to: shared.appendingPathComponent("greeting.txt"))
    profile.shares = [Profile.Share(tag: "work", path: shared.path)]
    profile.runtimeDir = folder.path
    // Generous: two cores under TCG, shared with other work.
    profile.timeouts.boot = TimeLimit(.seconds(120))
    profile.timeouts.shutdown = TimeLimit(.seconds(10))
    return profile
}

/// Collects a command's output as it streams, so a test can wait for a line.
final class StreamedText: Sendable {
    private let text = Mutex("")
    func append(_ data: Data) { text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
    var value: String { text.withLock { $0 } }
    func wait(for needle: String, timeout: Duration = .seconds(180)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !value.contains(needle) {
            try #require(ContinuousClock.now < deadline, "\"\(needle)\" never arrived; got: \(value)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
