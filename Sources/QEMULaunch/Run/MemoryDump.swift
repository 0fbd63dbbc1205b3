import Foundation
import LaunchSupport
import QMP
#if canImport(Glibc)
import Glibc
#endif

/// Where a run saves its guest's console log and memory dump: on a kernel panic, and
/// when asked (``Machine/captureCrashState(reason:)``).
///
/// With a capture configured, a panicked guest is kept alive and stopped (the kernel
/// waits 20 s with `panic=20`; pvpanic pauses QEMU with `-action panic=pause`) until the dump
/// is written; then QEMU is told to quit and the VM ends as `.panicked`, as before.
public struct CrashCapture: Sendable, Hashable {
    /// The folder that receives one subfolder per capture, `<vm name>-<UTC time>`;
    /// nil = ``defaultFolder(vmName:stateRoot:)``.
    public var folder: String?
    /// Write a memory dump (`vmcore`, the size of guest RAM) besides the console log.
    public var memory: Bool
    /// A symbol file for the kernel (the tree's `vmlinux`), named in the capture's notes.
    public var symbols: String?

    /// A capture into `folder` (nil: the VM state folder's `crashes/`), with a memory dump unless `memory` is false.
    public init(folder: String? = nil, memory: Bool = true, symbols: String? = nil) {
        self.folder = folder
        self.memory = memory
        self.symbols = symbols
    }

    /// `<state root>/<vm name>/crashes`: beside what the VM keeps between runs
    /// (`launch state NAME` shows it, `--reset` deletes it); never the working directory.
    public static func defaultFolder(vmName: String, stateRoot: String? = nil) -> String {
        (stateRoot ?? VMStateFolder.defaultRoot) + "/\(vmName)/crashes"
    }
}

/// What a capture saved, and what went wrong if something did.
public struct CrashReport: Sendable, Hashable, CustomStringConvertible {
    /// Why it was taken: "kernel panic", or the caller's reason.
    public var reason: String
    /// The capture's own folder.
    public var folder: String
    /// The guest's whole console log, copied.
    public var consoleLog: String?
    /// The ELF memory dump (`dump-guest-memory`, paging off), which `crash` and gdb read.
    public var memoryDump: String?
    /// The memory dump's size in bytes, when one was written.
    public var memoryDumpBytes: UInt64?
    /// What could not be saved, and why.
    public var problems: [String] = []

    /// One line for the user: what was saved where, and what could not be.
    public var description: String {
        var saved: [String] = []
        if consoleLog != nil { saved.append("console.log") }
        if let memoryDump {
            let size = memoryDumpBytes.map { " (\(byteCount($0)), ELF)" } ?? ""
            saved.append("\((memoryDump as NSString).lastPathComponent)\(size)")
        }
        var text = "\(reason): saved \(saved.isEmpty ? "nothing" : saved.joined(separator: " and ")) in \(folder)"
        if !problems.isEmpty { text += " (\(problems.joined(separator: "; ")))" }
        return text
    }
}

