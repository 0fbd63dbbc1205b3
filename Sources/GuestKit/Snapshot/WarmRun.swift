import Foundation
import LaunchSupport
import Logging
import QEMULaunch
import QMP
import Synchronization

/// What `prepare` decided for a warm-start run: the mode, and the share mounts that run
/// after the restore.
package struct WarmStartSetup: Sendable, Hashable {
    package var mode: GuestKit.SnapshotMode
    /// Mounts the shares; sent in the run's own snippet, after the point the guest is saved.
    package var mountScript: [String]
}

/// One run's warm start: picks the snapshot to restore (or none) when the plan is known,
/// saves the guest on a cold run, and writes the run's own snippet (clock, seed, identity, mounts).
final class WarmRun: Sendable {
    let setup: WarmStartSetup
    let profileName: String
    let logger: Logger
    let cache: SnapshotCache
    private let chosen = Mutex<(key: SnapshotKey?, restored: Bool)>((nil, false))

    init(_ setup: WarmStartSetup, profileName: String, logger: Logger, cache: SnapshotCache = .standard) {
        self.setup = setup
        self.profileName = profileName
        self.logger = logger
        self.cache = cache
    }

    /// True when QEMU was started from a snapshot (it was there and matched the key).
    var restored: Bool { chosen.withLock { $0.restored } }

    /// Called by `Machine.start` with the plan: an open fd of the matching snapshot, or nil
    /// to boot (then this run saves one), with one line that says which and why.
    func restoreSource(for plan: Plan) -> Int32? {
        let version = plan.choices.first { $0.topic == "qemu" }?.value.split(separator: " ").first.map(String.init)
        let key = SnapshotKey.of(plan, profileName: profileName, qemuVersion: version)
        chosen.withLock { $0.key = key }
        if setup.mode == .refresh {
            logger.info("snapshot: refresh: booting to save a new one (\(cache.stateURL(key).path))")
            return nil
        }
        let (fd, reason) = cache.open(key)
        guard let fd else {
            logger.info("snapshot: booting and saving one: \(reason) (\(cache.stateURL(key).path))")
            return nil
        }
        chosen.withLock { $0.restored = true }
        var size = stat()
        fstat(fd, &size)
        logger.info("snapshot: restoring the saved guest \(cache.stateURL(key).path) (\(byteCount(UInt64(size.st_size)))) instead of booting")
        return fd
    }

