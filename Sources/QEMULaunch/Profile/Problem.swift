/// One thing wrong with a profile, located by its JSON path.
public struct ProfileProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is, like `shares[1].tag`; `$` is the whole profile.
    public var path: String
    /// What is wrong.
    public var message: String
    /// How to fix it.
    public var fix: String?

    public init(path: String, message: String, fix: String? = nil) {
        self.path = path
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var line = "\(path): \(message)"
        if let fix { line += " (fix: \(fix))" }
        return line
    }
}

/// Every problem found in a profile, all at once.
public struct ProfileProblems: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var problems: [ProfileProblem]

    public init(source: String, problems: [ProfileProblem]) {
        self.source = source
        self.problems = problems
    }

    public var description: String {
        let count = problems.count == 1 ? "1 problem" : "\(problems.count) problems"
        return "invalid profile \(source): \(count)\n"
            + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Renders a Codable coding path as `shares[1].tag`.
func jsonPath(_ codingPath: [any CodingKey], _ last: String? = nil) -> String {
    var out = ""
    for key in codingPath {
        if let index = key.intValue {
            out += "[\(index)]"
        } else {
            out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    if let last { out += out.isEmpty ? last : ".\(last)" }
    return out.isEmpty ? "$" : out
}