extension Machine {
    /// Stops the vCPUs, copies the console log and writes a memory dump into a new
    /// folder under the capture's folder, then lets the guest run on (unless it was
    /// stopped already). Safe to call on a panicked guest; best effort: what failed is
    /// in the report's `problems`.
    public func captureCrashState(reason: String) async -> CrashReport {
        let settings = crashCapture ?? CrashCapture()
        let root = settings.folder ?? CrashCapture.defaultFolder(vmName: profile.name, stateRoot: stateRoot)
        var report = CrashReport(reason: reason, folder: root)
        let folder: String
        do {
            folder = try Self.makeCaptureFolder(under: root, vmName: profile.name)
        } catch {
            report.problems.append("can't create a folder under \(root): \(error.localizedDescription)")
            return report
        }
        report.folder = folder
        let wasRunning = (try? await qmp.queryStatus(timeout: .seconds(10)))?.running ?? false
        // The same instant for the registers, the memory and the console log's end.
        if wasRunning { _ = try? await qmp.stop(timeout: .seconds(10)) }

        let console = folder + "/console.log"
        do {
            try FileManager.default.copyItem(atPath: self.console.logPath, toPath: console)
            report.consoleLog = console
        } catch {
            report.problems.append("console log not copied: \(error.localizedDescription)")
        }
        let guestBytes = profile.memory.bytes
        var space = statvfs()
        let freeBytes = statvfs(folder, &space) == 0 ? UInt64(space.f_bavail) * UInt64(space.f_frsize) : .max
        if settings.memory, freeBytes < guestBytes + (64 << 20) {
            // A dump is as large as guest RAM: never fill the disk with it.
            report.problems.append("no memory dump: it needs \(byteCount(guestBytes)) and \(folder) has \(byteCount(freeBytes)) free")
        } else if settings.memory {
            let dump = folder + "/vmcore"
            do {
                // paging false: the guest's physical memory as ELF PT_LOAD segments plus a
                // note per vCPU, the format `crash` reads. Synchronous (no detach): the reply
                // comes once the file is complete. QEMU writes it, so its folder must be one
                // QEMU can write: the launcher's own, made above.
                _ = try await qmp.execute("dump-guest-memory", arguments: [
                    "paging": .bool(false), "protocol": .string("file:" + dump), "format": .string("elf"),
                ], timeout: .seconds(600))
                report.memoryDump = dump
                report.memoryDumpBytes = (try? FileManager.default.attributesOfItem(atPath: dump)[.size] as? NSNumber)?.uint64Value
            } catch {
                report.problems.append("memory dump failed: \(error)")
            }
        }
        var notes = ["launch crash capture", "reason: \(reason)", "vm: \(profile.name)",
                     "kernel: \(profile.kernel ?? "-")", "cmdline: \(plan.cmdline)"]
        if let symbols = settings.symbols { notes.append("symbols: \(symbols)") }
        if report.memoryDump != nil {
            notes.append("open the dump with: crash \(settings.symbols ?? "VMLINUX") \(folder)/vmcore")
        }
        try? (notes.joined(separator: "\n") + "\n").write(toFile: folder + "/notes.txt", atomically: true, encoding: .utf8)
        if wasRunning { _ = try? await qmp.cont(timeout: .seconds(10)) }
        crashReports.withLock { $0.append(report) }
        return report
    }

    /// Watches for a kernel panic (pvpanic's `GUEST_PANICKED`, or the kernel's own
    /// "Kernel panic - not syncing" on the console), captures once, then ends QEMU.
    func watchForPanics() {
        guard crashCapture != nil else { return }
        let chunks = console.output()
        Task { [weak self] in
            var window = ""
            for await chunk in chunks {
                window = String((window + chunk).suffix(4096))
                guard window.contains("Kernel panic - not syncing") else { continue }
                // Let the kernel finish its report (the backtrace) before stopping it: it
                // ends with "---[ end Kernel panic"; a second at most.
                let deadline = ContinuousClock.now + .seconds(1)
                var ended = window.contains("---[ end Kernel panic")
                while !ended, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(50))
                    ended = self?.console.tail.lines(last: 5).contains { $0.contains("---[ end Kernel panic") } ?? true
                }
                await self?.panicked(seenOn: "the console")
                return
            }
        }
    }

    /// A panic was seen: capture once, then quit QEMU (the guest waits in its panic).
    func panicked(seenOn source: String) async {
        guard panicCaptureStarted.withLock({ started in defer { started = true }; return !started }) else { return }
        logger.debug("kernel panic seen on \(source): capturing the console log and memory")
        let report = await captureCrashState(reason: "kernel panic")
        // The panic's error names it (crashCaptures), with any problem: not twice.
        logger.debug("\(report)")
        await shutdown(stepTimeout: .seconds(5), skipACPI: true)
    }

    /// `<root>/<vm>-<UTC yyyyMMdd-HHmmss>`, with `-2`, `-3`... when taken already.
    static func makeCaptureFolder(under root: String, vmName: String) throws -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let base = "\(root)/\(vmName)-\(formatter.string(from: Date()))"
        // Every folder made here private (0700), like a state folder: a dump holds guest memory.
        var made = root.hasPrefix("/") ? "" : FileManager.default.currentDirectoryPath
        for component in root.split(separator: "/") {
            made += "/" + component
            if mkdir(made, 0o700) != 0 && errno != EEXIST { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        for attempt in 1...100 {
            let path = attempt == 1 ? base : "\(base)-\(attempt)"
            // mkdir, not "exists then create": two captures at once never share a folder.
            if mkdir(path, 0o700) == 0 { return path }
            if errno != EEXIST { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        throw POSIXError(.EEXIST)
    }
}
