import Foundation
import Testing

@testable import GuestKit

#if canImport(Glibc)
import Glibc
#endif

@Suite("Decompression tools are spawned like every child", .serialized)
struct DecompressorSpawnTests {
    @Test("the decompressor runs through the shim (a session of its own, so the parent-death signal too), and its stderr is reported")
    func throughShim() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dspawn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // A stand-in `xz` first on PATH that reports its pid and session on stderr.
        let tool = folder.appendingPathComponent("xz")
        try Data("#!/bin/sh\nexec cat /proc/self/stat >&2\n".utf8).write(to: tool)
        chmod(tool.path, 0o755)
        let input = folder.appendingPathComponent("in")
        try Data("not xz".utf8).write(to: input)
        let oldPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        setenv("PATH", "\(folder.path):\(oldPath)", 1)
        defer { setenv("PATH", oldPath, 1) }

        let outcome = try Decompressor.run(.xz, input: input, output: folder.appendingPathComponent("out"))
        #expect(outcome.status == 0 && !outcome.signalled)
        let stat = outcome.stderr
        let pid = Int(stat.prefix(while: { $0 != " " }))
        let afterName = stat.lastIndex(of: ")").map { stat[stat.index(after: $0)...].split(separator: " ") } ?? []
        let session = afterName.count > 3 ? Int(afterName[3]) : nil
        #expect(pid != nil && session == pid, "stderr: \(stat)")
    }
}
