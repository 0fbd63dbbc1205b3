import ArgumentParser
import Foundation
import LaunchBatch
import QEMULaunch

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Work with the reports `launch batch` writes.",
        subcommands: [Merge.self]
    )

    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge shards' JUnit XML reports into one.",
            discussion: """
                Suites of the same name become one; a testcase found in two reports (a job \
                that ran twice) is an error. With --manifest, every job of the manifest must \
                be in the reports exactly once. Exit status: 0 when merged (whatever the jobs' \
                outcomes), 1 when the reports don't add up, 65 when one can't be read.
                """
        )

        @Argument(help: "JUnit XML reports, one per shard.")
        var reports: [String]

        @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the merged report.", valueName: "file"))
        var output: String

        @Option(help: ArgumentHelp("The job manifest the shards ran: check that each of its jobs is in the reports exactly once.", valueName: "file"))
        var manifest: String?

        @Option(help: ArgumentHelp("With --manifest: the --filter the shards ran with, so only the jobs it matches are expected.", valueName: "regex"))
        var filter: String?

        func validate() throws {
            if filter != nil && manifest == nil { throw ValidationError("--filter goes with --manifest: it says which of the manifest's jobs to expect") }
            if let filter {
                do { _ = try Regex(filter) } catch { throw ValidationError("--filter \(filter): not a regular expression (\(error))") }
            }
        }

        func run() async throws {
            var read: [(source: String, report: JUnitReport)] = []
            for path in reports {
                do {
                    read.append((path, try JUnitReport.parse(try Data(contentsOf: URL(fileURLWithPath: absolutePath(path))))))
                } catch {
                    FileHandle.standardError.write(Data("launch: cannot read the report \(path): \(error)\n  fix: give the files `launch batch --junit` wrote\n".utf8))
                    throw ExitCode(LaunchError.Code.invalidProfile)
                }
            }
            let merged: JUnitReport
            do {
                merged = try JUnitReport.merge(read)
            } catch {
                FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
                throw ExitCode(1)
            }
            if let manifest { try check(merged, against: manifest) }
            try writeReport(merged.xml, to: output, kind: "merged JUnit")
            let cases = merged.cases
            let count = { (match: (JUnitReport.Result?) -> Bool) in cases.filter { match($0.result) }.count }
            let failures = count { if case .failure = $0 { true } else { false } }
            let errors = count { if case .error = $0 { true } else { false } }
            let skipped = count { if case .skipped = $0 { true } else { false } }
            func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
            print("merged \(counted(read.count, "report")): \(counted(cases.count, "testcase")), \(counted(failures, "failure")), \(counted(errors, "error")), \(skipped) skipped -> \(output)")
        }

        /// Every job of the manifest in the merged report, none missing and none extra.
        func check(_ merged: JUnitReport, against path: String) throws {
            var jobs = try BatchJobList.manifest(path).jobs.map(\.name)
            if let filter {
                let regex = try Regex(filter)
                jobs = jobs.filter { $0.contains(regex) }
            }
            let names = Set(merged.cases.map(\.name))
            let missing = jobs.filter { !names.contains($0) }
            let extra = names.subtracting(jobs).sorted()
            guard missing.isEmpty && extra.isEmpty else {
                var text = "launch: the reports don't match the manifest \(path):"
                if !missing.isEmpty { text += "\n  missing (never ran, or its shard's report is not here): \(missing.joined(separator: ", "))" }
                if !extra.isEmpty { text += "\n  not in the manifest: \(extra.joined(separator: ", "))" }
                text += "\n  fix: merge one report of every shard K/N, all run with this manifest and the same N and --filter\n"
                FileHandle.standardError.write(Data(text.utf8))
                throw ExitCode(1)
            }
        }
    }
}
