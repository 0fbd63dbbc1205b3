import ArgumentParser
import Foundation
import QEMULaunch

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this host: QEMU, accelerators, virtiofsd, busybox, kernels; say how to fix what is missing."
    )

    @Flag(help: "Print the checks as JSON.")
    var json = false

    func run() async throws {
        let checks = HostDoctor.checks(HostProbe.current())
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(checks) + Data("\n".utf8))
        } else {
            for check in checks {
                print("\(check.status.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)) \(check.name): \(check.detail)")
                if let fix = check.fix { print("     fix: \(fix)") }
            }
        }
        if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }
}
