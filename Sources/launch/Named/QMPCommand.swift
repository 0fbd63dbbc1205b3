import ArgumentParser
import Foundation
import QEMULaunch
import QMP

/// `launch qmp NAME [JSON]`: one QMP command to a named VM, JSON in, JSON out.
struct QMPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qmp",
        abstract: "Send one QMP command to a named VM: JSON in, JSON out.",
        discussion: """
            The command is a QMP object, {"execute": "NAME", "arguments": {...}}, given as an \
            argument or on stdin. Prints QEMU's reply, {"return": ...}, or {"error": {"class": \
            ..., "desc": ...}} and exits 1. It goes through the VM's qmp.sock (a second monitor; \
            the supervisor has its own), which serves one client at a time.
            """
    )

    @Argument(help: "The VM's name.")
    var name: String

    @Argument(help: "The QMP command as JSON (default: read from stdin).")
    var command: String?

    func run() async throws {
        let vm = try findNamed(name, in: VMRegistry())
        let text = command ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let request: QMP.JSONValue
        do {
            request = try QMP.JSONValue(parsing: text)
        } catch {
            throw ValidationError("not JSON: \(error)")
        }
        guard let execute = request["execute"]?.stringValue else {
            throw ValidationError("give a QMP command object: {\"execute\": \"query-status\"}")
        }
        let arguments = request["arguments"]?.objectValue
        if request["arguments"] != nil, arguments == nil { throw ValidationError("\"arguments\" must be an object") }
        let client = try await withFailureMapping { try await vm.connectQMP() }
        defer { client.close() }
        do {
            let reply = try await client.execute(execute, arguments: arguments)
            print(QMP.JSONValue.object(["return": reply]).jsonText)
        } catch .commandFailed(_, let errorClass, let description) {
            print(QMP.JSONValue.object(["error": .object(["class": .string(errorClass), "desc": .string(description)])]).jsonText)
            throw ExitCode(1)
        } catch {
            FileHandle.standardError.write(Data("launch: QMP \(execute) to \(name): \(error)\n".utf8))
            throw ExitCode(LaunchError.Code.qemuFailed)
        }
    }
}
