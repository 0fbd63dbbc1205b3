import Foundation

/// One thing wrong with a job manifest, at its JSON path (`jobs[2].command`).
public struct ManifestProblem: Sendable, Hashable, CustomStringConvertible {
    /// Where: `jobs[2].command`, `matrix.kernels.next`; `$` is the whole file.
    public var path: String
    /// What is wrong, and how to fix it.
    public var message: String

    /// `path: message`.
    public var description: String { "\(path): \(message)" }
}

/// Every problem of a job manifest, found in one pass.
public struct ManifestProblems: Error, Sendable, CustomStringConvertible {
    /// The manifest's file (or `<manifest>`).
    public var source: String
    /// Each problem with its JSON path.
    public var problems: [ManifestProblem]

    /// A heading with the count, then one indented line per problem.
    public var description: String {
        (["invalid job manifest \(source): \(problems.count) problem\(problems.count == 1 ? "" : "s")"]
            + problems.map { "  - \($0)" }).joined(separator: "\n")
    }
}

extension JobManifest {
    /// Reads a manifest file; relative profile and kernel paths resolve against its folder.
    public static func load(contentsOf url: URL) throws(ManifestProblems) -> JobManifest {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ManifestProblems(source: url.path, problems: [ManifestProblem(
                path: "$", message: "cannot read the manifest (\(error.localizedDescription)); check that the file exists and is readable")])
        }
        return try decode(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    /// Whether `data` is a job manifest rather than a profile: a JSON object with `jobs` or `matrix`.
    public static func looksLikeManifest(_ data: Data) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["jobs"] != nil || object["matrix"] != nil
    }

    /// Decodes a manifest, collecting every problem (wrong types, unknown keys, missing
    /// or duplicate names, empty commands) before throwing them together.
    public static func decode(_ data: Data, source: String = "<manifest>", baseDirectory: URL) throws(ManifestProblems) -> JobManifest {
        var reader = ManifestReader(base: baseDirectory)
        let manifest = reader.read(data)
        guard reader.problems.isEmpty, let manifest else { throw ManifestProblems(source: source, problems: reader.problems) }
        return manifest
    }
}

/// The keys a manifest may hold at each level (Jobs/jobs.schema.json declares the same; a test checks).
enum ManifestKeys {
    static let top: Set<String> = ["$schema", "jobs", "matrix"]
    static let job: Set<String> = ["name", "profile", "command", "kernel"]
    static let matrix: Set<String> = ["profiles", "kernels", "commands"]
}

/// Walks the JSON once, noting each problem where it is and going on.
private struct ManifestReader {
    let base: URL
    var problems: [ManifestProblem] = []

    mutating func problem(_ path: String, _ message: String) {
        problems.append(ManifestProblem(path: path, message: message))
    }

