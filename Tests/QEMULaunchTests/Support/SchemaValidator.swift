import Foundation
import QMP

/// A JSON Schema (draft 2020-12) validator for the subset `Profiles/profile.schema.json`
/// uses: type, properties, required, additionalProperties (false), enum, items,
/// pattern, minimum/maximum, minLength/maxLength, minItems/maxItems and local `$ref`s
/// into `$defs`. A keyword outside the subset is itself an error, so the schema can't
/// quietly use something this validator would ignore.
struct SchemaValidator {
    typealias JSON = QMP.JSONValue

    static let assertions: Set<String> = [
        "type", "properties", "required", "additionalProperties", "enum", "items", "pattern",
        "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "$ref",
    ]
    static let annotations: Set<String> = ["$schema", "$id", "$defs", "title", "description"]

    let root: JSON

    init(_ root: JSON) { self.root = root }

    init(contentsOf url: URL) throws {
        root = try JSON(parsing: Data(contentsOf: url))
    }

    /// Every way `instance` fails the schema, each as "path: what"; empty when it matches.
    func errors(_ instance: JSON) -> [String] {
        var errors: [String] = []
        check(instance, against: root, at: "$", into: &errors)
        return errors
    }

    /// Keywords in the schema that this validator doesn't implement.
    func unsupportedKeywords() -> [String] {
        var found: [String] = []
        func walk(_ schema: JSON, _ at: String) {
            guard let members = schema.objectValue else { return }
            for (key, value) in members {
                if !Self.assertions.contains(key) && !Self.annotations.contains(key) { found.append("\(at).\(key)") }
                switch key {
                case "properties", "$defs":
                    for (name, sub) in value.objectValue ?? [:] { walk(sub, "\(at).\(key).\(name)") }
                case "items":
                    walk(value, "\(at).items")
                default:
                    break
                }
            }
        }
        walk(root, "#")
        return found
    }

    private func resolve(_ ref: String) -> JSON? {
        guard ref.hasPrefix("#/") else { return nil }
        var node: JSON? = root
        for part in ref.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }

    private func check(_ value: JSON, against schema: JSON, at path: String, into errors: inout [String]) {
        guard let s = schema.objectValue else {
            errors.append("\(path): schema is not an object")
            return
        }
        if let ref = s["$ref"]?.stringValue {
            guard let target = resolve(ref) else {
                errors.append("\(path): unresolvable $ref \(ref)")
                return
            }
            check(value, against: target, at: path, into: &errors)
        }
        if let type = s["type"] {
            let allowed = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue].compactMap { $0 }
            if !allowed.contains(where: { Self.matches(value, type: $0) }) {
                errors.append("\(path): expected \(allowed.joined(separator: " or ")), found \(value)")
                return
            }
        }
        if let choices = s["enum"]?.arrayValue, !choices.contains(value) {
            errors.append("\(path): \(value) is not one of \(choices.map(\.description).joined(separator: ", "))")
        }
        switch value {
        case .string(let text):
            let length = text.unicodeScalars.count
            if let min = s["minLength"]?.intValue, length < min { errors.append("\(path): shorter than \(min)") }
            if let max = s["maxLength"]?.intValue, length > max { errors.append("\(path): longer than \(max)") }
            if let pattern = s["pattern"]?.stringValue {
                guard let regex = try? NSRegularExpression(pattern: pattern) else {
                    errors.append("\(path): bad pattern \(pattern)")
                    return
                }
                let range = NSRange(text.startIndex..., in: text)
                if regex.firstMatch(in: text, range: range) == nil {
                    errors.append("\(path): \"\(text)\" does not match \(pattern)")
                }
            }
        case .int, .double:
            let number = value.doubleValue!
            if let min = s["minimum"]?.doubleValue, number < min { errors.append("\(path): \(value) is below \(min)") }
            if let max = s["maximum"]?.doubleValue, number > max { errors.append("\(path): \(value) is above \(max)") }
        case .array(let elements):
            if let min = s["minItems"]?.intValue, elements.count < min { errors.append("\(path): fewer than \(min) items") }
            if let max = s["maxItems"]?.intValue, elements.count > max { errors.append("\(path): more than \(max) items") }
            if let items = s["items"] {
                for (index, element) in elements.enumerated() {
                    check(element, against: items, at: "\(path)[\(index)]", into: &errors)
                }
            }
        case .object(let members):
            let properties = s["properties"]?.objectValue ?? [:]
            for name in s["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where members[name] == nil {
                errors.append("\(path): missing required \"\(name)\"")
            }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let sub = properties[name] {
                    check(member, against: sub, at: "\(path).\(name)", into: &errors)
                } else if s["additionalProperties"]?.boolValue == false {
                    errors.append("\(path): unknown property \"\(name)\"")
                }
            }
        case .null, .bool:
            break
        }
    }

    static func matches(_ value: JSON, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null):
            return true
        case ("number", .int), ("number", .double), ("integer", .int):
            return true
        case ("integer", .double(let d)):
            return d.rounded() == d
        default:
            return false
        }
    }

    /// Every property path the schema declares, like `shares[].tag` and `network.forwards[].host`.
    func propertyPaths() -> Set<String> {
        var paths: Set<String> = []
        func walk(_ schema: JSON, _ prefix: String) {
            var schema = schema
            if let ref = schema["$ref"]?.stringValue, let target = resolve(ref) { schema = target }
            if let items = schema["items"] { walk(items, prefix + "[]") }
            for (name, sub) in schema["properties"]?.objectValue ?? [:] {
                let path = prefix.isEmpty ? name : "\(prefix).\(name)"
                paths.insert(path)
                walk(sub, path)
            }
        }
        walk(root, "")
        return paths
    }

    /// Every key path present in a JSON instance, in the same notation as `propertyPaths`.
    static func keyPaths(_ value: JSON, _ prefix: String = "") -> Set<String> {
        switch value {
        case .object(let members):
            var paths: Set<String> = []
            for (name, member) in members {
                let path = prefix.isEmpty ? name : "\(prefix).\(name)"
                paths.insert(path)
                paths.formUnion(keyPaths(member, path))
            }
            return paths
        case .array(let elements):
            return elements.reduce(into: []) { $0.formUnion(keyPaths($1, prefix + "[]")) }
        default:
            return []
        }
    }
}
