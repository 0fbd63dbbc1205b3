import Logging

/// An error from starting, running or stopping a VM. It says what happened, why
/// (when known) and how to fix it; `code` says what kind of failure it is (the `launch`
/// CLI turns it into its exit status).
public struct LaunchError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure an error is; callers branch on it (and the CLI picks its exit status by it).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// How the kind reads in a message ("invalid profile", "timeout", ...).
        public let name: String

        /// The kind named `name`; the statics below are every kind the libraries throw.
        public init(name: String) {
            self.name = name
        }

        /// The profile is invalid (or a value overriding it); the message lists every problem.
        public static let invalidProfile = Code(name: "invalid profile")
        /// A program the launch needs (QEMU, qemu-img, busybox, a decompressor) is missing.
        public static let missingProgram = Code(name: "missing program")
        /// Something failed that the caller can't fix (a syscall, a preparation command).
        public static let internalError = Code(name: "internal error")
        /// The host can't do what the profile asks (a folder not writable, a state folder in use, ...).
        public static let hostProblem = Code(name: "host problem")
        /// QEMU exited early or failed a request.
        public static let qemuFailed = Code(name: "QEMU failed")
        /// A virtiofsd exited early.
        public static let virtiofsdFailed = Code(name: "virtiofsd failed")
        /// A deadline passed: the boot, a command, a step of the ladder.
        public static let timeout = Code(name: "timeout")
        /// The guest kernel panicked.
        public static let guestPanic = Code(name: "guest panic")
        /// The guest rebooted, and the profile's `onReboot` is `exit`: the VM ended.
        public static let guestRebooted = Code(name: "guest rebooted")
        /// An `Interrupt` fired (the CLI's Ctrl-C or SIGTERM); the VM was stopped.
        public static let interrupted = Code(name: "interrupted")
        /// The calling task was cancelled; the VM was stopped. Never a result.
        public static let cancelled = Code(name: "cancelled")

        /// The kind's name.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What happened, in one sentence (an invalid profile's: its whole problem list).
    public var message: String
    /// How to fix it, when there is something to do.
    public var fix: String?
    /// Extra lines: a shell-quoted argv, a stderr or console tail.
    public var details: [String]
    /// The underlying error (a QMP error, an errno, a decoding error), when there is one.
    public var cause: (any Error)?

    /// An error of kind `code` saying `message`, with an optional fix, detail lines and cause.
    public init(_ code: Code, _ message: String, fix: String? = nil, details: [String] = [], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.fix = fix
        self.details = details
        self.cause = cause
    }

    /// The message, its cause, the fix and the details, one per line.
    public var description: String {
        var text = message
        if let cause { text += ": \(cause)" }
        if let fix { text += "\n  fix: \(fix)" }
        for detail in details { text += "\n" + detail }
        return text
    }

    /// With `.invalidProfile` from ``invalid(_:)``: every problem, with its JSON path.
    public var problems: ProfileProblems?

    /// An invalid profile: every problem in the message, and in `problems`.
    public static func invalid(_ problems: ProfileProblems) -> LaunchError {
        var error = LaunchError(.invalidProfile, problems.description)
        error.problems = problems
        return error
    }

    /// A call whose task was cancelled: it stopped what it started and reports no result.
    public static func cancelled(_ what: String) -> LaunchError {
        LaunchError(.cancelled, "cancelled: \(what)")
    }

    /// Throws `.cancelled` when the calling task is cancelled.
    package static func checkCancellation(_ what: String) throws(LaunchError) {
        if Task.isCancelled { throw cancelled(what) }
    }

    /// `program` is not on this host; `package` names the Debian and Ubuntu package
    /// that ships it (other distributions name theirs alike), `purpose` what needs it.
    public static func missing(_ program: String, package: String, purpose: String) -> LaunchError {
        LaunchError(.missingProgram, "\(program) was not found; it is needed \(purpose)",
                    fix: installFix("Debian and Ubuntu: \(package)"))
    }

    /// The libraries' wording for a fix that is a distribution package: the package each
    /// distribution family names, never an install command (`packages` like
    /// "Debian and Ubuntu: ovmf; Fedora: edk2-ovmf").
    package static func installFix(_ packages: String) -> String {
        "install the package that ships it (\(packages))"
    }
}

extension Logger {
    /// The libraries' default logger: label "launch", warnings and errors only, so a
    /// test process that doesn't ask sees no routine progress. Pass your own
    /// (`logLevel = .info` shows what each launch picked, `.debug` every phase).
    public static var quietByDefault: Logger {
        var logger = Logger(label: "launch")
        logger.logLevel = .warning
        return logger
    }
}