    mutating func read(_ data: Data) -> JobManifest? {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            problem("$", "not valid JSON (\(error.localizedDescription)); check it with `python3 -m json.tool FILE`")
            return nil
        }
        guard let object = root as? [String: Any] else {
            problem("$", "expected a JSON object with \"jobs\" and/or \"matrix\"")
            return nil
        }
        unknownKeys(object, allowed: ManifestKeys.top, at: "")
        var manifest = JobManifest()
        if let jobs = object["jobs"] {
            if let list = jobs as? [Any] {
                manifest.jobs = list.enumerated().compactMap { index, value in job(value, at: "jobs[\(index)]") }
            } else {
                problem("jobs", "expected a list of jobs like [{\"name\": \"j1\", \"profile\": \"p.json\", \"command\": [\"true\"]}]")
            }
        }
        if let matrix = object["matrix"] { manifest.matrix = self.matrix(matrix) }
        if object["jobs"] == nil && object["matrix"] == nil {
            problem("$", "no jobs: add a \"jobs\" list, a \"matrix\", or both")
        }
        var seen: [String: Int] = [:]
        for job in manifest.allJobs { seen[job.name, default: 0] += 1 }
        for (name, count) in seen.sorted(by: { $0.key < $1.key }) where count > 1 {
            problem("$", "the job name \"\(name)\" is used \(count) times; a name is the job's key in reports and shards, so give each job its own")
        }
        if problems.isEmpty && manifest.allJobs.isEmpty { problem("$", "no jobs: the lists are empty") }
        return manifest
    }

    mutating func unknownKeys(_ object: [String: Any], allowed: Set<String>, at path: String) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            problem(path.isEmpty ? key : "\(path).\(key)", "unknown key \"\(key)\"; the keys here are \(allowed.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
        }
    }

    mutating func job(_ value: Any, at path: String) -> JobManifest.Job? {
        guard let object = value as? [String: Any] else {
            problem(path, "expected a job object like {\"name\": \"j1\", \"profile\": \"p.json\"}")
            return nil
        }
        unknownKeys(object, allowed: ManifestKeys.job, at: path)
        let name = self.name(object["name"], at: "\(path).name", separator: true)
        let profile = self.path(object["profile"], at: "\(path).profile", what: "a profile file")
        let command = object["command"].flatMap { self.command($0, at: "\(path).command") }
        let kernel = object["kernel"].flatMap { self.path($0, at: "\(path).kernel", what: "a kernel image or \"auto\"", orAuto: true) }
        guard let name, let profile else { return nil }
        return JobManifest.Job(name: name, profile: profile, command: command, kernel: kernel)
    }

    mutating func matrix(_ value: Any) -> JobManifest.Matrix? {
        guard let object = value as? [String: Any] else {
            problem("matrix", "expected an object like {\"profiles\": {\"microvm\": \"boot.json\"}, \"commands\": {\"true\": [\"true\"]}}")
            return nil
        }
        unknownKeys(object, allowed: ManifestKeys.matrix, at: "matrix")
        let profiles = axis(object["profiles"], at: "matrix.profiles", required: true) { reader, value, path in
            reader.path(value, at: path, what: "a profile file")
        }
        let kernels = axis(object["kernels"], at: "matrix.kernels", required: false) { reader, value, path in
            reader.path(value, at: path, what: "a kernel image or \"auto\"", orAuto: true)
        }
        let commands = axis(object["commands"], at: "matrix.commands", required: false) { reader, value, path in
            reader.command(value, at: path)
        }
        return JobManifest.Matrix(profiles: profiles, kernels: kernels, commands: commands)
    }

    /// An axis: an object of name → value, taken in name order (JSON objects have none).
    mutating func axis<Value>(_ value: Any?, at path: String, required: Bool,
                              _ entry: (inout ManifestReader, Any, String) -> Value?) -> [JobManifest.Matrix.Entry<Value>] {
        guard let value else {
            if required { problem(path, "missing: a matrix needs at least one profile, like {\"microvm\": \"boot.json\"}") }
            return []
        }
        guard let object = value as? [String: Any], !object.isEmpty else {
            problem(path, "expected a non-empty object of name → value, like {\"microvm\": \"boot.json\"}")
            return []
        }
        return object.keys.sorted().compactMap { key in
            let name = self.name(key, at: "\(path).\(key)", separator: false)
            guard let value = entry(&self, object[key]!, "\(path).\(key)"), let name else { return nil }
            return JobManifest.Matrix.Entry(name: name, value: value)
        }
    }

    /// A job name (or, without `separator`, a matrix axis name, where `/` joins the parts).
    mutating func name(_ value: Any?, at path: String, separator: Bool) -> String? {
        guard let value else {
            problem(path, "missing: every job needs a name, its key in reports and shards")
            return nil
        }
        guard let name = value as? String, JobManifest.Job.isValidName(name), separator || !name.contains("/") else {
            problem(path, "\(String(describing: value).debugDescription) is not a usable name: use letters, digits and punctuation, no spaces or control characters\(separator ? "" : ", no \"/\" (it joins a matrix job's parts)")")
            return nil
        }
        return name
    }

    /// A path, absolute against the manifest's folder; with `orAuto`, also the word `auto`.
    mutating func path(_ value: Any?, at path: String, what: String, orAuto: Bool = false) -> String? {
        guard let value else {
            problem(path, "missing: the path of \(what), relative to the manifest's folder")
            return nil
        }
        guard let text = value as? String, !text.isEmpty else {
            problem(path, "expected the path of \(what) as a string")
            return nil
        }
        if (text == "auto" && orAuto) || text.hasPrefix("/") { return text }
        return base.appendingPathComponent(text).standardizedFileURL.path
    }

    mutating func command(_ value: Any, at path: String) -> [String]? {
        guard let argv = value as? [String], !argv.isEmpty, !argv[0].isEmpty else {
            problem(path, "expected a command as a non-empty list of strings, like [\"sh\", \"-c\", \"make check\"]")
            return nil
        }
        return argv
    }
}
