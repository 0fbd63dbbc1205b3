extension QMP {
    /// A JSON value as QMP carries it.
    ///
    /// Integers that fit in `Int` parse as `.int`; any other number (a fraction, an
    /// exponent, or an integer beyond `Int`'s range, such as a `uint64` above
    /// `Int64.max`) parses as `.double`. `.int(1)` and `.double(1)` are different
    /// values; the accessors `intValue` and `doubleValue` convert between them when
    /// that is exact.
    public enum JSONValue: Sendable, Hashable {
        /// JSON `null`.
        case null
        /// `true` or `false`.
        case bool(Bool)
        /// A number without fraction or exponent that fits in `Int`.
        case int(Int)
        /// Any other number.
        case double(Double)
        /// A string, unescaped.
        case string(String)
        /// An array.
        case array([JSONValue])
        /// An object; its member order is not kept (``jsonText`` sorts the keys).
        case object([String: JSONValue])
    }
}

// MARK: - Accessors

extension QMP.JSONValue {
    /// The member `key` of an object; nil for a missing key or a non-object.
    public subscript(key: String) -> QMP.JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The element at `index` of an array; nil when out of range or not an array.
    public subscript(index: Int) -> QMP.JSONValue? {
        if case .array(let elements) = self, elements.indices.contains(index) { return elements[index] }
        return nil
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The value of a `.bool`; nil for anything else.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value as an `Int`: an `.int`, or a `.double` that is a whole number in range.
    public var intValue: Int? {
        switch self {
        case .int(let value): return value
        case .double(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// The value as a `Double`: a `.double`, or an `.int` (which may round above 2^53).
    public var doubleValue: Double? {
        switch self {
        case .double(let value): return value
        case .int(let value): return Double(value)
        default: return nil
        }
    }

    /// The value of a `.string`; nil for anything else.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The elements of an `.array`; nil for anything else.
    public var arrayValue: [QMP.JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members of an `.object`; nil for anything else.
    public var objectValue: [String: QMP.JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }
}

// MARK: - Literals

extension QMP.JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// `nil` in a literal is `null`: `["id": nil]`.
    public init(nilLiteral: ()) { self = .null }
    /// `true` and `false` in a literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An integer literal is an `.int`: `["value": 64]`.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A floating-point literal is a `.double`.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// A string literal is a `.string`: `execute("device_del", arguments: ["id": "net0"])`.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An array literal is an `.array`.
    public init(arrayLiteral elements: QMP.JSONValue...) { self = .array(elements) }
    /// A dictionary literal is an `.object`; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, QMP.JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

// MARK: - Text

extension QMP.JSONValue: CustomStringConvertible {
    /// Parses one JSON value (surrounding whitespace allowed).
    public init(parsing text: String) throws(QMP.Error) {
        var text = text
        let result = text.withUTF8 { bytes in JSONParser.parse(UnsafeRawBufferPointer(bytes)) }
        switch result {
        case .success(let value):
            self = value
        case .failure(let failure):
            throw .malformedMessage(reason: failure.description, excerpt: excerpt(of: Array(text.utf8)))
        }
    }

    /// Parses one JSON value from UTF-8 bytes (surrounding whitespace allowed).
    public init(parsing bytes: some Collection<UInt8>) throws(QMP.Error) {
        let parsed: Result<QMP.JSONValue, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            JSONParser.parse(UnsafeRawBufferPointer(buffer))
        }
        let result = parsed ?? Array(bytes).withUnsafeBytes { JSONParser.parse($0) }
        switch result {
        case .success(let value):
            self = value
        case .failure(let failure):
            throw .malformedMessage(reason: failure.description, excerpt: excerpt(of: bytes))
        }
    }

    init(parsing bytes: UnsafeRawBufferPointer) throws(QMP.Error) {
        switch JSONParser.parse(bytes) {
        case .success(let value):
            self = value
        case .failure(let failure):
            throw .malformedMessage(reason: failure.description, excerpt: excerpt(of: bytes))
        }
    }

    /// Compact JSON text with object keys sorted, so the output is deterministic.
    public var jsonText: String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The compact JSON text, as ``jsonText``.
    public var description: String { jsonText }
}

// MARK: - Codable

extension QMP.JSONValue: Codable {
    /// Decodes any JSON value from a `Decoder`, so `JSONValue` can sit inside your `Codable` types.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([QMP.JSONValue].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: QMP.JSONValue].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not a JSON null, bool, number, string, array or object")
        }
    }

    /// Encodes the value as the JSON it represents.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A short, printable prefix of a line for error messages: non-printable bytes are
/// shown as `\xNN`, and long lines are cut.
func excerpt(of bytes: some Collection<UInt8>, limit: Int = 120) -> String {
    var text = ""
    var count = 0
    for byte in bytes {
        if count == limit {
            text += "… (\(bytes.count) bytes)"
            break
        }
        if byte >= 0x20 && byte < 0x7F {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let hex = String(byte, radix: 16, uppercase: true)
            text += byte < 0x10 ? "\\x0\(hex)" : "\\x\(hex)"
        }
        count += 1
    }
    return text.isEmpty ? "(empty line)" : text
}
