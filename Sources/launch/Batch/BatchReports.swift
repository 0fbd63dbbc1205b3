import ArgumentParser
import Foundation
import GuestKit
import LaunchBatch
import LaunchSupport
import QEMULaunch

extension JobRecord {
    /// The record of a finished job: its summary, with the output `capture` kept.
    init(_ job: JobManifest.Job, summary: GuestKit.JobSummary, capture: OutputCapture) {
        let outcome: Outcome
        switch (summary.error, summary.exitCode) {
        case (let error?, _) where error.code == .interrupted && summary.duration == .zero: outcome = .skipped
        case (.some, _), (nil, nil): outcome = .error
        case (nil, 0): outcome = .passed
        case (nil, .some): outcome = .failed
        }
        let (seconds, attoseconds) = summary.duration.components
        self.init(name: job.name, profile: job.profile, command: job.command, outcome: outcome,
                  exitCode: exitStatus(summary), durationSeconds: Double(seconds) + Double(attoseconds) / 1e18,
                  shutdownStep: summary.shutdownStep?.rawValue,
                  message: summary.error.map { "\($0.code): \($0)" },
                  stdout: capture.text("\(job.name)\u{0}stdout"), stderr: capture.text("\(job.name)\u{0}stderr"),
                  // The tail comes as the console's chunks (several lines each, CRLF-ended): one line each here.
                  consoleTail: summary.consoleTail.joined().split(whereSeparator: \.isNewline).map(String.init))
    }
}

/// Writes a report file whole (through a temporary file and a rename), creating its
/// folder; on failure prints what, why and the fix and exits 71.
func writeReport(_ text: String, to path: String, kind: String) throws {
    let target = absolutePath(path)
    do {
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: target).deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Array(text.utf8), to: target)
    } catch {
        FileHandle.standardError.write(Data("launch: host problem: cannot write the \(kind) report to \(target): \(error)\n  fix: give a path in a folder you can write\n".utf8))
        throw ExitCode(LaunchError.Code.hostProblem)
    }
}

/// `JSON` of the summary table.
func batchReportJSON(_ report: BatchReport) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(report)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
}
