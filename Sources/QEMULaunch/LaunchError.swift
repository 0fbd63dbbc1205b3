import Logging

/// An error from starting, running or stopping a VM. It says what happened, why
/// (when known) and how to fix it; `code` maps to the `launch` exit status.
public struct LaunchError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// The `launch` exit status for this kind of failure (sysexits.h where one fits).
        public let exitStatus: Int32

        public static let invalidProfile = Code(name: "invalid profile", exitStatus: 65)
        public static let missingProgram = Code(name: "missing program", exitStatus: 69)
        public static let internalError = Code(name: "internal error", exitStatus: 70)
        public static let hostProblem = Code(name: "host problem", exitStatus: 71)
        public static let qemuFailed = Code(name: "QEMU failed", exitStatus: 70)
        public static let virtiofsdFailed = Code(name: "virtiofsd failed", exitStatus: 70)
        public static let timeout = Code(name: "timeout", exitStatus: 124)
        public static let guestPanic = Code(name: "guest panic", exitStatus: 125)
        /// Ctrl-C or SIGTERM: 128 + SIGINT, as shells report it.
        public static let interrupted = Code(name: "interrupted", exitStatus: 130)
        /// The calling task was cancelled; the VM was stopped. Never a result.
        public static let cancelled = Code(name: "cancelled", exitStatus: 130)

        public var description: String { name }
    }

    public var code: Code
    public var message: String
    public var fix: String?
    /// Extra lines: a shell-quoted argv, a stderr or console tail.
    public var details: [String]
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, fix: String? = nil, details: [String] = [], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.fix = fix
        self.details = details
        self.cause = cause
    }

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

    public static func missing(_ program: String, package: String, purpose: String) -> LaunchError {
        LaunchError(.missingProgram, "\(program) was not found; it is needed \(purpose)",
                    fix: "install the Debian package \(package): sudo apt-get install \(package)")
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
