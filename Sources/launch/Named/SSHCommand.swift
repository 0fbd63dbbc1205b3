import ArgumentParser
import Foundation
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// `launch ssh NAME [-- CMD]`: ssh into a named VM whose profile has `ssh`.
struct SSHCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh",
        abstract: "Log into a named VM with ssh (its profile has \"ssh\"), or run CMD there.",
        discussion: """
            Runs ssh (openssh-client) through the profile's forward of the guest's sshd port, \
            with the VM's key (the launcher's per-VM key, or the profile's "key") and the VM's \
            own known_hosts (its host key is learnt on first contact). Exits with ssh's status.
            """
    )

    @Argument(help: "The VM's name.")
    var name: String

    @Argument(parsing: .postTerminator, help: "A command to run instead of a login shell (after --).")
    var command: [String] = []

    func run() throws {
        let vm = try findNamed(name, in: VMRegistry())
        guard vm.status == .running, let access = vm.record?.ssh else {
            let why = vm.status != .running ? "it is \(vm.status.rawValue)" : "its profile has no \"ssh\" (add {\"ssh\": {\"port\": 22}} and a forward to it)"
            FileHandle.standardError.write(Data("launch: cannot ssh into \(name): \(why)\n".utf8))
            throw ExitCode(LaunchExit.hostProblem)
        }
        let argv = SSHKey.sshArguments(access, command: command)
        _ = withCStrings(argv) { execvp("ssh", $0) }
        FileHandle.standardError.write(Data("launch: cannot run ssh: \(String(cString: strerror(errno)))\n  fix: install it (Debian and Ubuntu: openssh-client)\n".utf8))
        throw ExitCode(LaunchExit.missingProgram)
    }
}

/// NULL-terminated C strings of `strings` for the length of `body`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
