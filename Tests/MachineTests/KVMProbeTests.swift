import Foundation
import GuestKit
import QEMULaunch
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The KVM health probe's three verdicts, each reached with the real QEMU and the host's
/// kernel, whatever this host's /dev/kvm does. A wrapper script stands in for QEMU's path
/// and changes only what the case needs: the probe's own argv is used as is otherwise.
@Suite("The KVM health probe's verdicts, with the real QEMU (slow: boots the kernel under TCG)", .serialized)
struct KVMProbeTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"

    /// A wrapper that rewrites `-accel kvm` and `-cpu host` as given (and microvm as pc, which
    /// boots under TCG as it is), then execs QEMU with `extra`.
    func wrapper(in folder: URL, accel: String, cpu: String, extra: String = "") throws -> String {
        let path = folder.appendingPathComponent("qemu-wrapper").path
        let script = """
            #!/bin/sh
            prev=""
            for a in "$@"; do
              if [ "$prev" = "-accel" ] && [ "$a" = "kvm" ]; then a="\(accel)"; fi
              if [ "$prev" = "-cpu" ] && [ "$a" = "host" ]; then a="\(cpu)"; fi
              # microvm under TCG hangs calibrating the TSC without its PIT (QEMU 7.2): pc boots.
              if [ "$prev" = "-machine" ] && [ "$a" = "microvm" ]; then a="pc"; fi
              set -- "$@" "$a"
              prev="$a"
              shift
            done
            exec \(Self.qemu) "$@" \(extra)
            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        return path
    }

    @Test("a guest whose kernel reaches the root mount is progress: the accelerator is usable")
    func progressed() async throws {
        let folder = try Fixture.temporaryDirectory("kvp")
        defer { try? FileManager.default.removeItem(at: folder) }
        // TCG instead of KVM: the kernel really boots to its root-mount panic.
        let qemu = try wrapper(in: folder, accel: "tcg", cpu: "max")
        let status = await AcceleratorHealth.probe(qemu: qemu, kernel: try Fixture.kernel, arch: .x86_64, deadline: .seconds(240))
        #expect(status == .usable, "\(status)")
    }

    @Test("a guest that never prints is a stall: unusable, saying it made no progress")
    func stalled() async throws {
        let folder = try Fixture.temporaryDirectory("kvs")
        defer { try? FileManager.default.removeItem(at: folder) }
        // -S: QEMU starts with its vCPUs stopped, as a hung KVM guest looks from outside.
        let qemu = try wrapper(in: folder, accel: "tcg", cpu: "max", extra: "-S")
        let status = await AcceleratorHealth.probe(qemu: qemu, kernel: try Fixture.kernel, arch: .x86_64, deadline: .seconds(2))
        guard case .unusable(let reason, let fix) = status else {
            Issue.record("a silent guest was judged \(status)")
            return
        }
        #expect(reason.contains("made no progress under KVM in 2 s"), "\(reason)")
        #expect(fix.contains("\"accel\": \"tcg\""))
    }

    @Test("QEMU refusing -cpu host, then booting with its default CPU, is unusable with the CPU fix")
    func cpuRefused() async throws {
        let folder = try Fixture.temporaryDirectory("kvc")
        defer { try? FileManager.default.removeItem(at: folder) }
        // A CPU model QEMU doesn't know stands for one KVM refuses: QEMU exits at once.
        let qemu = try wrapper(in: folder, accel: "tcg", cpu: "no-such-cpu")
        let status = await AcceleratorHealth.probe(qemu: qemu, kernel: try Fixture.kernel, arch: .x86_64, deadline: .seconds(240))
        guard case .unusable(let reason, let fix) = status else {
            Issue.record("a refused -cpu host was judged \(status)")
            return
        }
        #expect(reason.contains("can't run a guest with -cpu host"), "\(reason)")
        #expect(reason.contains("with QEMU's default CPU model the guest does boot"), "\(reason)")
        #expect(fix.contains("set \"cpu\""))
    }

    @Test("on this host's own /dev/kvm, the probe's verdict agrees with what a guest-kit boot under KVM really does",
          .enabled(if: FileManager.default.isWritableFile(atPath: "/dev/kvm"), "needs a /dev/kvm this user can open"))
    func verdictMatchesRealBoot() async throws {
        let kernel = try Fixture.kernel
        // Generous for a loaded host: a working KVM reaches the root mount in about a second.
        let verdict = await AcceleratorHealth.probe(qemu: Self.qemu, kernel: kernel, arch: .x86_64, deadline: .seconds(30))
        var profile = try Fixture.guestProfile("kvmreal", command: ["echo", "ran-under-kvm"])
        profile.accel = .kvm
        profile.timeouts.boot = TimeLimit(.seconds(60))
        var options = GuestKit.Options()
        // This host's facts as found, without the probe: KVM is taken at its word, as before the probe existed.
        options.host = HostProbe.current()
        let reality: String
        do {
            let result = try await GuestKit.run(profile, options: options)
            reality = result.exitCode == 0 && result.stdoutText == "ran-under-kvm\n" ? "ran" : "exited \(result.exitCode)"
        } catch {
            reality = "failed: \(error)"
        }
        #expect((verdict == .usable) == (reality == "ran"), "the probe said \(verdict), but a real guest under KVM \(reality)")
    }
}
