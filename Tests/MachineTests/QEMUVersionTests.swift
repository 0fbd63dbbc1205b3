import Foundation
import GuestKit
import Logging
import QEMULaunch
import Testing

/// What the QEMU on PATH needs: CI runs this suite on Debian 12's QEMU 7.2, then again
/// with bookworm-backports' QEMU 10.0 first on PATH (`Scripts/fetch-qemu-backports`).
@Suite("Every bundled machine boots and runs a command on the QEMU found on PATH (slow: boots guests under TCG)", .serialized)
struct QEMUVersionTests {
    /// The capabilities of the x86 QEMU on PATH, read as `launch` reads them.
    static func hostQEMU() async throws -> QEMUCapabilities {
        let binary = try #require(HostProbe.current().qemu[.x86_64]?.path, "no qemu-system-x86_64 on PATH")
        return try await QEMUCapabilities.of(binary)
    }

    static var hasArm64Guest: Bool {
        FileManager.default.fileExists(atPath: CLITests.root.appendingPathComponent(".cache/guests/arm64/.complete").path)
            && HostProbe.current().qemu[.aarch64] != nil
    }

    @Test("`launch run` of each bundled profile runs its command and exits 0: microvm (virtiofs or 9p), 9p microvm, q35, pc",
          arguments: ["Profiles/hello.json", "Examples/profiles/ninep.json", "Profiles/q35.json", "Profiles/pc.json"])
    func bundledProfile(_ profile: String) async throws {
        let qemu = try await Self.hostQEMU()
        let outcome = try CLITests.launch(["run", profile])
        #expect(outcome.status == 0, "QEMU \(qemu.shortVersion): \(outcome.stderr)")
        #expect(!outcome.stdout.isEmpty, "QEMU \(qemu.shortVersion): no output from the guest command")
        // The QEMU version and microvm's firmware are each said in one line.
        #expect(outcome.stderr.contains("qemu: \(qemu.shortVersion) "), "\(outcome.stderr)")
        if profile.contains("hello") || profile.contains("ninep") {
            #expect(outcome.stderr.contains("microvm firmware: "), "\(outcome.stderr)")
        }
    }

    @Test("`launch run Profiles/arm64.json`: an aarch64 virt guest runs its command",
          .enabled(if: hasArm64Guest, "needs qemu-system-aarch64 and .cache/guests/arm64 (Scripts/fetch-guest-arm64)"))
    func arm64Virt() async throws {
        let outcome = try CLITests.launch(["run", "Profiles/arm64.json"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("aarch64"), "\(outcome.stdout)")
    }

    @Test("with no virtiofsd, Profiles/hello.json's auto share is 9p: the command still reads the shared file, and one line says why")
    func helloWithoutVirtiofsd() async throws {
        let qemu = try await Self.hostQEMU()
        var profile = try Profile.load(contentsOf: CLITests.root.appendingPathComponent("Profiles/hello.json"))
        profile.kernel = try Fixture.kernel
        profile.accel = .tcg
        profile.timeouts.boot = TimeLimit(.seconds(120))
        profile.timeouts.run = TimeLimit(.seconds(240))
        // A host like Debian 13 without the virtiofsd package, or Debian 12 with QEMU 10 from backports.
        var host = HostProbe.current(for: profile)
        host.virtiofsd = nil
        host.kvm = .absent("the tests run on TCG")
        var options = GuestKit.Options()
        options.host = host
        let lines = LogLines()
        options.logger = lines.logger
        let result = try await GuestKit.run(profile, options: options)
        #expect(result.exitCode == 0, "QEMU \(qemu.shortVersion): \(result.stderrText)")
        #expect(result.stdoutText.hasSuffix("hello from the host, read through virtiofs\n"))
        let said = lines.all.filter { $0.contains("shares[0] \"shared\": 9p (auto: no virtiofsd on this host") }
        #expect(said.count == 1, "\(lines.all)")
    }

    @Test("with no virtiofsd, a virtiofs share is refused before anything starts, with what to install")
    func virtiofsWithoutVirtiofsd() async throws {
        var profile = try Fixture.guestProfile("novfsd", command: ["true"])
        profile.shares = [Profile.Share(tag: "s", path: "/tmp")]
        var host = HostProbe.current(for: profile)
        host.virtiofsd = nil
        var options = GuestKit.Options()
        options.host = host
        let started = ContinuousClock.now
        do {
            _ = try await GuestKit.run(profile, options: options)
            Issue.record("a virtiofs share ran without a virtiofsd")
        } catch {
            #expect(error.code == .invalidProfile)
            #expect("\(error)".contains("install the package that ships the Rust virtiofsd"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
    }
}

/// Collects every log message (info and up), to count the lines a launch says.
final class LogLines: Sendable {
    private let storage = Mutex<[String]>([])

    var all: [String] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(lines: self) }
        logger.logLevel = .info
        return logger
    }

    struct Handler: LogHandler {
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.storage.withLock { $0.append(event.message.description) }
        }
    }
}
