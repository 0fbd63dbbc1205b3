/// `--shard auto`: the shard from the environment of the engine running this job.
extension Shard {
    /// Where an automatic shard came from, for the line that says so.
    public struct Source: Sendable, Equatable, CustomStringConvertible {
        /// The engine: "Kubernetes Indexed Job", "Slurm job array", "GitLab parallel job", "Buildkite parallel job".
        public var engine: String
        /// The variables read, as `NAME=value`.
        public var variables: [String]
        /// `Slurm job array (SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_COUNT=4)`.
        public var description: String { "\(engine) (\(variables.joined(separator: ", ")))" }
    }

    /// Why the environment gives no shard, and what to set.
    public struct EnvironmentError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is missing or wrong, and the fix.
        public var description: String
    }

    /// The engines `--shard auto` knows, in the order they are tried: each names its
    /// index and count variables and whether its index counts from 0 or 1.
    static let engines: [(engine: String, index: String, count: String, firstIndex: Int)] = [
        // Kubernetes sets JOB_COMPLETION_INDEX (0-based) in an Indexed Job's pods, but not
        // the completions count: the pod spec passes it (Examples/ci/kubernetes-job.yaml).
        ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "JOB_COMPLETIONS", 0),
        // The task ID counts from the array's first ID (sbatch --array=1-4 starts at 1):
        // SLURM_ARRAY_TASK_MIN, when set, is subtracted.
        ("Slurm job array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", 0),
        ("GitLab parallel job", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
        ("Buildkite parallel job", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    ]

    /// The shard the first engine found in `environment` assigns, and where it came from.
    public static func fromEnvironment(_ environment: [String: String]) throws(EnvironmentError) -> (Shard, Source) {
        guard let engine = engines.first(where: { environment[$0.index] != nil }) else {
            let names = engines.map { "\($0.index)/\($0.count) (\($0.engine))" }.joined(separator: ", ")
            throw EnvironmentError(description: "--shard auto: no shard in the environment; looked for \(names). Fix: run under one of these engines, or give --shard K/N")
        }
        let rawIndex = environment[engine.index]!
        guard let rawCount = environment[engine.count] else {
            throw EnvironmentError(description: "--shard auto: \(engine.index)=\(rawIndex) is set (\(engine.engine)) but \(engine.count) is not. Fix: set \(engine.count) to the number of shards\(engine.index == "JOB_COMPLETION_INDEX" ? " (the Job's spec.completions) in the pod's env" : ""), or give --shard K/N")
        }
        var variables = ["\(engine.index)=\(rawIndex)", "\(engine.count)=\(rawCount)"]
        var offset = engine.firstIndex
        if engine.index == "SLURM_ARRAY_TASK_ID", let minimum = environment["SLURM_ARRAY_TASK_MIN"] {
            guard let first = Int(minimum) else {
                throw EnvironmentError(description: "--shard auto: SLURM_ARRAY_TASK_MIN=\(minimum) is not a number. Fix: give --shard K/N")
            }
            offset = first
            variables.append("SLURM_ARRAY_TASK_MIN=\(minimum)")
        }
        guard let index = Int(rawIndex), let count = Int(rawCount), let shard = Shard(index: index - offset + 1, count: count) else {
            throw EnvironmentError(description: "--shard auto: \(variables.joined(separator: ", ")) (\(engine.engine)) is not a shard: the index must be a number from \(offset) to \(offset)+count-1 and the count at least 1. Fix: check the job's array or parallelism settings, or give --shard K/N")
        }
        return (shard, Source(engine: engine.engine, variables: variables))
    }
}
