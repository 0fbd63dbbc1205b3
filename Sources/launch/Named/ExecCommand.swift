import ArgumentParser
import Foundation
import GuestKit
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command in a running VM and exit with its exit code.",
        discussion: """
            The command's stdout and stderr come to this program's stdout and stderr, split \
            as in the guest; this program's stdin is the command's (use --no-stdin for EOF). \
            Ctrl-C ends this program and kills the command in the guest; the VM goes on. \
            It works with VMs the guest kit's init runs (launch up of a profile without \
            its own initrd).
            """
    )

    @Argument(help: "The VM's name (as `launch list` shows it).")
    var name: String

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp("A shell command to run in the guest (sh -c), instead of one after --.", valueName: "command"))
    var shell: String?

    @Option(name: [.customShort("e"), .customLong("env")], help: ArgumentHelp("Set an environment variable for the command (repeatable).", valueName: "NAME=VALUE"))
    var environment: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")], help: "The working directory in the guest.")
    var workingDirectory: String?

    @Flag(help: "The command reads EOF as stdin, not this program's stdin.")
    var noStdin = false

    @Option(help: ArgumentHelp("Kill the command in the guest after this many seconds (exit 124).", valueName: "seconds"))
    var timeout: Double?

    @Argument(parsing: .postTerminator, help: "The command to run in the guest (after --).")
    var command: [String] = []

    func validate() throws {
        if !RecordPath.isValidName(name) { throw ValidationError("\"\(name)\" is not a VM name: use 1-64 letters, digits, '.', '_' or '-'") }
        if shell != nil && !command.isEmpty { throw ValidationError("give the command either after -- or with -c, not both") }
        if shell == nil && command.isEmpty { throw ValidationError("give a command: launch exec \(name) -- CMD ARGS..., or -c 'SHELL COMMAND'") }
        if let bad = environment.first(where: { !$0.contains("=") }) { throw ValidationError("-e \(bad): give NAME=VALUE") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be more than 0 seconds") }
    }

    func run() async throws {
        var variables: [String: String] = [:]
        for pair in environment {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            variables[String(parts[0])] = String(parts[1])
        }
        let options = RemoteSession.CommandOptions(
            stdin: noStdin ? nil : STDIN_FILENO, environment: variables, workingDirectory: workingDirectory,
            timeout: timeout.map { .milliseconds(Int64($0 * 1000)) })
        let session = RemoteSession(socketPath: RecordPath.folder(for: name) + "/exec.sock")
        let status: Int32
        do {
            status = try await session.run(shell.map { ["sh", "-c", $0] } ?? command, options: options)
        } catch {
            var error = error
            error.message = "VM \(name): \(error.message)"
            throw fail(error)
        }
        if status != 0 { throw ExitCode(status) }
    }
}
