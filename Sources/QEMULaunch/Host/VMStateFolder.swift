import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one VM keeps between runs, like a VM bundle: `<root>/<name>/` holding
///
/// | file | what |
/// | --- | --- |
/// | `identity.json` | the machine identity: UUID (`-uuid`) and NIC MAC |
/// | `efivars.fd` | the UEFI variable store (`firmware: uefi`) |
/// | `disk<N>.qcow2` | the persistent overlay of `disks[N]` (`overlay: persistent`) |
/// | `disk<N>.base.json` | the base image that overlay was made over: path, format, size, mtime |
///
/// Only VMs that keep something have one (`keepsState`). This type owns the
/// layout; the planner asks it for file names, `Machine.start` for the identity
/// and the overlays, `launch state` for the listing and the reset.
package struct VMStateFolder: Sendable, Hashable {
    package let vmName: String
    /// The folder holding every VM's state folder.
    package let root: String

    package var path: String { root + "/" + vmName }

    /// `root` nil = `defaultRoot`. The name must be a usable VM name (never "." or "..",
    /// so the folder is always one level below `root`).
    package init(vmName: String, root: String? = nil) throws(LaunchError) {
        guard ProfileValidator.isUsableVMName(vmName) else {
            throw LaunchError(.invalidProfile, "\"\(vmName)\" is not a usable VM name for a state folder",
                              fix: "use 1-64 letters, digits, '.', '_' or '-' (not \".\" or \"..\")")
        }
        self.vmName = vmName
        self.root = root ?? Self.defaultRoot
    }

    /// `$XDG_STATE_HOME/qemu-launch`, default `~/.local/state/qemu-launch`.
    package static var defaultRoot: String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".local/state").path
        return base + "/qemu-launch"
    }

    /// Whether `profile` keeps anything between runs: UEFI variables or a persistent overlay.
    package static func keepsState(_ profile: Profile) -> Bool {
        profile.firmware == .uefi || profile.disks.contains { $0.overlay == .persistent }
    }

    // MARK: - layout

    package static let identityFile = "identity.json"
    package static let firmwareVarsFile = "efivars.fd"
    package static func overlayFile(disk index: Int) -> String { "disk\(index).qcow2" }
    package static func baseRecordFile(disk index: Int) -> String { "disk\(index).base.json" }

    package var exists: Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Makes the folder (mode 0700: it holds the guest's disk writes) when missing.
    func create() throws(LaunchError) {
        if exists { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw LaunchError(.hostProblem, "cannot create the VM's state folder \(path)",
                              fix: "check that \(root) is writable, or set XDG_STATE_HOME to a writable folder", cause: error)
        }
        chmod(path, 0o700)
    }

    // MARK: - identity

    /// The stored identity, or nil when none was made yet. A damaged file is an
    /// error, not a new identity: the guest would see another machine.
    package func storedIdentity() throws(LaunchError) -> MachineIdentity? {
        let file = path + "/" + Self.identityFile
        guard let data = FileManager.default.contents(atPath: file) else {
            if FileManager.default.fileExists(atPath: file) {
                throw LaunchError(.hostProblem, "cannot read the machine identity \(file)", fix: "check its permissions")
            }
            return nil
        }
        let identity: MachineIdentity
        do {
            identity = try JSONDecoder().decode(MachineIdentity.self, from: data)
        } catch {
            throw LaunchError(.hostProblem, "the machine identity \(file) is not valid JSON of {\"uuid\", \"mac\"}",
                              fix: "repair it, or delete it to give the VM a new UUID and MAC", cause: error)
        }
        if let problem = identity.problem {
            throw LaunchError(.hostProblem, "the machine identity \(file) is unusable: \(problem)",
                              fix: "repair it, or delete it to give the VM a new UUID and MAC")
        }
        return identity
    }

    /// The stored identity, or `new` (a random one unless given) stored now, making the folder.
    package func identity(making new: MachineIdentity = .random()) throws(LaunchError) -> (identity: MachineIdentity, isNew: Bool) {
        if let stored = try storedIdentity() { return (stored, false) }
        try create()
        let file = path + "/" + Self.identityFile
        let temporary = AtomicFile.temporaryPath(for: file)
        let made = new
        defer { unlink(temporary) }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try (encoder.encode(made) + Data("\n".utf8)).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw LaunchError(.hostProblem, "cannot write the machine identity \(file)", fix: "check that \(path) is writable", cause: error)
        }
        // link() never replaces: when another launcher made the identity first, theirs is kept.
        if link(temporary, file) != 0 {
            let err = errno
            if err == EEXIST, let stored = try storedIdentity() { return (stored, false) }
            throw LaunchError(.hostProblem, "cannot store the machine identity \(file): \(POSIX.describe(err))",
                              fix: "check that \(path) is writable")
        }
        return (made, true)
    }

    // MARK: - listing and reset

    package struct File: Sendable, Hashable {
        package var name: String
        package var sizeBytes: UInt64
    }

    /// The folder's files, sorted by name; empty when there is no folder.
    package func files() -> [File] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().map { name in
            var info = stat()
            var size = stat(path + "/" + name, &info) == 0 ? UInt64(info.st_size) : 0
            if info.st_mode & S_IFMT == S_IFDIR {
                // A folder (crash captures): what its files take, not its directory entry.
                let files = FileManager.default.enumerator(atPath: path + "/" + name)?.allObjects as? [String] ?? []
                size = files.reduce(0) { sum, file in
                    var fileInfo = stat()
                    return sum + (lstat(path + "/" + name + "/" + file, &fileInfo) == 0 && fileInfo.st_mode & S_IFMT == S_IFREG ? UInt64(fileInfo.st_size) : 0)
                }
            }
            return File(name: name, sizeBytes: size)
        }
    }

    /// Files a running QEMU holds a lock on (QEMU locks every image it opens,
    /// the UEFI variable store included): non-empty means the VM is running.
    package func filesInUse() -> [String] {
        files().map(\.name).filter { name in
            let fd = open(path + "/" + name, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            lock.l_start = 0
            lock.l_len = 0
            // F_GETLK also reports QEMU's open-file-description locks (they conflict with POSIX ones).
            return fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != Int16(F_UNLCK)
        }
    }

    /// Throws when a running QEMU uses the folder; `doing` says what was refused.
    package func checkNotInUse(_ doing: String) throws(LaunchError) {
        let inUse = filesInUse()
        if !inUse.isEmpty {
            throw LaunchError(.hostProblem, "VM \(vmName) seems to be running already: a process holds a lock on \(inUse.joined(separator: ", ")) in \(path); not \(doing)",
                              fix: "stop that VM first (one VM's state folder serves one run at a time)")
        }
    }

    /// Deletes the folder; returns what was in it. Refuses while a QEMU uses it.
    package func reset() throws(LaunchError) -> [File] {
        guard exists else { return [] }
        try checkNotInUse("resetting it")
        let deleted = files()
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw LaunchError(.hostProblem, "cannot delete the state folder \(path)", fix: "check its permissions", cause: error)
        }
        return deleted
    }
}