    /// Waits until QEMU has loaded the snapshot (its run state leaves `inmigrate`). The guest
    /// was saved stopped, so QEMU 7.2 leaves it paused once loaded whatever `cont` said while
    /// it loaded (the saved run state wins): ``GuestSession`` sends `cont` after this.
    func waitUntilLoaded(_ machine: Machine, within limit: Duration) async throws(LaunchError) {
        let deadline = ContinuousClock.now + limit
        while true {
            let status: String
            do {
                status = try await machine.qmp.queryStatus().status
            } catch {
                throw LaunchError(.qemuFailed, "QEMU ended or stopped answering while it loaded the snapshot \(cache.stateURL(chosen.withLock { $0.key }!).path)",
                                  fix: "run with --snapshot refresh to make a new one; qemu.log in the runtime dir (--keep-runtime-dir) says why",
                                  details: ["  command: \(machine.qemu.commandLine)"], cause: error)
            }
            if status != "inmigrate" { return }
            if ContinuousClock.now > deadline {
                throw LaunchError(.timeout, "QEMU did not finish loading the snapshot within timeouts.boot (\(formatDuration(limit)))",
                                  fix: "run with --snapshot refresh to make a new one, or raise timeouts.boot")
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Saves the parked guest: QMP `stop`, `migrate` to a temporary file in the cache, wait
    /// for it to complete, `cont`, then the rename that makes it the snapshot. A failure is
    /// a warning (this run goes on, booted); the guest runs again whatever happened.
    func save(_ machine: Machine) async {
        guard let key = chosen.withLock({ $0.key }) else { return }
        let started = ContinuousClock.now
        var temporary: URL?
        do {
            let path = try cache.temporaryStateURL(key)
            temporary = path
            try await machine.qmp.stop()
            // exec: QEMU 7.2 has no file: migration (8.2 has); the shell's cat writes the file.
            _ = try await machine.qmp.execute("migrate", arguments: ["uri": .string("exec:cat > " + QEMUSyntax.shellQuote(path.path))])
            let deadline = ContinuousClock.now + .seconds(120)
            var outcome = ""
            while ContinuousClock.now < deadline {
                let reply = try await machine.qmp.execute("query-migrate")
                let status = reply["status"]?.stringValue ?? ""
                if status == "completed" { outcome = status; break }
                if ["failed", "cancelled"].contains(status) {
                    outcome = "\(status): \(reply["error-desc"]?.stringValue ?? "QEMU gave no reason")"
                    break
                }
                try await Task.sleep(for: .milliseconds(5))
            }
            // A completed migration leaves the source in postmigrate; `cont` runs it again (QEMU 7.2).
            try await machine.qmp.cont()
            guard outcome == "completed" else {
                throw LaunchError(.qemuFailed, "QEMU's migrate to \(path.path) " + (outcome.isEmpty ? "did not complete within 120 s" : outcome))
            }
            let took = started.duration(to: .now)
            let removed = try cache.commit(path, key: key, saveSeconds: Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
            temporary = nil
            var info = stat()
            stat(cache.stateURL(key).path, &info)
            logger.info("snapshot: saved the booted guest in \(formatDuration(took)) (\(byteCount(UInt64(info.st_size))), \(cache.stateURL(key).path))")
            for entry in removed { logger.info("snapshot: removed \(entry)") }
        } catch {
            if let temporary { unlink(temporary.path) }
            _ = try? await machine.qmp.cont()
            logger.warning("snapshot: not saved, this run goes on booted: \(error)")
        }
    }

    /// The run's own snippet, sent after the restore (or the save): the wall clock, a seed
    /// for the kernel's RNG, the run's identity (hostname, /etc/machine-id), the share mounts.
    func goScript(hostname: String) -> String {
        var seed = [UInt8](repeating: 0, count: 64)
        var generator = SystemRandomNumberGenerator()
        for index in seed.indices { seed[index] = UInt8.random(in: 0...255, using: &generator) }
        var id = [UInt8](repeating: 0, count: 16)
        for index in id.indices { id[index] = UInt8.random(in: 0...255, using: &generator) }
        let now = Date().timeIntervalSince1970
        return WarmStart.goScript(epochSeconds: Int(now.rounded()), seed: seed, hostname: hostname, machineID: id,
                                  mounts: setup.mountScript)
    }
}

extension WarmStart {
    /// The run's own snippet (pure): set the clock, mix `seed` into the kernel's entropy pool,
    /// set the hostname and machine id, then mount the shares.
    static func goScript(epochSeconds: Int, seed: [UInt8], hostname: String, machineID: [UInt8], mounts: [String]) -> String {
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        var lines = [
            // The saved guest's clock stopped when it was saved: it would be that far behind.
            "date -s @\(epochSeconds) > /dev/null",
            // Every restore of one snapshot starts from the same RNG state: mix in this run's seed
            // (the kernel reseeds its CRNG from the pool, which this write feeds).
            "echo \(hex(seed)) > /dev/urandom",
            // Through /proc with the shell's own echo: an applet would be a fork and an exec,
            // which a restored QEMU (its TCG translation cache empty) pays dearly for.
            "echo \(QEMUSyntax.shellQuote(hostname)) > /proc/sys/kernel/hostname && echo \(QEMUSyntax.shellQuote(hostname)) > /etc/hostname",
            "echo \(hex(machineID)) > /etc/machine-id",
        ]
        lines += mounts
        return lines.joined(separator: "\n") + "\n"
    }
}
