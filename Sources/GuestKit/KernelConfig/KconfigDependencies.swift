import Foundation

/// What each option of a kernel tree depends on, read from its Kconfig files: the
/// `depends on` lines of its entry and the `if` blocks around it (followed through
/// `source`, as Kconfig reads them). Enough to say why an option did not stick in a
/// `.config`: `9P_FS` depends on `INET && NET_9P`, and `INET` is off.
public struct KconfigDependencies: Sendable {
    /// Expressions by option name (without `CONFIG_`), each an `if` or `depends on`.
    public private(set) var conditions: [String: [String]] = [:]

    /// Reads the tree's Kconfig files for the kernel arch `srcarch` (`x86`, `arm64`).
    public init(tree: URL, srcarch: String) {
        var visited: Set<String> = []
        read("Kconfig", tree: tree, srcarch: srcarch, ifs: [], visited: &visited)
    }

    /// The symbols `name`'s conditions mention whose value in `config` is off, with the
    /// conditions themselves; empty when none is found.
    public func unmet(_ name: String, in config: KernelConfig) -> (conditions: [String], off: [String]) {
        let list = conditions[name] ?? []
        var off: [String] = []
        for expression in list {
            for symbol in Self.symbols(in: expression) where config[symbol] == nil && !off.contains(symbol) {
                off.append(symbol)
            }
        }
        return (list, off)
    }

    /// The option names an expression mentions (not `y`, `m`, `n`, numbers or quoted strings).
    static func symbols(in expression: String) -> [String] {
        var names: [String] = []
        var current = ""
        var quoted = false
        for character in expression + " " {
            if character == "\"" { quoted.toggle(); current = ""; continue }
            if !quoted, character.isUppercase || character.isNumber || character == "_" {
                current.append(character)
            } else {
                if current.contains(where: \.isLetter), !names.contains(current) { names.append(current) }
                current = ""
            }
        }
        return names
    }

    private mutating func read(_ path: String, tree: URL, srcarch: String, ifs: [String], visited: inout Set<String>) {
        guard visited.insert(path).inserted,
              let text = try? String(contentsOf: tree.appendingPathComponent(path), encoding: .utf8) else { return }
        var ifs = ifs
        var entry: String?
        // Help text runs while lines are indented at least as deep as its first line; its
        // words ("if you say Y here") are not keywords.
        var helpIndent: Int?
        var inHelp = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if inHelp {
                if line.isEmpty { continue }
                let indent = raw.prefix { $0 == " " || $0 == "\t" }.reduce(0) { $0 + ($1 == "\t" ? 8 - $0 % 8 : 1) }
                if helpIndent == nil { helpIndent = indent; continue }
                if indent >= helpIndent! { continue }
                inHelp = false
            }
            if line == "help" || line == "---help---" {
                inHelp = true
                helpIndent = nil
                continue
            }
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard let keyword = words.first else { continue }
            let rest = words.count > 1 ? words[1].trimmingCharacters(in: .whitespaces) : ""
            switch keyword {
            case "config", "menuconfig":
                entry = rest
                if !ifs.isEmpty { conditions[rest, default: []] += ifs.filter { !(conditions[rest] ?? []).contains($0) } }
            case "depends":
                guard let entry, rest.hasPrefix("on ") else { continue }
                conditions[entry, default: []].append(String(rest.dropFirst(3)).trimmingCharacters(in: .whitespaces))
            case "if":
                entry = nil
                ifs.append(rest)
            case "endif":
                entry = nil
                if !ifs.isEmpty { ifs.removeLast() }
            case "source", "osource", "rsource":
                entry = nil
                var target = rest.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                target = target.replacingOccurrences(of: "$(SRCARCH)", with: srcarch)
                if keyword == "rsource" { target = (path as NSString).deletingLastPathComponent + "/" + target }
                read(target, tree: tree, srcarch: srcarch, ifs: ifs, visited: &visited)
            case "choice", "endchoice", "menu", "endmenu", "comment", "mainmenu":
                entry = nil
            default:
                continue
            }
        }
    }
}
