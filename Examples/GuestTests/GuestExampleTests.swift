// An example for test runners: this is how a project tests its code inside a
// real Linux guest with GuestKit. Each test boots the host's kernel under QEMU
// (about 2-3 s under TCG), runs one command, and checks what came back.
//
// Copy this file and `Examples/profiles/guest-tests.json` into your project,
// depend on the `GuestKit` and `QEMULaunch` products, and adjust the share.

import Foundation
import GuestKit
import QEMULaunch
import Testing

@Suite("Example: commands in a guest, the way a project's tests would run them (slow: boots a VM per test)", .serialized)
struct GuestExampleTests {
    /// The example profile: the host kernel, this repository shared read-only at /project.
    static func profile() throws -> Profile {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return try Profile.load(contentsOf: examples.appendingPathComponent("profiles/guest-tests.json"))
    }

    func run(_ command: String) async throws -> GuestKit.Result {
        var options = GuestKit.Options()
        options.command = ["sh", "-c", command]
        return try await GuestKit.run(try Self.profile(), options: options)
    }

    @Test("the guest runs the host's kernel release")
    func kernelRelease() async throws {
        let result = try await run("uname -r")
        let release = try #require(KernelLocator.newest()?.release)
        #expect(result.exitCode == 0, "stderr: \(result.stderrText)")
        #expect(result.stdoutText == release + "\n")
    }

    @Test("the project's files are visible in the guest through the share")
    func projectFilesVisible() async throws {
        let result = try await run("head -n 1 /project/README.md")
        #expect(result.exitCode == 0, "stderr: \(result.stderrText)")
        #expect(result.stdoutText.hasPrefix("# swift-qemu-launch"))
    }

    @Test("a failing check reports its exit code and its stderr")
    func failureIsReported() async throws {
        let result = try await run("test -e /project/no-such-file || { echo 'missing file' >&2; exit 3; }")
        #expect(result.exitCode == 3)
        #expect(result.stderrText == "missing file\n")
        #expect(result.stdout.isEmpty)
    }
}
