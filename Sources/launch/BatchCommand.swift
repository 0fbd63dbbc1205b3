import ArgumentParser
import Foundation
import GuestKit
import LaunchBatch
import LaunchSupport
import QEMULaunch

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run a job manifest, or several profiles and/or commands, each job in its own VM, a bounded number at once.",
        discussion: """
            A job manifest (JSON: "jobs" and/or a "matrix" of profiles × kernels × commands; \
            Profiles/jobs.schema.json) names every job; with profiles instead, every profile runs \
            every -c command (or its own "command"). Output lines are prefixed with the job's name; \
            a summary table (job, exit code, duration, shutdown step) ends the run. --shard K/N runs \
            this machine's share of the jobs, the same split on every machine; --junit and --json \
            write reports; `launch report merge` joins the shards' JUnit reports. Exit status: 0 when \
            every job exited 0; the failing code when all failures share one; 1 otherwise. Ctrl-C \
            stops every running VM through the shutdown ladder and skips the jobs not yet started.
            """
    )

    @Argument(help: "A job manifest, or profiles (JSON files).")
    var inputs: [String]

    @Option(name: .shortAndLong, help: "How many VMs run at once (0 = one per CPU).")
    var jobs: Int = 1

    @Option(name: [.customShort("c"), .long], help: "A shell command to run in each profile's guest (sh -c); repeat for several jobs. Not with a manifest.")
    var shell: [String] = []

    @Option(help: ArgumentHelp("Run only the jobs whose name matches this regular expression (searched anywhere in the name).", valueName: "regex"))
    var filter: String?

    @Option(help: ArgumentHelp("Run shard K of N (1 ≤ K ≤ N): the jobs split by a stable hash of their names, each job in exactly one shard. \"auto\" reads it from Kubernetes Indexed Jobs, Slurm arrays, GitLab or Buildkite.", valueName: "K/N|auto"))
    var shard: String?

    @Flag(help: "Print the jobs (name, profile, command; tab-separated) that would run, and run nothing.")
    var list = false

    @Option(help: ArgumentHelp("Write a JUnit XML report: a testcase per job with its duration and output; a failure's exit code, shutdown step and console tail.", valueName: "file"))
    var junit: String?

    @Option(help: ArgumentHelp("Write the summary as JSON: every job's outcome, exit code, duration and shutdown step.", valueName: "file"))
    var json: String?

    @OptionGroup var overrides: ProfileOverrides

    @Flag(help: "Keep each VM's runtime dir after it ends.")
    var keepRuntimeDir = false

    func validate() throws {
        if jobs < 0 { throw ValidationError("--jobs must be 0 (one per CPU) or more") }
        if let shard, shard != "auto", Shard(parsing: shard) == nil {
            throw ValidationError("--shard \(shard): give K/N with 1 ≤ K ≤ N (like 2/4), or auto")
        }
        if let filter {
            do { _ = try Regex(filter) } catch {
                throw ValidationError("--filter \(filter): not a regular expression (\(error)); escape special characters, like 'boot\\.q35'")
            }
        }
    }

    func run() async throws {
        let manifest = inputs.count == 1 && JobManifest.looksLikeManifest((try? Data(contentsOf: URL(fileURLWithPath: absolutePath(inputs[0])))) ?? Data())
        if manifest && !shell.isEmpty {
            FileHandle.standardError.write(Data("launch: -c is for profiles; a manifest's jobs name their own \"command\" (fix: add the command to the manifest, or give profiles)\n".utf8))
            throw ExitCode.validationFailure
        }
        let all = manifest ? try BatchJobList.manifest(inputs[0]) : try await BatchJobList.profiles(inputs, commands: shell, overrides: overrides)
        let chosenShard = try resolveShard()
        var selected = chosenShard.map { $0.select(all.jobs, key: \.name) } ?? all.jobs
        if let filter {
            let regex = try Regex(filter)
            guard all.jobs.contains(where: { $0.name.contains(regex) }) else {
                FileHandle.standardError.write(Data("launch: --filter \(filter) matches none of the \(all.jobs.count) jobs; `launch batch \(inputs.joined(separator: " ")) --list` shows their names\n".utf8))
                throw ExitCode.validationFailure
            }
            selected = selected.filter { $0.name.contains(regex) }
        }
        if list {
            for job in selected {
                let command = job.command.map(QEMUSyntax.shellLine) ?? "(the profile's command)"
                print("\(job.name)\t\(relativeToCurrentDirectory(job.profile))\t\(command)")
            }
            return
        }
        if let chosenShard {
            FileHandle.standardError.write(Data("launch: shard \(chosenShard): \(selected.count) of \(all.jobs.count) jobs\n".utf8))
        }
        try await runJobs(selected, from: all, shard: chosenShard)
    }

    /// `path` relative to the current directory when it is inside it (shorter to read in --list).
    func relativeToCurrentDirectory(_ path: String) -> String {
        let here = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(here) ? String(path.dropFirst(here.count)) : path
    }

    /// --shard as given, or from the CI engine's environment (saying which it used).
    func resolveShard() throws -> Shard? {
        guard let shard else { return nil }
        guard shard == "auto" else { return Shard(parsing: shard) }
        do {
            let (found, source) = try Shard.fromEnvironment(ProcessInfo.processInfo.environment)
            FileHandle.standardError.write(Data("launch: --shard auto: shard \(found) from \(source)\n".utf8))
            return found
        } catch {
            FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
            throw ExitCode.validationFailure
        }
    }

    /// Runs the selected jobs `--jobs` at a time; output lines prefixed with the job's
    /// name, then the summary table and the reports.
    func runJobs(_ selected: [JobManifest.Job], from all: BatchJobList, shard: Shard?) async throws {
        let logger = makeLogger(verbose: false, quiet: true)
        let jobList = try await all.guestJobs(selected, overrides: overrides)
        let interrupt = Interrupt()
        _ = SignalHandling(interrupt)
        let options = overrides.guestOptions(logger: logger, interrupt: interrupt, keepRuntimeDir: keepRuntimeDir)
        let width = jobList.map(\.label.count).max() ?? 4
        let stdoutLines = LinePrefixer { data in FileHandle.standardOutput.write(data) }
        let stderrLines = LinePrefixer { data in FileHandle.standardError.write(data) }
        let capture = OutputCapture()
        @Sendable func prefix(_ label: String) -> String { "[\(label.padding(toLength: width, withPad: " ", startingAt: 0))] " }
        let parallelism = jobs == 0 ? ProcessInfo.processInfo.activeProcessorCount : jobs
        let started = Date()
        let summaries = await GuestKit.runAll(jobList, parallelism: parallelism, options: options) { label, stream, data in
            capture.append("\(label)\u{0}\(stream == .stdout ? "stdout" : "stderr")", data)
            (stream == .stdout ? stdoutLines : stderrLines).feed(label, prefix: prefix(label), data)
        }
        stdoutLines.flush(prefix: prefix)
        stderrLines.flush(prefix: prefix)
        var table = "\n" + "JOB".padding(toLength: width, withPad: " ", startingAt: 0) + "  EXIT  DURATION  SHUTDOWN\n"
        for summary in summaries {
            let text = formatDuration(summary.duration)
            let seconds = String(repeating: " ", count: max(0, 8 - text.count)) + text
            let exit = String(exitStatus(summary)).padding(toLength: 4, withPad: " ", startingAt: 0)
            table += "\(summary.label.padding(toLength: width, withPad: " ", startingAt: 0))  \(exit)  \(seconds)  \(summary.shutdownStep?.rawValue ?? "-")"
            if let error = summary.error { table += "  \(error.code): \(error.message.split(separator: "\n").first ?? "")" }
            table += "\n"
        }
        FileHandle.standardError.write(Data(table.utf8))
        let records = zip(selected, summaries).map { JobRecord($0, summary: $1, capture: capture) }
        if let junit {
            let report = JUnitReport(suite: all.suite, records: records, shard: shard,
                                     timestamp: ISO8601DateFormatter().string(from: started),
                                     hostname: ProcessInfo.processInfo.hostName)
            try writeReport(report.xml, to: junit, kind: "JUnit")
        }
        if let json { try writeReport(batchReportJSON(BatchReport(shard: shard, jobs: records)), to: json, kind: "JSON") }
        let failures = Set(summaries.map(exitStatus).filter { $0 != 0 })
        if failures.count == 1 { throw ExitCode(failures.first!) }
        if failures.count > 1 { throw ExitCode(1) }
    }
}

/// A job's status: its command's exit code, or the launcher's status for its failure.
func exitStatus(_ summary: GuestKit.JobSummary) -> Int32 {
    summary.exitCode ?? summary.error.map { LaunchExit.of($0.code) } ?? LaunchExit.internalError
}
