import Foundation
import LaunchBatch
import TestSupport
import Testing

@Suite("JUnit reports: writing, escaping, reading back and merging shards")
struct JUnitReportTests {
    static func record(_ name: String, _ outcome: JobRecord.Outcome, exit: Int32 = 0, stdout: String = "", stderr: String = "",
                       message: String? = nil, tail: [String] = []) -> JobRecord {
        JobRecord(name: name, profile: "/p/\(name).json", command: ["true"], outcome: outcome, exitCode: exit,
                  durationSeconds: 2.5, shutdownStep: outcome == .error ? nil : "guest-poweroff", message: message,
                  stdout: stdout, stderr: stderr, consoleTail: tail)
    }

    @Test("a failure carries its exit code, shutdown step and console tail; an error the launcher's message; counts and times add up")
    func writes() throws {
        let report = JUnitReport(suite: "jobs", records: [
            Self.record("ok", .passed, stdout: "hello\n"),
            Self.record("fails", .failed, exit: 7, stderr: "oops\n", tail: ["[    0.1] Linux version 6.1", "reboot: Power down"]),
            Self.record("hangs", .error, exit: 124, message: "timeout: the command ran past timeouts.run (5 s)\n  fix: raise it"),
            Self.record("later", .skipped, exit: 130, message: "interrupted: not started: interrupted"),
        ], shard: Shard(parsing: "2/4"), timestamp: "2026-12-01T11:00:00Z", hostname: "ci-7")
        let xml = report.xml
        #expect(xml.contains(#"<testsuites name="launch batch" tests="4" failures="1" errors="1" skipped="1" time="10.000">"#), "\(xml)")
        #expect(xml.contains(#"<testsuite name="jobs" timestamp="2026-12-01T11:00:00Z" hostname="ci-7" tests="4" failures="1" errors="1" skipped="1" time="10.000">"#))
        #expect(xml.contains(#"<property name="shard" value="2/4"/>"#))
        #expect(xml.contains("""
                <testcase name="fails" classname="jobs" time="2.500">
                  <failure message="exit code 7" type="exit 7">exit code 7
            shutdown step: guest-poweroff
            console tail:
              [    0.1] Linux version 6.1
              reboot: Power down</failure>
                  <system-err>oops
            </system-err>
                </testcase>
            """))
        #expect(xml.contains(#"<error message="exit code 124: timeout: the command ran past timeouts.run (5 s)" type="exit 124">exit code 124"#))
        #expect(xml.contains("shutdown step: none (the VM did not get that far)\nlauncher: timeout: the command ran past timeouts.run (5 s)\n  fix: raise it</error>"))
        #expect(xml.contains(#"<skipped message="interrupted: not started: interrupted"/>"#))
        #expect(xml.contains("<system-out>hello\n</system-out>"))
    }

    @Test("output with markup, quotes, CR, ESC colors, NUL and other characters XML cannot hold stays well-formed: escaped or written visibly")
    func escaping() throws {
        let nasty = "a<b>&c\"d'e\r\n\u{1B}[31mred\u{1B}[0m\u{0}\u{7}\u{FFFE}\u{85} ]]> é 🙂\t"
        let report = JUnitReport(suite: "s<&>", records: [Self.record("x\"<y>", .failed, exit: 1, stdout: nasty, stderr: nasty,
                                                                      message: nasty, tail: [nasty])])
        let back = try JUnitReport.parse(Data(report.xml.utf8))
        let test = try #require(back.cases.first)
        #expect(test.name == "x\"<y>")
        #expect(back.suites.first?.name == "s<&>")
        let visible = "a<b>&c\"d'e\r\n\\x1B[31mred\\x1B[0m\\x00\\x07\\u{FFFE}\\x85 ]]> é 🙂\t"
        #expect(test.systemOut == visible)
        #expect(test.systemErr == visible)
        guard case .failure(_, _, let text) = test.result else {
            Issue.record("not a failure: \(String(describing: test.result))")
            return
        }
        #expect(text.hasSuffix("console tail:\n  " + visible))
        #expect(!report.xml.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
    }

    @Test("written and read back, random reports come out equal (XML-safe text survives exactly)")
    func roundTrip() throws {
        var generator = SplitMix64(seed: 42)
        let alphabet = Array("ab <>&\"'\n\t\r/é🙂]")
        func text() -> String { String((0..<Int.random(in: 0...20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }) }
        for _ in 0..<50 {
            let outcomes: [JobRecord.Outcome] = [.passed, .failed, .error, .skipped]
            let records = (0..<Int.random(in: 1...6, using: &generator)).map { index in
                Self.record("job-\(index)-\(text())", outcomes.randomElement(using: &generator)!, exit: 3,
                            stdout: text(), stderr: text(), message: text(), tail: [text()])
            }
            let report = JUnitReport(suite: text(), records: records, shard: Shard(parsing: "1/2"), timestamp: "t", hostname: text())
            #expect(try JUnitReport.parse(Data(report.xml.utf8)) == report)
        }
    }

    @Test("merging two shards' reports gives one suite holding both shards' cases, with both shard values")
    func merge() throws {
        let first = JUnitReport(suite: "jobs", records: [Self.record("a", .passed), Self.record("b", .failed, exit: 2)], shard: Shard(parsing: "1/2"))
        let second = JUnitReport(suite: "jobs", records: [Self.record("c", .passed)], shard: Shard(parsing: "2/2"))
        let merged = try JUnitReport.merge([("1.xml", first), ("2.xml", second)])
        #expect(merged.suites.count == 1)
        #expect(merged.cases.map(\.name) == ["a", "b", "c"])
        #expect(merged.suites[0].properties == [JUnitReport.Property(name: "shard", value: "1/2,2/2")])
        #expect(merged.xml.contains(#"tests="3" failures="1" errors="0""#))
    }

    @Test("a job in two shards' reports is refused, naming the job and both files")
    func duplicate() {
        let first = JUnitReport(suite: "jobs", records: [Self.record("a", .passed)])
        do {
            _ = try JUnitReport.merge([("1.xml", first), ("2.xml", first)])
            Issue.record("merged a job that ran twice")
        } catch {
            #expect(error.description.contains("jobs.a: in 1.xml, 2.xml"), "\(error)")
            #expect(error.description.contains("Fix: run every shard K/N with the same manifest"))
        }
    }

    @Test("a lone <testsuite> from another tool is read; a file that is not JUnit XML says where it broke")
    func otherInputs() throws {
        let lone = try JUnitReport.parse(Data(#"<testsuite name="x"><testcase name="t" classname="c" time="1.5"><failure message="m">body</failure></testcase></testsuite>"#.utf8))
        #expect(lone.cases == [JUnitReport.TestCase(name: "t", classname: "c", timeSeconds: 1.5, result: .failure(message: "m", type: "", text: "body"))])
        #expect(throws: JUnitReport.ParseError.self) { try JUnitReport.parse(Data("<testsuites><testcase".utf8)) }
        #expect(throws: JUnitReport.ParseError.self) { try JUnitReport.parse(Data("{\"jobs\": []}".utf8)) }
    }
}
