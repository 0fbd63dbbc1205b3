import Foundation
import Testing

@testable import QMP

@Suite("QMP.JSONValue parsing, writing and conveniences")
struct JSONValueTests {
    @Test("parses every JSON kind, keeping integers exact")
    func parsesKinds() throws {
        let value = try QMP.JSONValue(
            parsing: #" {"n": null, "t": true, "f": false, "i": -42, "big": 9223372036854775807, "d": 1.5e3, "s": "a\"b\\c\/\n\u00e9\ud83d\ude00", "a": [1, [], {}], "o": {"k": "v"}} "#)
        #expect(value["n"] == .null)
        #expect(value["t"] == true)
        #expect(value["f"] == false)
        #expect(value["i"] == .int(-42))
        #expect(value["big"] == .int(Int.max))
        #expect(value["d"] == .double(1500))
        #expect(value["s"] == .string("a\"b\\c/\né😀"))
        #expect(value["a"] == [1, [], [:]])
        #expect(value["o"]?["k"]?.stringValue == "v")
        #expect(value["missing"] == nil)
        #expect(value["a"]?[0]?.intValue == 1)
        #expect(value["a"]?[9] == nil)
    }

    @Test("integers beyond Int's range become doubles; Int.min stays an int")
    func integerRange() throws {
        #expect(try QMP.JSONValue(parsing: "18446744073709551615") == .double(18446744073709551616.0))
        #expect(try QMP.JSONValue(parsing: "-9223372036854775808") == .int(Int.min))
        #expect(try QMP.JSONValue(parsing: "-9223372036854775809") == .double(-9223372036854775808.0))
        #expect(try QMP.JSONValue(parsing: "0") == .int(0))
        #expect(try QMP.JSONValue(parsing: "-0") == .int(0))
    }

    @Test("accessors convert between int and double only when exact")
    func accessors() {
        #expect(QMP.JSONValue.double(3).intValue == 3)
        #expect(QMP.JSONValue.double(3.5).intValue == nil)
        #expect(QMP.JSONValue.int(3).doubleValue == 3)
        #expect(QMP.JSONValue.string("3").intValue == nil)
        #expect(QMP.JSONValue.null.isNull)
        #expect(QMP.JSONValue.bool(true).boolValue == true)
        #expect(QMP.JSONValue.array([1]).arrayValue == [1])
        #expect(QMP.JSONValue.object(["a": 1]).objectValue == ["a": 1])
    }

    @Test("a lone surrogate escape becomes U+FFFD instead of failing")
    func loneSurrogate() throws {
        #expect(try QMP.JSONValue(parsing: #""\ud800x""#) == "\u{FFFD}x")
        #expect(try QMP.JSONValue(parsing: #""\udc00""#) == "\u{FFFD}")
    }

    @Test(
        "rejects text that is not exactly one JSON value",
        arguments: [
            "", "   ", "{", "}", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "1e", "-", "+1", "tru", "nul",
            "\"abc", "\"\\q\"", "\"\\u12\"", "{} {}", "[1] x", "{1: 2}", "NaN", "Infinity",
        ])
    func rejects(text: String) {
        #expect(throws: QMP.Error.self) { try QMP.JSONValue(parsing: text) }
    }

    @Test("nesting deeper than the cap is an error, not a stack overflow")
    func deepNesting() {
        let deep = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        #expect(throws: QMP.Error.self) { try QMP.JSONValue(parsing: deep) }
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect((try? QMP.JSONValue(parsing: fine)) != nil)
    }

    @Test("writes compact JSON with sorted keys and escapes")
    func writes() {
        let value: QMP.JSONValue = ["b": [1, 2.5, nil, true], "a": "q\"\\\n\u{1}é", "c": [:]]
        #expect(value.jsonText == #"{"a":"q\"\\\n\u0001é","b":[1,2.5,null,true],"c":{}}"#)
        #expect(QMP.JSONValue.double(.nan).jsonText == "null")
        #expect(QMP.JSONValue.double(1e20).jsonText == "1e+20")
        #expect("\(QMP.JSONValue.int(-7))" == "-7")
    }

    @Test("what it writes, Foundation reads back as the same value")
    func foundationReadsOurText() throws {
        let value: QMP.JSONValue = [
            "execute": "human-monitor-command", "arguments": ["command-line": "info\tversion\n", "n": 3, "x": -0.25],
        ]
        let object = try JSONSerialization.jsonObject(with: Data(value.jsonText.utf8)) as? [String: Any]
        #expect(object?["execute"] as? String == "human-monitor-command")
        let arguments = object?["arguments"] as? [String: Any]
        #expect(arguments?["command-line"] as? String == "info\tversion\n")
        #expect(arguments?["n"] as? Int == 3)
        #expect(arguments?["x"] as? Double == -0.25)
    }

    @Test("Codable round-trips through Foundation's JSONEncoder and JSONDecoder")
    func codable() throws {
        let value: QMP.JSONValue = ["s": "x", "i": 1, "d": 2.5, "b": false, "n": nil, "a": [1, "two"], "o": ["k": [:]]]
        let data = try JSONEncoder().encode(value)
        let decoded = try JSONDecoder().decode(QMP.JSONValue.self, from: data)
        #expect(decoded == value)
        #expect(try QMP.JSONValue(parsing: Array(data)) == value)
    }

    @Test("greeting, version and event are read from QEMU 7.2's wire format")
    func wireTypes() throws {
        let greeting = try #require(
            QMP.Greeting(message: try QMP.JSONValue(parsing: FakePeer.greeting)))
        #expect(greeting.version.description == "7.2.0 (Debian 1:7.2+dfsg-7+deb12u7)")
        #expect(QMP.Greeting(message: ["QMP": ["capabilities": []]]) == nil)
        let event = try #require(
            QMP.Event(message: try QMP.JSONValue(parsing: FakePeer.eventLine("SHUTDOWN", data: #"{"guest": true}"#))))
        #expect(event == QMP.Event(name: "SHUTDOWN", data: ["guest": true], timestamp: 1_700_000_000.25))
        #expect(QMP.Event(message: ["event": 1]) == nil)
    }
}

@Suite("LineBuffer framing")
struct LineBufferTests {
    private func lines(_ buffer: inout LineBuffer) throws -> [String] {
        var result: [String] = []
        while let range = try buffer.nextLine() {
            result.append(buffer.withBytes(in: range) { String(decoding: $0, as: UTF8.self) })
        }
        return result
    }

    @Test("a stream split into two chunks at every byte boundary yields the same lines")
    func everySplit() throws {
        let stream = Array("{\"a\":1}\r\n\n{\"b\":[2]}\n{\"c\":\"\\r\"}\r\n".utf8)
        for split in 0...stream.count {
            var buffer = LineBuffer(maxLineBytes: 1024)
            buffer.append(stream[..<split])
            var got = try lines(&buffer)
            buffer.append(stream[split...])
            got += try lines(&buffer)
            #expect(got == [#"{"a":1}"#, "", #"{"b":[2]}"#, #"{"c":"\r"}"#], "split at \(split)")
            #expect(buffer.pendingByteCount == 0)
        }
    }

    @Test("a stream fed one byte at a time yields the same lines")
    func byteByByte() throws {
        var buffer = LineBuffer(maxLineBytes: 64)
        var got: [String] = []
        for byte in "one\r\ntwo\nthree\r\n".utf8 {
            buffer.append([byte])
            got += try lines(&buffer)
        }
        #expect(got == ["one", "two", "three"])
    }

    @Test("a line over the limit throws whether or not its newline has arrived; one at the limit passes")
    func limit() throws {
        var atLimit = LineBuffer(maxLineBytes: 8)
        atLimit.append(Array("12345678\r\n".utf8))
        #expect(try lines(&atLimit) == ["12345678"])

        var complete = LineBuffer(maxLineBytes: 8)
        complete.append(Array("123456789\n".utf8))
        #expect(throws: LineBuffer.LineTooLong.self) { try complete.nextLine() }

        var partial = LineBuffer(maxLineBytes: 8)
        partial.append(Array("1234567890".utf8))
        #expect(throws: LineBuffer.LineTooLong.self) { try partial.nextLine() }
    }

    @Test("lines larger than the read size grow the buffer and come out whole")
    func largeLines() throws {
        var buffer = LineBuffer(maxLineBytes: 4 << 20)
        let big = String(repeating: "z", count: 3 << 20)
        let stream = Array("small\n\(big)\r\nafter\n".utf8)
        var got: [String] = []
        var offset = 0
        while offset < stream.count {
            let end = min(offset + 65536, stream.count)
            buffer.append(stream[offset..<end])
            got += try lines(&buffer)
            offset = end
        }
        #expect(got.count == 3)
        #expect(got[0] == "small")
        #expect(got[1].utf8.count == 3 << 20)
        #expect(got[2] == "after")
    }
}
