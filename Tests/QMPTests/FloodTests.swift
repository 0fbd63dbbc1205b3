import Foundation
import Testing

@testable import QMP

@Suite("A peer that floods events: memory stays bounded and commands still answer")
struct FloodTests {
    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    @Test("200,000 events to a subscriber that never reads: the stream keeps its newest 1024, RSS grows little, a command still answers")
    func eventFlood() async throws {
        let count = 200_000
        let server = try FakeQMPServer { peer in
            try peer.negotiate()
            // A batch of events in one write, again and again: the client's reader must keep up.
            let line = Array((FakePeer.eventLine("FLOOD", data: #"{"padding": "0123456789012345678901234567890123456789"}"#) + "\r\n").utf8)
            var batch: [UInt8] = []
            for _ in 0..<1000 { batch += line }
            for _ in 0..<(count / 1000) { try peer.send(bytes: batch) }
            let command = try peer.readCommand(timeout: .seconds(30))
            try peer.reply(to: command, returning: #"{"status": "running", "running": true}"#)
            try peer.waitForClientClose(timeout: .seconds(30))
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let before = Self.residentKiB()
        let stream = client.events()   // never read until the end
        // Every event passes through the subscriber; wait until the last one is in recentEvents.
        #expect(await eventually(timeout: .seconds(60)) { client.recentEvents.count == 64 })
        let status = try await client.queryStatus(timeout: .seconds(30))
        #expect(status.running)
        let growth = Self.residentKiB() - before
        // 200k events of ~150 bytes are 30 MB on the wire; the client may hold only its bounded buffers.
        #expect(growth < 16 * 1024, "RSS grew \(growth) KiB")
        client.close()
        let kept = await stream.reduce(0) { count, _ in count + 1 }
        #expect(kept <= 1024)
        #expect(kept > 0)
        await server.finish()
    }
}
