import Foundation

extension JUnitReport {
    /// The report as JUnit XML (UTF-8), with counts and times on every suite.
    public var xml: String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let all = cases
        out += "<testsuites\(attributes(["name": name], counting: all))>\n"
        for suite in suites {
            var head = ["name": suite.name]
            head["timestamp"] = suite.timestamp
            head["hostname"] = suite.hostname
            out += "  <testsuite\(attributes(head, counting: suite.cases))>\n"
            if !suite.properties.isEmpty {
                out += "    <properties>\n"
                for property in suite.properties {
                    out += "      <property name=\"\(XMLText.attribute(property.name))\" value=\"\(XMLText.attribute(property.value))\"/>\n"
                }
                out += "    </properties>\n"
            }
            for test in suite.cases { out += Self.element(test) }
            out += "  </testsuite>\n"
        }
        return out + "</testsuites>\n"
    }

    private static func element(_ test: TestCase) -> String {
        var out = "    <testcase name=\"\(XMLText.attribute(test.name))\" classname=\"\(XMLText.attribute(test.classname))\" time=\"\(seconds(test.timeSeconds))\""
        guard test.result != nil || test.systemOut != nil || test.systemErr != nil else { return out + "/>\n" }
        out += ">\n"
        switch test.result {
        case .failure(let message, let type, let text), .error(let message, let type, let text):
            let tag = if case .failure = test.result { "failure" } else { "error" }
            out += "      <\(tag) message=\"\(XMLText.attribute(message))\" type=\"\(XMLText.attribute(type))\">\(XMLText.text(text))</\(tag)>\n"
        case .skipped(let message):
            out += "      <skipped message=\"\(XMLText.attribute(message))\"/>\n"
        case nil:
            break
        }
        if let text = test.systemOut { out += "      <system-out>\(XMLText.text(text))</system-out>\n" }
        if let text = test.systemErr { out += "      <system-err>\(XMLText.text(text))</system-err>\n" }
        return out + "    </testcase>\n"
    }

    private func attributes(_ named: [String: String], counting cases: [TestCase]) -> String {
        var failures = 0, errors = 0, skipped = 0
        for test in cases {
            switch test.result {
            case .failure: failures += 1
            case .error: errors += 1
            case .skipped: skipped += 1
            case nil: break
            }
        }
        let time = cases.reduce(0) { $0 + $1.timeSeconds }
        var out = ""
        for key in ["name", "timestamp", "hostname"] {
            if let value = named[key] { out += " \(key)=\"\(XMLText.attribute(value))\"" }
        }
        return out + " tests=\"\(cases.count)\" failures=\"\(failures)\" errors=\"\(errors)\" skipped=\"\(skipped)\" time=\"\(Self.seconds(time))\""
    }

    /// Seconds with millisecond precision, as JUnit readers parse them (`3.250`).
    static func seconds(_ value: Double) -> String {
        String(format: "%.3f", value)
    }
}

/// Escaping for XML 1.0 text and attribute values.
enum XMLText {
    /// `text` as element content: `&`, `<`, `>` escaped, `\r` as a character reference
    /// (parsers turn a raw CR into LF), and each character XML 1.0 cannot hold at all
    /// (control characters such as ESC from a console's colors, U+FFFE, U+FFFF) written
    /// visibly as `\x1B` or `\u{FFFE}`, so the report stays well-formed and says what was there.
    static func text(_ text: String) -> String {
        escape(text, attribute: false)
    }

    /// `text` as an attribute value: also `"` and `'` escaped, and tab and newline as
    /// character references (a parser would turn them into spaces).
    static func attribute(_ text: String) -> String {
        escape(text, attribute: true)
    }

    private static func escape(_ text: String, attribute: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where attribute: out += "&quot;"
            case "'" where attribute: out += "&apos;"
            case "\r": out += "&#13;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            default:
                if isAllowed(scalar) {
                    out.unicodeScalars.append(scalar)
                } else if scalar.value < 0x100 {
                    out += "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 2)
                } else {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                }
            }
        }
        return out
    }

    /// XML 1.0's Char production, less the C1 controls (allowed but discouraged, and
    /// some readers refuse them).
    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD: true
        case 0x20...0x7E, 0xA0...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
        default: false
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
