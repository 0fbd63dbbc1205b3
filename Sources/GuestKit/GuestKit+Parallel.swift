import Foundation
import QEMULaunch

extension GuestKit {
    /// One run of `runAll`: a profile (with its command set) and a label for its output.
    public struct Job: Sendable {
        /// Prefixes the job's output lines and names it in the summary.
        public var label: String
        /// The profile to boot, with its `command` set.
        public var profile: Profile
        /// A job: `profile` (with its command) under `label`.
        public init(label: String, profile: Profile) {
            self.label = label
            self.profile = profile
        }
    }

    /// How one job ended, for the summary table.
    public struct JobSummary: Sendable {
        /// The job's label.
        public var label: String
        /// The command's exit code; nil when the launcher failed (see `error`).
        public var exitCode: Int32?
        /// From the job's start to its VM's end.
        public var duration: Duration
        /// The shutdown ladder's step that ended the VM, when the job got that far.
        public var shutdownStep: ShutdownStep?
        /// Why it failed, when the launcher (not the command) failed.
        public var error: LaunchError?
    }

    /// Which of a job's streams an output chunk came from.
    public enum Stream: Sendable {
        /// The command's standard output.
        case stdout
        /// The command's standard error.
        case stderr
    }

    /// Runs `jobs` with at most `parallelism` VMs at once. Output arrives through
    /// `output(label, stream, bytes)` as it comes; the summaries come back in job order.
    /// Cancelling the calling task cancels every job: a running VM is stopped through the
    /// shutdown ladder, and its summary carries a `.cancelled` error. (The `launch batch`
    /// command's Ctrl-C stops every running VM the same way and skips the jobs not yet started.)
    public static func runAll(_ jobs: [Job], parallelism: Int, options: Options,
                              output: @escaping @Sendable (String, Stream, Data) -> Void) async -> [JobSummary] {
        let width = max(1, parallelism)
        return await withTaskGroup(of: (Int, JobSummary).self) { group in
            var results = [JobSummary?](repeating: nil, count: jobs.count)
            var next = 0
            func startNext() {
                guard next < jobs.count else { return }
                let index = next
                let job = jobs[index]
                next += 1
                group.addTask {
                    let started = ContinuousClock.now
                    if options.interrupt?.fired == true {
                        return (index, JobSummary(label: job.label, exitCode: nil,
                                                  duration: .zero, shutdownStep: nil,
                                                  error: LaunchError(.interrupted, "not started: interrupted")))
                    }
                    var jobOptions = options
                    jobOptions.stdin = .none
                    jobOptions.stdout = .handler { output(job.label, .stdout, $0) }
                    jobOptions.stderr = .handler { output(job.label, .stderr, $0) }
                    var logger = options.logger
                    logger[metadataKey: "job"] = .string(job.label)
                    jobOptions.logger = logger
                    do throws(LaunchError) {
                        let result = try await GuestKit.run(job.profile, options: jobOptions)
                        return (index, JobSummary(label: job.label, exitCode: result.exitCode, duration: result.duration,
                                                  shutdownStep: result.shutdown?.step, error: nil))
                    } catch {
                        return (index, JobSummary(label: job.label, exitCode: nil,
                                                  duration: started.duration(to: .now), shutdownStep: nil, error: error))
                    }
                }
            }
            for _ in 0..<min(width, jobs.count) { startNext() }
            for await (index, summary) in group {
                results[index] = summary
                startNext()
            }
            return results.map { $0! }
        }
    }
}
