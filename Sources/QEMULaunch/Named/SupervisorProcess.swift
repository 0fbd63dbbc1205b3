import CLaunchShim
import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// Starting a named VM's supervisor: a `launch` process of its own that outlives the
/// `launch up` that made it, and owns QEMU and virtiofsd as `launch run` does.
package enum SupervisorProcess {
    /// The fd at which the supervisor inherits its record folder's locked `lock` file.
    package static let lockFileDescriptor: Int32 = 3

    /// Spawns `argv` in a new session (setsid: no terminal's signals reach it) with no
    /// parent-death signal (it must outlive `launch up`), stdin from /dev/null, stdout and
    /// stderr appended to `logPath`, and `lock`'s fd at ``lockFileDescriptor`` so the lock
    /// stays held without a gap. Returns its pid.
    package static func spawnDetached(argv: [String], environment: [String: String], logPath: String, lock: VMLock) throws(LaunchError) -> pid_t {
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw LaunchError(.hostProblem, "cannot open \(logPath): \(POSIX.describe(errno))") }
        defer { close(log) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let fdMap: [Int32] = [devNull, 0, log, 1, log, 2, lock.fileDescriptor, lockFileDescriptor]
        let envList = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var spawnError: Int32 = 0
        let pid = withCStrings(argv) { cArgv in
            withCStrings(envList) { cEnv in
                fdMap.withUnsafeBufferPointer { map in
                    cls_spawn(argv[0], cArgv, cEnv, map.baseAddress, Int32(fdMap.count / 2), 1, 0, &spawnError)
                }
            }
        }
        guard pid > 0 else {
            throw LaunchError(.internalError, "cannot start the supervisor \(argv[0]): \(POSIX.describe(spawnError))")
        }
        return pid
    }
}
