/// A JUnit XML report: the format Jenkins, GitLab, GitHub Actions reporters, Buildkite
/// Test Analytics and most dashboards read. One testcase per job.
public struct JUnitReport: Sendable, Equatable {
    /// A `<testsuite>`.
    public struct Suite: Sendable, Equatable {
        /// Its name (`launch batch` uses the manifest's file name without `.json`).
        public var name: String
        /// When the run started (ISO 8601), when known.
        public var timestamp: String?
        /// The machine it ran on, when known.
        public var hostname: String?
        /// `<property name= value=>` pairs, in order (`shard`, ...).
        public var properties: [Property]
        /// Its testcases, in order.
        public var cases: [TestCase]

        /// A suite of `cases`.
        public init(name: String, timestamp: String? = nil, hostname: String? = nil, properties: [Property] = [], cases: [TestCase]) {
            self.name = name
            self.timestamp = timestamp
            self.hostname = hostname
            self.properties = properties
            self.cases = cases
        }
    }

    /// A `<property>`.
    public struct Property: Sendable, Equatable {
        /// Its name.
        public var name: String
        /// Its value.
        public var value: String
        /// A property `name` = `value`.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// A `<testcase>`.
    public struct TestCase: Sendable, Equatable {
        /// The job's key.
        public var name: String
        /// The suite's name (dashboards group by it).
        public var classname: String
        /// Its duration in seconds.
        public var timeSeconds: Double
        /// Its outcome when not a pass.
        public var result: Result?
        /// `<system-out>`, when any.
        public var systemOut: String?
        /// `<system-err>`, when any.
        public var systemErr: String?

        /// A testcase of every field.
        public init(name: String, classname: String, timeSeconds: Double, result: Result? = nil,
                    systemOut: String? = nil, systemErr: String? = nil) {
            self.name = name
            self.classname = classname
            self.timeSeconds = timeSeconds
            self.result = result
            self.systemOut = systemOut
            self.systemErr = systemErr
        }
    }

    /// Why a testcase did not pass.
    public enum Result: Sendable, Equatable {
        /// `<failure message= type=>text</failure>`: the command exited non-zero.
        case failure(message: String, type: String, text: String)
        /// `<error message= type=>text</error>`: the launcher failed.
        case error(message: String, type: String, text: String)
        /// `<skipped message=/>`: never ran.
        case skipped(message: String)
    }

    /// The `<testsuites name=>`.
    public var name: String
    /// The suites, in order.
    public var suites: [Suite]

    /// A report of `suites`.
    public init(name: String = "launch batch", suites: [Suite]) {
        self.name = name
        self.suites = suites
    }

    /// Every testcase of every suite, in order.
    public var cases: [TestCase] { suites.flatMap(\.cases) }
}

extension JUnitReport {
    /// The report of one batch run: a suite named `suite` with a testcase per record.
    /// A failure's or error's text holds the exit code, the shutdown step, the launcher's
    /// message and the console's tail.
    public init(suite: String, records: [JobRecord], shard: Shard? = nil, timestamp: String? = nil, hostname: String? = nil) {
        let cases = records.map { record in
            TestCase(name: record.name, classname: suite, timeSeconds: record.durationSeconds,
                     result: Self.result(of: record),
                     systemOut: record.stdout.isEmpty ? nil : record.stdout,
                     systemErr: record.stderr.isEmpty ? nil : record.stderr)
        }
        let properties = shard.map { [Property(name: "shard", value: $0.description)] } ?? []
        self.init(suites: [Suite(name: suite, timestamp: timestamp, hostname: hostname, properties: properties, cases: cases)])
    }

    static func result(of record: JobRecord) -> Result? {
        var lines = ["exit code \(record.exitCode)", "shutdown step: \(record.shutdownStep ?? "none (the VM did not get that far)")"]
        if let message = record.message { lines.append("launcher: \(message)") }
        if !record.consoleTail.isEmpty { lines += ["console tail:"] + record.consoleTail.map { "  \($0)" } }
        let text = lines.joined(separator: "\n")
        let firstLine = record.message?.split(separator: "\n").first.map(String.init)
        switch record.outcome {
        case .passed: return nil
        case .failed: return .failure(message: "exit code \(record.exitCode)", type: "exit \(record.exitCode)", text: text)
        case .error: return .error(message: "exit code \(record.exitCode): \(firstLine ?? "launcher error")", type: "exit \(record.exitCode)", text: text)
        case .skipped: return .skipped(message: firstLine ?? "not started")
        }
    }
}
