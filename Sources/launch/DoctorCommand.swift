import ArgumentParser
import Foundation
import GuestKit
import QEMULaunch

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host: QEMU, KVM health, virtiofsd, busybox, kernels, firmware, limits; say how to fix what isn't right.",
        discussion: """
            One line per check: ok, warn or fail, and for each warn or fail the exact fix. \
            KVM is not only opened but tried: a short test boot shows whether guests make \
            progress under it (the verdict is cached; see the README). Exits 0 when this \
            host can run the bundled profiles, 1 otherwise.
            """
    )

    @Flag(help: "Print the checks as a JSON array of {name, status, detail, fix}.")
    var json = false

    func run() async throws {
        let logger = makeLogger(verbose: false, quiet: true)
        // Try KVM for real (or recall the cached verdict) with the newest kernel. Probing and
        // the checks run tools (`--version`, `--help`): on a thread of their own, off the pool.
        var probe = Profile(name: "doctor")
        probe.kernel = KernelLocator.newest()?.path
        var host = await AcceleratorHealth.verified(await onOwnThread { HostProbe.current() }, for: probe, logger: logger)
        // Every QEMU's version and microvm firmware, not only the host arch's.
        for arch in Profile.Arch.allCases {
            var other = Profile(name: "doctor")
            other.arch = arch
            host = await HostProbe.withQEMUCapabilities(host, for: other)
        }
        let facts = host
        let checks = await onOwnThread { HostDoctor.checks(facts) + GuestKit.hostChecks(host: facts) }
        // (A missing virtiofsd is a warning: Profiles/hello.json's share is "auto" and uses 9p then.)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(checks) + Data("\n".utf8))
        } else {
            for check in checks {
                print("\(check.status.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)) \(check.name): \(check.detail)")
                if let fix = check.fix, check.status != .ok { print("     fix: \(fix)") }
            }
        }
        if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }
}
