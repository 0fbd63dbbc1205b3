import Foundation
import LaunchSupport
import Logging
import QMP
#if canImport(Glibc)
import Glibc
#endif

extension LaunchError.Code {
    /// No named VM of this user has that name.
    public static let noSuchVM = LaunchError.Code(name: "no such VM")
}

/// The named VMs of this user: one record folder per VM under ``root``
/// (`$XDG_RUNTIME_DIR/qemu-launch/vms/NAME/`, or `/tmp/qemu-launch-UID/vms/NAME/` when
/// `XDG_RUNTIME_DIR` is unset), each mode 0700 and holding `record.json`, `lock`,
/// `supervisor.log`, `console.log` and the VM's sockets (`qmp.sock`, `console.sock`, `exec.sock`).
///
/// ```swift
/// let vm = try VMRegistry().find("dev")
/// let qmp = try await vm.connectQMP()
/// print(try await qmp.queryStatus())
/// ```
public struct VMRegistry: Sendable {
    /// The folder holding one record folder per VM.
    public let root: String

    /// The record file's name in a VM's folder.
    package static let recordFile = "record.json"
    /// The supervisor's lock file's name.
    package static let lockFile = "lock"
    /// The supervisor's own log (its stdout and stderr).
    package static let supervisorLog = "supervisor.log"

    /// The registry at `root`; nil = ``defaultRoot``.
    public init(root: String? = nil) {
        self.root = root ?? Self.defaultRoot
    }

    /// `$XDG_RUNTIME_DIR/qemu-launch/vms`, or `/tmp/qemu-launch-UID/vms` without it.
    public static var defaultRoot: String {
        let env = ProcessInfo.processInfo.environment
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/qemu-launch/vms" }
        return "/tmp/qemu-launch-\(getuid())/vms"
    }

    /// The record folder of the VM named `name` (whether it exists or not).
    public func folder(of name: String) -> String { root + "/" + name }

    /// Every VM with a record folder, by name: running ones, stopped or crashed ones whose
    /// record `down` has not removed yet, and stale ones (supervisor gone).
    public func all() -> [NamedVM] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { NamedVM(name: $0, folder: folder(of: $0)) }
    }

    /// The VM named `name`; throws `.noSuchVM` (listing the names there are) when it has no record folder.
    public func find(_ name: String) throws(LaunchError) -> NamedVM {
        guard ProfileValidator.isUsableVMName(name) else {
            throw LaunchError(.noSuchVM, "\"\(name)\" is not a VM name", fix: "use 1-64 letters, digits, '.', '_' or '-'")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder(of: name), isDirectory: &isFolder), isFolder.boolValue else {
            let known = all().map(\.name)
            throw LaunchError(.noSuchVM, "no VM named \(name) (in \(root))",
                              fix: known.isEmpty ? "start one with launch up PROFILE" : "the VMs there are: \(known.joined(separator: ", "))")
        }
        return NamedVM(name: name, folder: folder(of: name))
    }

    /// Makes the VM's record folder and takes its lock, atomically: the folder is built under
    /// a temporary name with its lock held, then renamed into place, so no one ever sees the
    /// folder unlocked while it starts. A finished VM's record (stopped, crashed) is replaced;
    /// a running VM's (lock held) or a stale one's is refused with the reason.
    package func claim(_ name: String) throws(LaunchError) -> (folder: String, lock: VMLock) {
        try makeRoot()
        let target = folder(of: name)
        let temporary = root + "/.\(name).\(getpid())"
        guard mkdir(temporary, 0o700) == 0 else {
            throw LaunchError(.hostProblem, "cannot create \(temporary): \(POSIX.describe(errno))")
        }
        chmod(temporary, 0o700)
        guard let lock = try VMLock.take(in: temporary) else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw LaunchError(.internalError, "cannot lock the new record folder \(temporary)")
        }
        func giveUp(_ error: LaunchError) -> LaunchError {
            lock.release()
            try? FileManager.default.removeItem(atPath: temporary)
            return error
        }
        for _ in 0..<2 {
            if rename(temporary, target) == 0 { return (target, lock) }
            guard errno == EEXIST || errno == ENOTEMPTY else {
                throw giveUp(LaunchError(.hostProblem, "cannot create the record folder \(target): \(POSIX.describe(errno))"))
            }
            let existing = NamedVM(name: name, folder: target)
            switch existing.status {
            case .stopped, .crashed:
                // A finished VM's record: its logs make way for the new run.
                try? FileManager.default.removeItem(atPath: target)
            case .stale:
                throw giveUp(LaunchError(.hostProblem, "VM \(name) has a stale record: its supervisor is gone (its lock \(target)/lock is free) but the record says \(existing.record?.state.rawValue ?? "nothing")",
                                         fix: "launch down \(name) removes it (its logs are in \(target))"))
            default:
                let pid = existing.record.map { " (supervisor pid \($0.supervisorPid))" } ?? ""
                throw giveUp(LaunchError(.hostProblem, "VM \(name) is running already\(pid): its supervisor holds \(target)/lock",
                                         fix: "stop it with launch down \(name), or give this one another --name"))
            }
        }
        throw giveUp(LaunchError(.hostProblem, "cannot create the record folder \(target): another launch up \(name) is racing this one"))
    }

    /// Makes `root` and the folders above it that are ours (mode 0700), and refuses a
    /// folder someone else owns or can read: sockets and records live only in private folders.
    package func makeRoot() throws(LaunchError) {
        let parent = (root as NSString).deletingLastPathComponent
        for path in [parent, root] {
            if mkdir(path, 0o700) == 0 {
                chmod(path, 0o700)
                continue
            }
            let err = errno
            guard err == EEXIST else {
                throw LaunchError(.hostProblem, "cannot create \(path): \(POSIX.describe(err))",
                                  fix: "check that \((path as NSString).deletingLastPathComponent) exists and is writable, or set XDG_RUNTIME_DIR")
            }
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), (info.st_mode & 0o077) == 0 else {
                throw LaunchError(.hostProblem, "\(path) is not a private folder of this user (a folder, owned by uid \(getuid()), mode 0700)",
                                  fix: "remove it, or set XDG_RUNTIME_DIR to your own runtime folder")
            }
        }
    }
}

