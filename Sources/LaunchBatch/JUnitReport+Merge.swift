extension JUnitReport {
    /// Why shards' reports do not add up to one run.
    public struct MergeError: Error, Sendable, CustomStringConvertible {
        /// Each testcase found in more than one place, with the places.
        public var duplicates: [(test: String, sources: [String])]

        /// One line per testcase that ran more than once.
        public var description: String {
            "\(duplicates.count) testcase\(duplicates.count == 1 ? "" : "s") appear in more than one report, so a job ran twice (shards of different manifests or counts?):\n"
                + duplicates.map { "  - \($0.test): in \($0.sources.joined(separator: ", "))" }.joined(separator: "\n")
                + "\nFix: run every shard K/N with the same manifest, flags and N, and merge one report per shard."
        }
    }

    /// Merges the reports of a suite's shards: suites of the same name become one, with
    /// the cases in the order read; a property that differs between shards (`shard`)
    /// keeps every value, comma-separated. Throws when a testcase (classname and name)
    /// is in two reports: a job ran twice.
    public static func merge(_ reports: [(source: String, report: JUnitReport)]) throws(MergeError) -> JUnitReport {
        var suites: [Suite] = []
        var seen: [String: [String]] = [:]
        var order: [String] = []
        for (source, report) in reports {
            for suite in report.suites {
                for test in suite.cases {
                    let key = "\(test.classname).\(test.name)"
                    if seen[key] == nil { order.append(key) }
                    seen[key, default: []].append(source)
                }
                guard let index = suites.firstIndex(where: { $0.name == suite.name }) else {
                    suites.append(suite)
                    continue
                }
                suites[index].cases += suite.cases
                for property in suite.properties {
                    if let at = suites[index].properties.firstIndex(where: { $0.name == property.name }) {
                        let values = suites[index].properties[at].value.split(separator: ",").map(String.init)
                        if !values.contains(property.value) { suites[index].properties[at].value += ",\(property.value)" }
                    } else {
                        suites[index].properties.append(property)
                    }
                }
                if let timestamp = suite.timestamp, suites[index].timestamp.map({ timestamp < $0 }) ?? true {
                    suites[index].timestamp = timestamp
                }
                if suites[index].hostname != suite.hostname { suites[index].hostname = nil }
            }
        }
        let duplicates = order.compactMap { key in seen[key]!.count > 1 ? (test: key, sources: seen[key]!) : nil }
        guard duplicates.isEmpty else { throw MergeError(duplicates: duplicates) }
        return JUnitReport(name: reports.first?.report.name ?? "launch batch", suites: suites)
    }
}
