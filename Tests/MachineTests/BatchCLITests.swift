import Foundation
import QEMULaunch
import TestSupport
import Testing

/// Debian's python3-junitparser (Scripts/install-deps) reads the JUnit reports back: a
/// consumer of the format that is not ours.
enum JUnitConsumer {
    static let python = "/usr/bin/python3"
    static let available = (try? TestProcess.run([python, "-c", "import junitparser"]).status) == 0
    static let missing: Comment = "needs Debian's python3-junitparser (Scripts/install-deps installs it)"

    /// Every testcase of the report at `path` as junitparser reads it.
    static func cases(_ path: URL) throws -> [[String: Any]] {
        let script = """
            import json, sys, junitparser
            out = []
            for suite in junitparser.JUnitXml.fromfile(sys.argv[1]):
                for case in suite:
                    out.append({"name": case.name, "classname": case.classname, "time": case.time,
                                "results": [{"kind": type(r).__name__, "message": r.message, "type": r.type, "text": r.text} for r in case.result],
                                "stdout": case.system_out, "stderr": case.system_err})
            print(json.dumps(out))
            """
        let json = try TestProcess.capture([python, "-c", script, path.path])
        return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
    }
}

/// `launch batch` with job manifests, shards and reports, run as a CI job would run it.
@Suite("launch batch with a job manifest: --list, --shard, --junit read back by junitparser, --json, report merge (slow: boots guests under TCG)", .serialized)
struct BatchCLITests {
    @Test("--list prints each job's name, profile and command, tab-separated, and starts nothing")
    func list() throws {
        let outcome = try CLITests.launch(["batch", "Jobs/smoke.json", "--list"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == """
            hello\tProfiles/hello.json\t(the profile's command)
            exit-code\tProfiles/boot.json\tsh -c 'echo '\\''about to fail'\\'' >&2; exit 3'
            microvm/memory\tProfiles/boot.json\tsh -c 'grep MemTotal /proc/meminfo'
            microvm/uname\tProfiles/boot.json\tuname -r
            pc/memory\tProfiles/pc.json\tsh -c 'grep MemTotal /proc/meminfo'
            pc/uname\tProfiles/pc.json\tuname -r

            """)
        let filtered = try CLITests.launch(["batch", "Jobs/smoke.json", "--list", "--filter", "^pc/"])
        #expect(filtered.stdout.split(separator: "\n").map { $0.split(separator: "\t")[0] } == ["pc/memory", "pc/uname"])
    }

    @Test("--list --shard K/4 for K = 1...4 lists every job of the manifest exactly once; --shard auto names the engine it read")
    func listShards() throws {
        var names: [Substring] = []
        for index in 1...4 {
            let outcome = try CLITests.launch(["batch", "Jobs/smoke.json", "--list", "--shard", "\(index)/4"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            names += outcome.stdout.split(separator: "\n").map { $0.split(separator: "\t")[0] }
        }
        #expect(names.sorted() == ["exit-code", "hello", "microvm/memory", "microvm/uname", "pc/memory", "pc/uname"])
        let auto = try CLITests.launch(["batch", "Jobs/smoke.json", "--list", "--shard", "auto"],
                                       environment: ["CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"])
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stderr.contains("--shard auto: shard 2/4 from GitLab parallel job (CI_NODE_INDEX=2, CI_NODE_TOTAL=4)"), "\(auto.stderr)")
        let second = try CLITests.launch(["batch", "Jobs/smoke.json", "--list", "--shard", "2/4"])
        #expect(auto.stdout == second.stdout)
    }

    @Test("a broken manifest exits 65 with every problem; a --filter that matches nothing exits 64 and says how to see the names")
    func badInput() throws {
        let folder = try Fixture.temporaryDirectory("bm")
        defer { try? FileManager.default.removeItem(at: folder) }
        let manifest = folder.appendingPathComponent("jobs.json")
        try Data(#"{"jobs": [{"name": "a", "profile": "p.json", "comand": ["true"]}, {"profile": "p.json"}]}"#.utf8).write(to: manifest)
        let broken = try CLITests.launch(["batch", manifest.path, "--list"])
        #expect(broken.status == 65)
        #expect(broken.stderr.contains("invalid job manifest \(manifest.path): 2 problems\n  - jobs[0].comand: unknown key \"comand\""), "\(broken.stderr)")
        #expect(broken.stderr.contains("  - jobs[1].name: missing"))
        let none = try CLITests.launch(["batch", "Jobs/smoke.json", "--filter", "^nothing$"])
        #expect(none.status == 64)
        #expect(none.stderr.contains("--filter ^nothing$ matches none of the 6 jobs; `launch batch Jobs/smoke.json --list` shows their names"))
    }

    /// Three jobs: one passes (with markup and an escape character in its output), one
    /// exits 7, one runs past its 3 s limit (124).
    static func writeSuite(in folder: URL) throws -> URL {
        var quick = try Fixture.guestProfile("quick", command: ["true"])
        quick.runtimeDir = folder.path
        var limited = quick
        limited.name = "limited"
        limited.timeouts.run = TimeLimit(.seconds(3))
        try JSONEncoder().encode(quick).write(to: folder.appendingPathComponent("quick.json"))
        try JSONEncoder().encode(limited).write(to: folder.appendingPathComponent("limited.json"))
        let manifest = folder.appendingPathComponent("suite.json")
        try Data(#"""
            {"jobs": [
              {"name": "passes", "profile": "quick.json", "command": ["sh", "-c", "printf '<a&b> \\033[1mbold\\n'; echo to-stderr >&2"]},
              {"name": "exits-7", "profile": "quick.json", "command": ["sh", "-c", "echo failing >&2; exit 7"]},
              {"name": "hangs", "profile": "limited.json", "command": ["sleep", "600"]}]}
            """#.utf8).write(to: manifest)
        return manifest
    }

    @Test("a manifest's run writes a JUnit report junitparser reads (cases, failure with exit code and console tail, error for a timeout, durations, output) and a JSON summary; two shards merged hold the same cases",
          .enabled(if: JUnitConsumer.available, JUnitConsumer.missing), .timeLimit(.minutes(20)))
    func reportsAndShards() throws {
        let folder = try Fixture.temporaryDirectory("br")
        defer { try? FileManager.default.removeItem(at: folder) }
        let manifest = try Self.writeSuite(in: folder)
        let junit = folder.appendingPathComponent("reports/all.xml")
        let json = folder.appendingPathComponent("reports/all.json")
        let run = try CLITests.launch(["batch", manifest.path, "--jobs", "2", "--junit", junit.path, "--json", json.path])
        // Two different failing codes (7 and 124): exit 1.
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stdout.contains("[passes ] <a&b> \u{1B}[1mbold\n"), "\(run.stdout)")

        let cases = try JUnitConsumer.cases(junit)
        #expect(cases.count == 3)
        let byName = Dictionary(uniqueKeysWithValues: cases.map { ($0["name"] as? String ?? "", $0) })
        #expect(Set(byName.keys) == ["passes", "exits-7", "hangs"])
        for (name, test) in byName {
            #expect(((test["time"] as? Double) ?? 0) > 0, "\(name) has no duration")
            #expect(test["classname"] as? String == "suite")
        }
        let passes = try #require(byName["passes"])
        #expect((passes["results"] as? [Any])?.isEmpty == true)
        #expect(passes["stdout"] as? String == "<a&b> \\x1B[1mbold\n")
        #expect(passes["stderr"] as? String == "to-stderr\n")
        let failure = try #require((byName["exits-7"]?["results"] as? [[String: Any]])?.first)
        #expect(failure["kind"] as? String == "Failure")
        #expect(failure["message"] as? String == "exit code 7")
        #expect(failure["type"] as? String == "exit 7")
        let text = failure["text"] as? String ?? ""
        #expect(text.hasPrefix("exit code 7\nshutdown step: guest-poweroff\nconsole tail:\n"), "\(text)")
        #expect(text.hasSuffix("reboot: Power down"), "the console tail ends with the guest's poweroff: \(text)")
        #expect(byName["exits-7"]?["stderr"] as? String == "failing\n")
        let error = try #require((byName["hangs"]?["results"] as? [[String: Any]])?.first)
        #expect(error["kind"] as? String == "Error")
        #expect((error["message"] as? String)?.hasPrefix("exit code 124: timeout") == true, "\(error)")

        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        #expect(summary["total"] as? Int == 3)
        #expect(summary["passed"] as? Int == 1)
        #expect(summary["failed"] as? Int == 1)
        #expect(summary["errors"] as? Int == 1)
        let jobs = try #require(summary["jobs"] as? [[String: Any]])
        #expect(jobs.map { $0["name"] as? String } == ["passes", "exits-7", "hangs"])
        #expect(jobs.map { $0["exitCode"] as? Int } == [0, 7, 124])
        #expect(jobs.map { $0["outcome"] as? String } == ["passed", "failed", "error"])
        #expect(jobs[0]["shutdownStep"] as? String == "guest-poweroff")

        // The same suite in two shards, merged: the same cases with the same outcomes.
        var shardReports: [String] = []
        for index in 1...2 {
            let path = folder.appendingPathComponent("reports/shard-\(index).xml").path
            let shard = try CLITests.launch(["batch", manifest.path, "--shard", "\(index)/2", "--junit", path])
            #expect(shard.stderr.contains("launch: shard \(index)/2: "), "\(shard.stderr)")
            shardReports.append(path)
        }
        let merged = folder.appendingPathComponent("reports/merged.xml")
        let merge = try CLITests.launch(["report", "merge"] + shardReports + ["-o", merged.path, "--manifest", manifest.path])
        #expect(merge.status == 0, "\(merge.stderr)")
        #expect(merge.stdout == "merged 2 reports: 3 testcases, 1 failure, 1 error, 0 skipped -> \(merged.path)\n")
        func outcomes(_ cases: [[String: Any]]) -> [String: String] {
            Dictionary(uniqueKeysWithValues: cases.map { test in
                (test["name"] as? String ?? "", ((test["results"] as? [[String: Any]])?.first?["kind"] as? String) ?? "pass")
            })
        }
        #expect(outcomes(try JUnitConsumer.cases(merged)) == outcomes(cases))

        // One shard alone is not the whole suite; a shard twice is a job run twice.
        let partial = try CLITests.launch(["report", "merge", shardReports[0], "-o", merged.path, "--manifest", manifest.path])
        #expect(partial.status == 1)
        #expect(partial.stderr.contains("missing (never ran, or its shard's report is not here): "), "\(partial.stderr)")
        let twice = try CLITests.launch(["report", "merge", shardReports[0], shardReports[0], "-o", merged.path])
        #expect(twice.status == 1)
        #expect(twice.stderr.contains("appear in more than one report, so a job ran twice"), "\(twice.stderr)")
    }

    static let slurmInstalled = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]
        .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("on a real single-node Slurm, a manifest of 12 jobs in a 4-task array runs every job exactly once and the merged report holds 12 testcases with the right outcomes",
          .enabled(if: slurmInstalled, "needs Debian's slurm-wlm and munge (Examples/ci/slurm-local-cluster installs them)"),
          .enabled(if: JUnitConsumer.available, JUnitConsumer.missing), .timeLimit(.minutes(20)))
    func slurmArray() throws {
        let state = try Fixture.temporaryDirectory("slurm")
        defer { try? FileManager.default.removeItem(at: state) }
        let script = CLITests.root.appendingPathComponent("Examples/ci/slurm-local-cluster").path
        let run = try TestProcess.run([script, "Jobs/twelve.json", "4", state.path],
                                      environment: ProcessInfo.processInfo.environment.merging(["LAUNCH": try Fixture.launchExecutable]) { $1 },
                                      currentDirectory: CLITests.root)
        #expect(run.status == 0, "\(run.stderrText)")
        #expect(run.stdoutText.hasPrefix("merged 4 reports: 12 testcases, 2 failures, 0 errors, 0 skipped -> "), "\(run.stdoutText)")
        for index in 0..<4 {
            #expect(run.stderrText.contains("shard-\(index): launch: --shard auto: shard \(index + 1)/4 from Slurm job array (SLURM_ARRAY_TASK_ID=\(index), SLURM_ARRAY_TASK_COUNT=4"), "\(run.stderrText)")
        }
        let listed = try CLITests.launch(["batch", "Jobs/twelve.json", "--list"]).stdout.split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        let cases = try JUnitConsumer.cases(state.appendingPathComponent("reports/all.xml"))
        #expect(cases.compactMap { $0["name"] as? String }.sorted() == listed.sorted())
        for test in cases {
            let name = test["name"] as? String ?? ""
            let results = test["results"] as? [[String: Any]] ?? []
            if name.hasSuffix("/exit-3") {
                #expect(results.first?["kind"] as? String == "Failure", "\(name)")
                #expect(results.first?["message"] as? String == "exit code 3", "\(name)")
            } else {
                #expect(results.isEmpty, "\(name): \(results)")
            }
        }
    }

    @Test("the CI recipes parse, and each one's shard count agrees with itself: GitHub's matrix with its --shard K/N, the Kubernetes Job's completions with JOB_COMPLETIONS, whose every index --shard auto maps to a distinct shard",
          .enabled(if: (try? TestProcess.run([JUnitConsumer.python, "-c", "import yaml"]).status) == 0, "needs Debian's python3-yaml (Scripts/install-deps)"))
    func ciRecipes() throws {
        let script = """
            import json, sys, yaml
            gh = yaml.safe_load(open("Examples/ci/github-actions.yml"))
            k8s = yaml.safe_load(open("Examples/ci/kubernetes-job.yaml"))
            shard = gh["jobs"]["shard"]
            container = k8s["spec"]["template"]["spec"]["containers"][0]
            print(json.dumps({
                "matrix": shard["strategy"]["matrix"]["shard"],
                "failFast": shard["strategy"]["fail-fast"],
                "runs": [step.get("run", "") for step in shard["steps"]],
                "merge": [step.get("run", "") for step in gh["jobs"]["report"]["steps"]],
                "kind": k8s["kind"], "mode": k8s["spec"]["completionMode"], "completions": k8s["spec"]["completions"],
                "env": {e["name"]: e["value"] for e in container["env"]},
                "args": container["args"],
            }))
            """
        let text = try TestProcess.capture([JUnitConsumer.python, "-c", script], currentDirectory: CLITests.root)
        let recipe = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let matrix = try #require(recipe["matrix"] as? [Int])
        #expect(recipe["failFast"] as? Bool == false)
        #expect((recipe["runs"] as? [String])?.contains { $0.contains("--shard ${{ matrix.shard }}/\(matrix.count) ") } == true, "\(recipe)")
        #expect(matrix == Array(1...matrix.count))
        #expect((recipe["merge"] as? [String])?.contains { $0.contains("launch report merge") && $0.contains("--manifest") } == true)
        #expect(recipe["kind"] as? String == "Job")
        #expect(recipe["mode"] as? String == "Indexed")
        let completions = try #require(recipe["completions"] as? Int)
        #expect((recipe["env"] as? [String: String])?["JOB_COMPLETIONS"] == "\(completions)")
        #expect((recipe["args"] as? [String])?.first?.contains("--shard auto") == true)
        // Kubernetes numbers the pods 0...completions-1: together they list every job once.
        var names: [Substring] = []
        for index in 0..<completions {
            let outcome = try CLITests.launch(["batch", "Jobs/smoke.json", "--list", "--shard", "auto"],
                                              environment: ["JOB_COMPLETION_INDEX": "\(index)", "JOB_COMPLETIONS": "\(completions)"])
            #expect(outcome.stderr.contains("shard \(index + 1)/\(completions) from Kubernetes Indexed Job"), "\(outcome.stderr)")
            names += outcome.stdout.split(separator: "\n").map { $0.split(separator: "\t")[0] }
        }
        #expect(names.count == 6)
        #expect(Set(names).count == 6)
        #expect(try TestProcess.run(["/bin/bash", "-n", "Examples/ci/slurm-array.sh"], currentDirectory: CLITests.root).status == 0)
        #expect(try TestProcess.run(["/bin/bash", "-n", "Examples/ci/slurm-local-cluster"], currentDirectory: CLITests.root).status == 0)
    }

    @Test("Ctrl-C during a run still writes the reports: the running job is an error with status 130, the jobs not started are skipped",
          .enabled(if: JUnitConsumer.available, JUnitConsumer.missing), .timeLimit(.minutes(10)))
    func interruptedRun() async throws {
        let folder = try Fixture.temporaryDirectory("bi")
        defer { try? FileManager.default.removeItem(at: folder) }
        var quick = try Fixture.guestProfile("quick", command: ["true"])
        quick.runtimeDir = folder.path
        quick.timeouts.shutdown = TimeLimit(.seconds(2))
        try JSONEncoder().encode(quick).write(to: folder.appendingPathComponent("quick.json"))
        let manifest = folder.appendingPathComponent("suite.json")
        try Data(#"""
            {"jobs": [
              {"name": "long", "profile": "quick.json", "command": ["sh", "-c", "echo started; sleep 600"]},
              {"name": "second", "profile": "quick.json"},
              {"name": "third", "profile": "quick.json"}]}
            """#.utf8).write(to: manifest)
        let junit = folder.appendingPathComponent("junit.xml")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixture.launchExecutable)
        process.arguments = ["batch", manifest.path, "--jobs", "1", "--junit", junit.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let printed = Mutex("")
        let reader = Thread { while case let data = out.fileHandleForReading.availableData, !data.isEmpty { printed.withLock { $0 += String(decoding: data, as: UTF8.self) } } }
        reader.start()
        for _ in 0..<2400 where !printed.withLock({ $0.contains("started") }) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(printed.withLock { $0.contains("[long  ] started") })
        kill(process.processIdentifier, SIGINT)
        for _ in 0..<600 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        let cases = try JUnitConsumer.cases(junit)
        let kinds = cases.map { ($0["name"] as? String ?? "", ($0["results"] as? [[String: Any]])?.first?["kind"] as? String ?? "pass") }
        #expect(kinds.map(\.0) == ["long", "second", "third"])
        #expect(kinds.map(\.1) == ["Error", "Skipped", "Skipped"])
        let long = try #require((cases.first?["results"] as? [[String: Any]])?.first)
        #expect((long["message"] as? String)?.hasPrefix("exit code 130: ") == true, "\(long)")
        #expect(Fixture.processes(mentioning: folder.path).isEmpty)
    }
}
