import ArgumentParser
import QEMULaunch

/// The exit statuses `launch` gives its callers, and which failure gets which: sysexits.h
/// where one fits, `timeout(1)`'s 124, and the shells' 128 + SIGINT. The libraries' errors
/// carry a `LaunchError.Code`; only this program turns one into a number.
enum LaunchExit {
    /// EX_DATAERR: the profile (or a flag overriding it) is invalid; every problem is listed.
    static let invalidProfile: Int32 = 65
    /// EX_UNAVAILABLE: a program the launch needs (QEMU, qemu-img, busybox) is missing.
    static let missingProgram: Int32 = 69
    /// EX_SOFTWARE: an internal error, or QEMU or virtiofsd failed.
    static let internalError: Int32 = 70
    /// EX_OSERR: a host problem (runtime dir not writable, a state folder in use, ...).
    static let hostProblem: Int32 = 71
    /// EX_TEMPFAIL: the VM was stopped by force (QMP `quit`, SIGTERM or SIGKILL) because the
    /// guest did not power off in time, or a second Ctrl-C skipped the ACPI step: the guest
    /// did not shut down, and its disks may need recovery on the next boot.
    static let forcedStop: Int32 = 75
    /// EX_PROTOCOL's number, for lack of a closer one: the guest rebooted and the profile's
    /// `onReboot` is `exit` (the default), so the VM ended there.
    static let guestRebooted: Int32 = 76
    /// A deadline passed (`timeouts.boot`, `timeouts.run`), as `timeout(1)` reports it.
    static let timeout: Int32 = 124
    /// The guest kernel panicked.
    static let guestPanic: Int32 = 125
    /// Ctrl-C or SIGTERM stopped the VM (128 + SIGINT, as shells report it).
    static let interrupted: Int32 = 130

    /// The status for a failure of kind `code`; a code this program doesn't know is an internal error.
    static func of(_ code: LaunchError.Code) -> Int32 {
        switch code {
        case .invalidProfile: return invalidProfile
        case .missingProgram: return missingProgram
        case .hostProblem: return hostProblem
        case .timeout: return timeout
        case .guestPanic: return guestPanic
        case .guestRebooted: return guestRebooted
        case .interrupted, .cancelled: return interrupted
        default: return internalError  // internalError, qemuFailed, virtiofsdFailed
        }
    }
}

extension ExitCode {
    /// Exits with the status for a failure of kind `code` (`LaunchExit.of`).
    init(_ code: LaunchError.Code) {
        self.init(LaunchExit.of(code))
    }
}
