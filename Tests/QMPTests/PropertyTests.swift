import Foundation
import PropertyBased
import TestSupport
import Testing

@testable import QMP

#if canImport(Glibc)
import Glibc
#endif

@Suite("Properties: hostile bytes never crash or hang the client")
struct PropertyTests {
    /// Lines a QMP peer might send, whole or cut, to mix with random bytes.
    static let fragments: [String] = [
        FakePeer.greeting + "\r\n",
        #"{"return": {}, "id": 1}"# + "\r\n",
        #"{"return": {"status": "running", "running": true}, "id": 2}"# + "\n",
        #"{"error": {"class": "GenericError", "desc": "x"}, "id": 2}"# + "\r\n",
        FakePeer.eventLine("STOP") + "\r\n",
        #"{"return": [1, 2, {"a": "\u00e9"}], "id": 3}"# + "\n",
        #"{"QMP": {}}"# + "\n",
        "\r\n", "\n", "{", "}", "[", "\"", "\\", "{\"return\": ", "null\n", "\u{FF}",
    ]

    @Test("random bytes never crash the JSON parser: each gives a value or a malformedMessage")
    func parserNeverCrashes() async {
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...256)) { bytes in
            do throws(QMP.Error) {
                _ = try QMP.JSONValue(parsing: bytes)
            } catch {
                guard case .malformedMessage = error else {
                    Issue.record("unexpected error \(error)")
                    return
                }
            }
        }
    }

    @Test("any JSON value survives writing and parsing unchanged")
    func roundTrip() async throws {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var generator = SplitMix64(seed: seed)
            let value = randomJSON(depth: 0, using: &generator)
            let text = value.jsonText
            let parsed = try QMP.JSONValue(parsing: text)
            #expect(parsed == value, "\(text)")
        }
    }

    @Test("random bytes from the peer end in success or a typed error within the deadline")
    func randomPeerBytes() async throws {
        await propertyCheck(count: 60, input: Gen.uint8().array(of: 0...600), Gen.int(in: 0...2)) { bytes, prefix in
            var stream: [UInt8] = []
            if prefix >= 1 { stream += Array(Self.fragments[0].utf8) }
            if prefix >= 2 { stream += Array(Self.fragments[1].utf8) }
            stream += bytes
            try await Self.runClient(againstPeerBytes: stream)
        }
    }

    @Test("QMP fragments mixed with corruption end in success or a typed error within the deadline")
    func fragmentsAndCorruption() async throws {
        let pieces = Gen.int(in: 0..<Self.fragments.count).array(of: 0...12)
        await propertyCheck(count: 60, input: pieces, Gen.uint8().array(of: 0...8)) { indices, noise in
            var stream: [UInt8] = []
            for (position, index) in indices.enumerated() {
                stream.append(contentsOf: Self.fragments[index].utf8)
                guard position < noise.count else { continue }
                let byte: UInt8 = noise[position]
                if byte % 3 == 0 { stream.append(byte) }
            }
            try await Self.runClient(againstPeerBytes: stream)
        }
    }

    /// Connects over a socketpair whose other end holds `stream` and then EOF; the
    /// peer stays open for reading so the client's writes don't fail first.
    static func runClient(againstPeerBytes stream: [UInt8]) async throws {
        guard let (mine, peer) = TestPOSIX.socketPair() else {
            Issue.record("socketpair failed")
            return
        }
        defer { TestPOSIX.close(peer) }
        _ = stream.withUnsafeBytes { TestPOSIX.send(peer, $0.baseAddress, $0.count) }
        shutdown(peer, Int32(SHUT_WR))
        let start = ContinuousClock.now
        do {
            let client = try await QMP.Client.connect(fileDescriptor: mine, timeout: .seconds(2), maxLineBytes: 512)
            _ = try? await client.execute("query-status", timeout: .seconds(2))
            _ = try? await client.nextEvent(named: nil, timeout: .milliseconds(20))
            client.close()
        } catch {
            // Any QMP.Error is fine: the type system already guarantees nothing else.
            #expect(!error.description.isEmpty)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}


func randomJSON(depth: Int, using generator: inout SplitMix64) -> QMP.JSONValue {
    let kind = Int.random(in: 0..<(depth >= 4 ? 5 : 7), using: &generator)
    switch kind {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &generator))
    case 2: return .int(Int.random(in: Int.min...Int.max, using: &generator) >> Int.random(in: 0...63, using: &generator))
    case 3:
        let value = Double(bitPattern: generator.next())
        return .double(value.isFinite ? value : 0.5)
    case 4:
        let count = Int.random(in: 0...12, using: &generator)
        var scalars = String.UnicodeScalarView()
        for _ in 0..<count {
            let pick = Int.random(in: 0...3, using: &generator)
            let range: ClosedRange<UInt32> = pick == 0 ? 0...0x1F : pick == 1 ? 0x20...0x7E : pick == 2 ? 0xA0...0xD7FF : 0x1F300...0x1F64F
            scalars.append(Unicode.Scalar(UInt32.random(in: range, using: &generator))!)
        }
        return .string(String(scalars))
    case 5:
        let count = Int.random(in: 0...4, using: &generator)
        return .array((0..<count).map { _ in randomJSON(depth: depth + 1, using: &generator) })
    default:
        let count = Int.random(in: 0...4, using: &generator)
        var members: [String: QMP.JSONValue] = [:]
        for index in 0..<count { members["k\(index)\(["", "\"", "é", "\n"][index % 4])"] = randomJSON(depth: depth + 1, using: &generator) }
        return .object(members)
    }
}