/// One named VM as its record folder shows it now.
public struct NamedVM: Sendable {
    /// What `launch list` says about a VM.
    public enum Status: String, Sendable, Hashable, Codable {
        /// Its supervisor is booting it.
        case starting
        /// It is up and ready.
        case running
        /// Its supervisor is stopping it.
        case stopping
        /// It ended cleanly; the record stays until `down` (or the next `up`) removes it.
        case stopped
        /// It ended otherwise (a failed start, a panic, QEMU's own death).
        case crashed
        /// The record says it runs but its supervisor is gone (killed): no QEMU is left
        /// (the supervisor's death kills it); `down` removes the record.
        case stale
    }

    /// The VM's name.
    public let name: String
    /// Its record folder.
    public let folder: String
    /// The record as last written; nil when none was written yet (or it can't be read).
    public let record: VMRecord?
    /// Whether its supervisor is alive: it holds the folder's lock.
    public let supervisorIsAlive: Bool

    /// Reads the VM's record folder at `folder`.
    public init(name: String, folder: String) {
        self.name = name
        self.folder = folder
        // The lock first: a supervisor that writes its final record and exits between
        // the two reads shows as finished, never as stale.
        supervisorIsAlive = VMLock.isHeld(in: folder)
        record = (try? Data(contentsOf: URL(fileURLWithPath: folder + "/" + VMRegistry.recordFile))).flatMap { try? VMRecord(jsonData: $0) }
    }

    /// Its state: the record's while the supervisor lives; a final state once it has
    /// ended; ``Status/stale`` when the supervisor vanished without saying so.
    public var status: Status {
        guard let record else { return supervisorIsAlive ? .starting : .stale }
        if record.state.isFinal { return record.state == .stopped ? .stopped : .crashed }
        guard supervisorIsAlive else { return .stale }
        switch record.state {
        case .starting: return .starting
        case .running: return .running
        default: return .stopping
        }
    }

    /// QEMU's second QMP monitor, for other tools (one client at a time).
    public var qmpSocket: String { folder + "/qmp.sock" }
    /// The serial console's log (everything the guest printed).
    public var consoleLog: String { folder + "/console.log" }
    /// The supervisor's log.
    public var supervisorLog: String { folder + "/" + VMRegistry.supervisorLog }

    /// Connects to the VM's QMP monitor (`qmp.sock`); throws `.hostProblem` when the VM
    /// is not running or the monitor doesn't answer.
    public func connectQMP(timeout: Duration = .seconds(10), logger: Logger = .quietByDefault) async throws(LaunchError) -> QMP.Client {
        guard supervisorIsAlive else {
            throw LaunchError(.hostProblem, "VM \(name) is not running (\(status.rawValue))", fix: "start it with launch up")
        }
        do {
            return try await QMP.Client.connect(unixPath: qmpSocket, timeout: timeout, logger: logger)
        } catch {
            throw LaunchError(.hostProblem, "cannot reach the QMP monitor of VM \(name) at \(qmpSocket): \(error)",
                              fix: "a QMP socket serves one client at a time: is another tool connected? Else see \(supervisorLog)", cause: error)
        }
    }

    /// The last `count` lines of a file in the record folder (a log), for error messages.
    package func tail(of path: String, last count: Int = 15) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        // A serial console's lines end in CRLF, which is one Character: split on scalars.
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: true)
            .map { String(String.UnicodeScalarView($0)).trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }
        return Array(lines.suffix(count))
    }
}
