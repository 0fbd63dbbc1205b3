/// How one job of a batch ended: a row of the summary table, a testcase of the JUnit
/// report, an entry of the JSON report.
public struct JobRecord: Sendable, Equatable, Codable {
    /// How the job ended, as CI dashboards count it.
    public enum Outcome: String, Sendable, Codable {
        /// The guest command exited 0.
        case passed
        /// The guest command exited non-zero (JUnit `<failure>`).
        case failed
        /// The launcher failed: timeout, guest panic, QEMU failed... (JUnit `<error>`).
        case error
        /// Never started (Ctrl-C came first; JUnit `<skipped>`).
        case skipped
    }

    /// The job's key.
    public var name: String
    /// Its profile's path.
    public var profile: String
    /// The command it ran (nil: the profile's own).
    public var command: [String]?
    /// How it ended.
    public var outcome: Outcome
    /// The command's exit code, or the launcher's for its own failure (124 timeout, 125 panic, 70...).
    public var exitCode: Int32
    /// From the job's start to its VM's end, in seconds.
    public var durationSeconds: Double
    /// The shutdown ladder's step that ended the VM (`guest-poweroff`...), when it got that far.
    public var shutdownStep: String?
    /// The launcher's error, with its fix and details, for `error` and `skipped`.
    public var message: String?
    /// The command's stdout (at most the last `OutputCapture` limit of it).
    public var stdout: String
    /// The command's stderr (likewise bounded).
    public var stderr: String
    /// The last lines of the guest's serial console.
    public var consoleTail: [String]

    /// A record of every field.
    public init(name: String, profile: String, command: [String]?, outcome: Outcome, exitCode: Int32,
                durationSeconds: Double, shutdownStep: String?, message: String?,
                stdout: String, stderr: String, consoleTail: [String]) {
        self.name = name
        self.profile = profile
        self.command = command
        self.outcome = outcome
        self.exitCode = exitCode
        self.durationSeconds = durationSeconds
        self.shutdownStep = shutdownStep
        self.message = message
        self.stdout = stdout
        self.stderr = stderr
        self.consoleTail = consoleTail
    }
}

/// The JSON report (`launch batch --json FILE`): the summary table as data.
public struct BatchReport: Sendable, Equatable, Codable {
    /// The shard this run was (`K/N`), nil when unsharded.
    public var shard: String?
    /// How many jobs ran, passed, failed, errored and were skipped.
    public var total, passed, failed, errors, skipped: Int
    /// One entry per job, in the order they were listed.
    public var jobs: [JobRecord]

    /// The report of `jobs`, counted.
    public init(shard: Shard?, jobs: [JobRecord]) {
        self.shard = shard?.description
        self.jobs = jobs
        total = jobs.count
        passed = jobs.count { $0.outcome == .passed }
        failed = jobs.count { $0.outcome == .failed }
        errors = jobs.count { $0.outcome == .error }
        skipped = jobs.count { $0.outcome == .skipped }
    }
}
