import Foundation
import LaunchBatch
import Testing

@Suite("Job manifests: decoding, every problem at once, matrix expansion")
struct ManifestDecodingTests {
    static let base = URL(fileURLWithPath: "/suites/kernel")

    static func decode(_ json: String) throws(ManifestProblems) -> JobManifest {
        try JobManifest.decode(Data(json.utf8), source: "jobs.json", baseDirectory: base)
    }

    @Test("listed jobs keep their order; relative profile and kernel paths resolve against the manifest's folder; auto stays auto")
    func listedJobs() throws {
        let manifest = try Self.decode("""
            {"$schema": "./jobs.schema.json", "jobs": [
              {"name": "boot", "profile": "../profiles/boot.json", "command": ["true"]},
              {"name": "uname", "profile": "/abs/hello.json", "kernel": "auto"},
              {"name": "own", "profile": "p.json", "kernel": "build/vmlinux", "command": ["sh", "-c", "exit 3"]}]}
            """)
        #expect(manifest.allJobs == [
            JobManifest.Job(name: "boot", profile: "/suites/profiles/boot.json", command: ["true"]),
            JobManifest.Job(name: "uname", profile: "/abs/hello.json", kernel: "auto"),
            JobManifest.Job(name: "own", profile: "/suites/kernel/p.json", command: ["sh", "-c", "exit 3"], kernel: "/suites/kernel/build/vmlinux"),
        ])
    }

    @Test("a matrix is every profile × kernel × command, named profile/kernel/command, each axis in name order")
    func matrixExpansion() throws {
        let manifest = try Self.decode("""
            {"matrix": {"profiles": {"q35": "q35.json", "microvm": "boot.json"},
                        "kernels": {"host": "auto", "tiny": "/k/bzImage"},
                        "commands": {"true": ["true"], "fail": ["false"], "uname": ["uname", "-r"]}}}
            """)
        let jobs = manifest.allJobs
        #expect(jobs.count == 2 * 2 * 3)
        #expect(jobs.map(\.name).prefix(4) == ["microvm/host/fail", "microvm/host/true", "microvm/host/uname", "microvm/tiny/fail"])
        #expect(Set(jobs.map(\.name)).count == 12)
        let tiny = try #require(jobs.first { $0.name == "q35/tiny/uname" })
        #expect(tiny == JobManifest.Job(name: "q35/tiny/uname", profile: "/suites/kernel/q35.json", command: ["uname", "-r"], kernel: "/k/bzImage"))
    }

    @Test("without kernels or commands a matrix job is named by its profile and keeps the profile's kernel and command")
    func matrixWithoutOptionalAxes() throws {
        let jobs = try Self.decode(#"{"matrix": {"profiles": {"a": "a.json", "b": "b.json"}}, "jobs": [{"name": "c", "profile": "c.json"}]}"#).allJobs
        #expect(jobs == [
            JobManifest.Job(name: "c", profile: "/suites/kernel/c.json"),
            JobManifest.Job(name: "a", profile: "/suites/kernel/a.json"),
            JobManifest.Job(name: "b", profile: "/suites/kernel/b.json"),
        ])
    }

    @Test("a manifest with many mistakes lists each one with its JSON path and the fix, in one error")
    func everyProblemAtOnce() throws {
        let json = """
            {"jobz": [], "jobs": [
              {"name": "ok", "profile": "p.json"},
              {"profile": "p.json", "comand": ["true"]},
              {"name": "has space", "profile": 7, "command": []},
              "not a job",
              {"name": "ok", "profile": "q.json", "command": ["true", 3], "kernel": ""}],
             "matrix": {"profiles": {}, "kernels": {"a/b": "auto"}, "commands": {"x": "echo"}}}
            """
        let problems: [String]
        do {
            _ = try Self.decode(json)
            Issue.record("decoded a broken manifest")
            return
        } catch {
            #expect(error.description.hasPrefix("invalid job manifest jobs.json: \(error.problems.count) problems\n"))
            problems = error.problems.map(\.description)
        }
        let expected = [
            #"jobz: unknown key "jobz"; the keys here are "$schema", "jobs", "matrix""#,
            #"jobs[1].comand: unknown key "comand"; the keys here are "command", "kernel", "name", "profile""#,
            "jobs[1].name: missing: every job needs a name, its key in reports and shards",
            #"jobs[2].name: "has space" is not a usable name: use letters, digits and punctuation, no spaces or control characters"#,
            "jobs[2].profile: expected the path of a profile file as a string",
            #"jobs[2].command: expected a command as a non-empty list of strings, like ["sh", "-c", "make check"]"#,
            #"jobs[3]: expected a job object like {"name": "j1", "profile": "p.json"}"#,
            #"jobs[4].command: expected a command as a non-empty list of strings, like ["sh", "-c", "make check"]"#,
            #"jobs[4].kernel: expected the path of a kernel image or "auto" as a string"#,
            #"matrix.profiles: expected a non-empty object of name → value, like {"microvm": "boot.json"}"#,
            #"matrix.kernels.a/b: "a/b" is not a usable name: use letters, digits and punctuation, no spaces or control characters, no "/" (it joins a matrix job's parts)"#,
            #"matrix.commands.x: expected a command as a non-empty list of strings, like ["sh", "-c", "make check"]"#,
            #"$: the job name "ok" is used 2 times; a name is the job's key in reports and shards, so give each job its own"#,
        ]
        #expect(problems == expected)
    }

    @Test("not JSON, not an object, or no jobs at all: one problem at $ that says what to write", arguments: [
        ("{", "$: not valid JSON"),
        ("[1]", #"$: expected a JSON object with "jobs" and/or "matrix""#),
        ("{}", #"$: no jobs: add a "jobs" list, a "matrix", or both"#),
        (#"{"jobs": []}"#, "$: no jobs: the lists are empty"),
    ])
    func emptyOrBroken(json: String, problem: String) throws {
        #expect(throws: ManifestProblems.self) { try Self.decode(json) }
        do { _ = try Self.decode(json) } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems[0].description.hasPrefix(problem), "\(error.problems)")
        }
    }

    @Test("a manifest is told apart from a profile by its top-level jobs or matrix key")
    func manifestOrProfile() {
        #expect(JobManifest.looksLikeManifest(Data(#"{"jobs": []}"#.utf8)))
        #expect(JobManifest.looksLikeManifest(Data(#"{"matrix": {}}"#.utf8)))
        #expect(!JobManifest.looksLikeManifest(Data(#"{"name": "hello", "command": ["true"]}"#.utf8)))
        #expect(!JobManifest.looksLikeManifest(Data("not json".utf8)))
    }
}
