import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

extension JUnitReport {
    /// A report that could not be read, saying where and why.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// What is wrong, with the line when the XML itself is broken.
        public var description: String
    }

    /// Reads JUnit XML: a `<testsuites>` document (as `launch batch --junit` writes) or a
    /// lone `<testsuite>` (as many other tools write).
    public static func parse(_ data: Data) throws(ParseError) -> JUnitReport {
        let reader = JUnitReader()
        let parser = XMLParser(data: data)
        parser.delegate = reader
        guard parser.parse(), reader.sawRoot else {
            let why = parser.parserError.map { "\($0.localizedDescription)" } ?? "no <testsuites> or <testsuite> element"
            throw ParseError(description: "not a JUnit XML report (line \(parser.lineNumber), column \(parser.columnNumber)): \(why)")
        }
        // FoundationXML on Linux (6.3) reports success for a document cut short.
        if let open = reader.open.last {
            throw ParseError(description: "not a whole JUnit XML report: it ends inside <\(open)> (line \(parser.lineNumber)); was it cut short while being written?")
        }
        return JUnitReport(name: reader.name, suites: reader.suites)
    }
}

/// Builds the report from the parser's events; text is gathered for the element that holds it.
private final class JUnitReader: NSObject, XMLParserDelegate {
    var name = "launch batch"
    var sawRoot = false
    var suites: [JUnitReport.Suite] = []
    /// The elements begun and not yet ended.
    var open: [String] = []
    private var test: JUnitReport.TestCase?
    private var pending: (tag: String, attributes: [String: String])?
    private var text = ""

    func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String]) {
        open.append(element)
        switch element {
        case "testsuites":
            sawRoot = true
            name = attributes["name"] ?? name
        case "testsuite":
            sawRoot = true
            suites.append(JUnitReport.Suite(name: attributes["name"] ?? "", timestamp: attributes["timestamp"],
                                            hostname: attributes["hostname"], cases: []))
        case "property" where !suites.isEmpty:
            suites[suites.count - 1].properties.append(JUnitReport.Property(name: attributes["name"] ?? "", value: attributes["value"] ?? ""))
        case "testcase":
            test = JUnitReport.TestCase(name: attributes["name"] ?? "", classname: attributes["classname"] ?? "",
                                        timeSeconds: Double(attributes["time"] ?? "") ?? 0)
        case "failure", "error", "skipped", "system-out", "system-err":
            pending = (element, attributes)
            text = ""
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if pending != nil { text += string }
    }

    func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
        if element == "testcase", let test, !suites.isEmpty {
            suites[suites.count - 1].cases.append(test)
            self.test = nil
            return
        }
        guard let pending, pending.tag == element, test != nil else { return }
        let message = pending.attributes["message"] ?? ""
        let type = pending.attributes["type"] ?? ""
        switch element {
        case "failure": test?.result = .failure(message: message, type: type, text: text)
        case "error": test?.result = .error(message: message, type: type, text: text)
        case "skipped": test?.result = .skipped(message: message)
        case "system-out": test?.systemOut = text
        default: test?.systemErr = text
        }
        self.pending = nil
    }
}
