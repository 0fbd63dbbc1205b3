/// One thing wrong with a profile, located by its JSON path.
public struct ProfileProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is, like `shares[1].tag`; `$` is the whole profile.
    public var path: String
    /// What is wrong.
    public var message: String
    /// How to fix it.
    public var fix: String?

    /// A problem at `path` (like `shares[1].tag`), saying what is wrong and, when known, the fix.
    public init(path: String, message: String, fix: String? = nil) {
        self.path = path
        self.message = message
        self.fix = fix
    }

    /// One line: `shares[1].tag: duplicate tag "src" (fix: give every share its own tag)`.
    public var description: String {
        var line = "\(path): \(message)"
        if let fix { line += " (fix: \(fix))" }
        return line
    }
}

/// Every problem found in a profile, all at once.
public struct ProfileProblems: Error, Sendable, CustomStringConvertible {
    /// The file the profile came from, or a name for where it came from (`<profile>` by default).
    public var source: String
    /// Every problem found, each with its JSON path.
    public var problems: [ProfileProblem]

    /// The problems of the profile from `source`.
    public init(source: String, problems: [ProfileProblem]) {
        self.source = source
        self.problems = problems
    }

    /// A heading with the count, then one indented line per problem, as `launch` prints it.
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
