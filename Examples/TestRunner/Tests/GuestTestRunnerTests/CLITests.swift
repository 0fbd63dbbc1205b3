// The `launch` command as a person (or a CI script) runs it: a subprocess.

import Foundation
import Testing

@Suite("launch run with several -c commands (slow: boots a guest)")
struct CLITests {
    /// `launch`, built in this package (`swift build --product launch` here first).
    static var launch: String? {
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return [".build/debug/launch", ".build/x86_64-unknown-linux-gnu/debug/launch"]
            .map { package.appendingPathComponent($0).path }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func profileFile(in folder: URL) throws -> URL {
        let kernel = try #require(try FileManager.default.contentsOfDirectory(atPath: "/boot").filter { $0.hasPrefix("vmlinuz-") }.sorted().last)
        let json = """
            {"name": "cli", "machine": "microvm", "accel": "tcg", "memory": "256M", "kernel": "/boot/\(kernel)",
             "runtimeDir": "\(folder.path)", "timeouts": {"boot": "120s", "run": "120s", "shutdown": "10s"}}
            """
        let url = folder.appendingPathComponent("cli.json")
        try Data(json.utf8).write(to: url)
        return url
    }

    @Test("-c A -c B runs both in one boot, in order, and exits with the first failing code; later commands don't run",
          .enabled(if: launch != nil, "build the launch executable in this package first: swift build --product launch"))
    func severalCommandsOneBoot() async throws {
        let folder = try temporaryFolder("cli")
        defer { try? FileManager.default.removeItem(at: folder) }
        let profile = try Self.profileFile(in: folder)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.launch!)
        process.arguments = ["run", profile.path, "-q",
                             "-c", "cat /proc/sys/kernel/random/boot_id",
                             "-c", "cat /proc/sys/kernel/random/boot_id; exit 5",
                             "-c", "echo never"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(process.terminationStatus == 5)
        #expect(lines.count == 2, "two boot ids and nothing else: \(lines)")
        #expect(Set(lines).count == 1, "both commands ran in the same boot: \(lines)")
        #expect(processes(mentioning: folder.path).isEmpty)
    }
}
