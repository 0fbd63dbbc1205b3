import LaunchBatch
import TestSupport
import Testing

@Suite("Shards: every job in exactly one shard, the same split whatever the order, and --shard auto per engine")
struct ShardTests {
    /// Names like a real suite's: matrix keys and free-form ones.
    static func keys(_ count: Int) -> [String] {
        (0..<count).map { index in
            index.isMultiple(of: 3) ? "microvm/host/test-\(index)" : "job-\(index)"
        }
    }

    @Test("for N = 1...8, the shards of a suite hold every job exactly once, differ in size by at most one, and don't depend on the manifest's order",
          arguments: 1...8)
    func partition(count: Int) {
        var generator = SplitMix64(seed: UInt64(count))
        for size in [0, 1, 7, 12, 50] {
            let keys = Self.keys(size)
            let shards = (1...count).map { Shard(index: $0, count: count)!.select(keys) { $0 } }
            #expect(shards.flatMap { $0 }.sorted() == keys.sorted(), "N=\(count), \(size) jobs")
            let sizes = shards.map(\.count)
            #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1, "N=\(count), sizes \(sizes)")
            for _ in 0..<5 {
                let shuffled = keys.shuffled(using: &generator)
                let reordered = (1...count).map { Set(Shard(index: $0, count: count)!.select(shuffled) { $0 }) }
                #expect(reordered == shards.map { Set($0) }, "N=\(count): the split changed with the order")
            }
        }
    }

    @Test("the hash is FNV-1a 64 of the key's UTF-8 bytes (fixed values), so every machine and process agrees")
    func fixedHash() {
        // Reference values of FNV-1a 64: the empty string is the offset basis.
        #expect(Shard.fnv1a("") == 0xcbf2_9ce4_8422_2325)
        #expect(Shard.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(Shard.fnv1a("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test("a recorded split of twelve jobs in four shards stays what it was (a changed hash or deal would move jobs between machines mid-rollout)")
    func recordedSplit() {
        let keys = Self.keys(12)
        let split = (1...4).map { Shard(index: $0, count: 4)!.select(keys) { $0 } }
        #expect(split == [
            ["microvm/host/test-3", "job-7", "job-10"],
            ["job-5", "microvm/host/test-6", "job-11"],
            ["job-2", "job-4", "microvm/host/test-9"],
            ["microvm/host/test-0", "job-1", "job-8"],
        ])
    }

    @Test("K/N parses for 1 ≤ K ≤ N only", arguments: [
        ("1/1", true), ("3/4", true), ("4/4", true), ("0/4", false), ("5/4", false), ("1/0", false), ("a/b", false), ("2", false), ("1/2/3", false), ("-1/2", false),
    ])
    func parse(text: String, valid: Bool) {
        #expect((Shard(parsing: text) != nil) == valid)
        if valid { #expect(Shard(parsing: text)?.description == text) }
    }

    @Test("--shard auto reads each engine's index and count, converting its numbering to K/N", arguments: [
        (["JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "4"], "1/4", "Kubernetes Indexed Job"),
        (["JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "4"], "4/4", "Kubernetes Indexed Job"),
        (["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"], "3/4", "Slurm job array"),
        // sbatch --array=1-4: IDs count from the array's minimum.
        (["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"], "1/4", "Slurm job array"),
        (["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"], "4/4", "Slurm job array"),
        (["CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"], "1/3", "GitLab parallel job"),
        (["CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"], "3/3", "GitLab parallel job"),
        (["BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "2"], "1/2", "Buildkite parallel job"),
        (["BUILDKITE_PARALLEL_JOB": "1", "BUILDKITE_PARALLEL_JOB_COUNT": "2", "PATH": "/bin"], "2/2", "Buildkite parallel job"),
    ])
    func auto(environment: [String: String], shard: String, engine: String) throws {
        let (found, source) = try Shard.fromEnvironment(environment)
        #expect(found.description == shard)
        #expect(source.engine == engine)
        #expect(source.description.hasPrefix("\(engine) ("))
        for variable in source.variables { #expect(environment["\(variable.split(separator: "=")[0])"] != nil) }
    }

    @Test("--shard auto without a usable engine environment says what it looked for and what to set", arguments: [
        ([:], "no shard in the environment; looked for JOB_COMPLETION_INDEX/JOB_COMPLETIONS (Kubernetes Indexed Job), SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"),
        (["JOB_COMPLETION_INDEX": "1"], "JOB_COMPLETIONS is not. Fix: set JOB_COMPLETIONS to the number of shards (the Job's spec.completions)"),
        (["CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"], "the index must be a number from 1 to 1+count-1"),
        (["SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"], "is not a shard"),
        (["BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "2"], "from 0 to 0+count-1"),
    ])
    func autoFails(environment: [String: String], says: String) {
        do {
            let (shard, source) = try Shard.fromEnvironment(environment)
            Issue.record("got \(shard) from \(source)")
        } catch {
            #expect(error.description.contains(says), "\(error)")
            #expect(error.description.contains("--shard K/N"))
        }
    }
}
