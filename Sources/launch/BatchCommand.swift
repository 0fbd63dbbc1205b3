import ArgumentParser
import Foundation
import GuestKit
import LaunchSupport
import QEMULaunch

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run several profiles and/or commands, each in its own VM, a bounded number at once.",
        discussion: """
            Every profile runs every -c command (or its own "command"). Output lines are \
            prefixed with the job's label; a summary table (job, exit code, duration, \
            shutdown step) ends the run. Exit status: 0 when every job exited 0; the \
            failing code when all failures share one; 1 otherwise. Ctrl-C stops every \
            running VM through the shutdown ladder and skips the jobs not yet started.
            """
    )

    @Argument(help: "Profiles (JSON files).")
    var profiles: [String]

    @Option(name: .shortAndLong, help: "How many VMs run at once (0 = one per CPU).")
    var jobs: Int = 1

    @Option(name: [.customShort("c"), .long], help: "A shell command to run in each profile's guest (sh -c); repeat for several jobs.")
    var shell: [String] = []

    @OptionGroup var overrides: ProfileOverrides

    @Flag(help: "Keep each VM's runtime dir after it ends.")
    var keepRuntimeDir = false

    func validate() throws {
        if jobs < 0 { throw ValidationError("--jobs must be 0 (one per CPU) or more") }
    }

    func run() async throws {
        try await runJobs()
    }

    /// Several profiles and/or commands, each in its own VM, `--jobs` at a time;
    /// output lines prefixed with the job's label, then a summary table.
    func runJobs() async throws {
        let logger = makeLogger(verbose: false, quiet: true)
        var jobList: [GuestKit.Job] = []
        let commands: [[String]?] = !shell.isEmpty ? shell.map { ["sh", "-c", $0] } : [nil]
        let names = profiles.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        for (profileIndex, path) in profiles.enumerated() {
            let profile = try await overrides.loadProfile(path)
            for (index, command) in commands.enumerated() {
                var job = profile
                if let command { job.command = command }
                guard job.command != nil else {
                    FileHandle.standardError.write(Data("launch: \(path) has no command; parallel jobs need one (in the profile or with -c)\n".utf8))
                    throw ExitCode(LaunchError.Code.invalidProfile)
                }
                var label = profile.name
                if names.filter({ $0 == names[profileIndex] }).count > 1 { label += ".\(profileIndex + 1)" }
                if commands.count > 1 { label += "#\(index + 1)" }
                jobList.append(GuestKit.Job(label: label, profile: job))
            }
        }
        let interrupt = Interrupt()
        let signals = installSignalHandlers(interrupt)
        defer { signals.forEach { $0.cancel() } }
        let options = overrides.guestOptions(logger: logger, interrupt: interrupt, keepRuntimeDir: keepRuntimeDir)
        let width = jobList.map(\.label.count).max() ?? 4
        let stdoutLines = LinePrefixer { data in FileHandle.standardOutput.write(data) }
        let stderrLines = LinePrefixer { data in FileHandle.standardError.write(data) }
        @Sendable func prefix(_ label: String) -> String { "[\(label.padding(toLength: width, withPad: " ", startingAt: 0))] " }
        let parallelism = jobs == 0 ? ProcessInfo.processInfo.activeProcessorCount : jobs
        let summaries = await GuestKit.runAll(jobList, parallelism: parallelism, options: options) { label, stream, data in
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
        let failures = Set(summaries.map(exitStatus).filter { $0 != 0 })
        if failures.count == 1 { throw ExitCode(failures.first!) }
        if failures.count > 1 { throw ExitCode(1) }
    }
}

/// A job's status: its command's exit code, or the launcher's status for its failure.
func exitStatus(_ summary: GuestKit.JobSummary) -> Int32 {
    summary.exitCode ?? summary.error.map { LaunchExit.of($0.code) } ?? LaunchExit.internalError
}
