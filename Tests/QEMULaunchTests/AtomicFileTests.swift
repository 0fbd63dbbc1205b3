import Foundation
import LaunchSupport
import Testing

@Suite("Atomic file writes: unique temporary names, whole files only")
struct AtomicFileTests {
    @Test("many writers of one file at once (threads of one process, as `batch --jobs` builds one cache entry) all succeed, leaving one whole file and no temporaries")
    func concurrentWriters() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("image.cpio").path
        let writers = 8
        // Large enough that writes overlap in time on any machine (a few ms each).
        let contents = (0..<writers).map { Array(repeating: UInt8(65 + $0), count: 8 << 20) }
        let failures = Mutex<[String]>([])
        for _ in 0..<3 {
            DispatchQueue.concurrentPerform(iterations: writers) { i in
                do throws(AtomicFile.Failure) {
                    try AtomicFile.write(contents[i], to: target)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: target)))
        #expect(contents.contains(written), "the file is one writer's bytes, whole")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["image.cpio"])
    }

    @Test("temporary names differ between calls in one process")
    func uniqueNames() {
        let names = Set((0..<1000).map { _ in AtomicFile.temporaryPath(for: "/x/y/file.json") })
        #expect(names.count == 1000)
        #expect(names.allSatisfy { $0.hasPrefix("/x/y/.file.json.") && $0.hasSuffix(".tmp") })
    }

    @Test("durations read as a person writes them", arguments: [
        (Duration.milliseconds(850), "850 ms"), (.seconds(4.991634049), "4.99 s"), (.seconds(0.966090671), "966 ms"),
        (.seconds(10), "10 s"), (.milliseconds(2500), "2.5 s"), (.milliseconds(1050), "1.05 s"),
        (.seconds(125), "2 min 5 s"), (.seconds(3600), "1 h"), (.seconds(5400), "1 h 30 min"),
    ])
    func durationText(duration: Duration, text: String) {
        #expect(formatDuration(duration) == text)
    }
}

import Synchronization
