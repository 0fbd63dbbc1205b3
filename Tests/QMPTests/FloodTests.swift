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
            // A batch of numbered events in one write, again and again: the client's reader must keep up.
            for first in stride(from: 0, to: count, by: 1000) {
                var batch: [UInt8] = []
                for seq in first..<(first + 1000) {
                    batch += Array((FakePeer.eventLine("FLOOD", data: #"{"seq": \#(seq), "padding": "0123456789012345678901234567890123456789"}"#) + "\r\n").utf8)
                }
                try peer.send(bytes: batch)
            }
            let command = try peer.readCommand(timeout: .seconds(30))
            try peer.reply(to: command, returning: #"{"status": "running", "running": true}"#)
            try peer.waitForClientClose(timeout: .seconds(30))
        }
        let client = try await QMP.Client.connect(unixPath: server.path)
        let before = Self.residentKiB()
        let stream = client.events()   // never read until the end
        // The reply comes after every event on the same stream: once it is here, all were read.
        let status = try await client.queryStatus(timeout: .seconds(60))
        #expect(status.running)
        #expect(client.recentEvents.count == 64)
        #expect(client.recentEvents.last?.data["seq"]?.intValue == count - 1, "the newest event is the last one sent")
        let growth = Self.residentKiB() - before
        // 200k events of ~150 bytes are 30 MB on the wire; the client may hold only its bounded buffers.
        #expect(growth < 16 * 1024, "RSS grew \(growth) KiB")
        client.close()
        let kept = await stream.reduce(into: [Int]()) { seqs, event in seqs.append(event.data["seq"]?.intValue ?? -1) }
        // Exactly the newest 1024, in order: the oldest were dropped, none of the newest.
        #expect(kept == Array((count - 1024)..<count), "kept \(kept.count), first \(kept.first ?? -1)")
        await server.finish()
    }
}
