import Foundation
@testable import GuestKit
import Testing

@Suite("The session protocol's messages, built and parsed (pure)")
struct SessionProtocolTests {
    @Test("the guest's reports parse into messages; anything else is ignored")
    func parsesReports() {
        #expect(SessionProtocol.parse("ready") == .ready)
        #expect(SessionProtocol.parse("exit 2 127 10 33") == .exit(slot: 2, .init(exitCode: 127, stdoutBytes: 10, stderrBytes: 33)))
        #expect(SessionProtocol.parse("stopped 0 143 0 0") == .stopped(slot: 0, .init(exitCode: 143, stdoutBytes: 0, stderrBytes: 0)))
        #expect(SessionProtocol.parse("error - mounting share src at /mnt/src failed") == .error(slot: nil, "mounting share src at /mnt/src failed"))
        #expect(SessionProtocol.parse("error 1 cannot change to the working directory /x") == .error(slot: 1, "cannot change to the working directory /x"))
        for junk in ["", "exit", "exit 1 2 3", "exit a b c d", "ready now", "launch-init: hello", "exit 1 2 3 4 5"] {
            #expect(SessionProtocol.parse(junk) == nil, "\(junk)")
        }
    }

    @Test("a run request carries its script's exact byte length, so the init reads no more and no less")
    func runMessageLength() {
        let script = SessionProtocol.commandScript(["printf", "%s\n", "héllo wörld", "it's"], workingDirectory: "/a b",
                                                   environment: ["B": "2", "A": "x y"], framedStdin: true)
        let message = SessionProtocol.runMessage(slot: 3, script: script)
        let newline = message.firstIndex(of: 0x0a)!
        let header = String(decoding: message[..<newline], as: UTF8.self)
        #expect(header == "run 3 \(script.utf8.count)")
        #expect(Array(message[(newline + 1)...]) == Array(script.utf8))
    }

    @Test("the command script sets the working directory, sorted environment, stdin mode and argv, all shell-quoted")
    func commandScript() {
        let script = SessionProtocol.commandScript(["sh", "-c", "echo $HOME; exit 3"], workingDirectory: "/tmp/it's here",
                                                   environment: ["ZED": "z", "ALPHA": "a b"], framedStdin: true)
        #expect(script == """
            workdir='/tmp/it'\\''s here'
            export 'ALPHA=a b'
            export ZED=z
            stdin_mode=port
            set -- sh -c 'echo $HOME; exit 3'

            """)
        #expect(SessionProtocol.commandScript(["true"], workingDirectory: nil, environment: [:], framedStdin: false) == "set -- true\n")
    }

    @Test("the command script survives a real shell: argv and environment arrive byte for byte", arguments: [
        ["printf", "%s|", "a b", "", "$(reboot)", "`id`", "it's", "new\nline"],
    ])
    func scriptThroughRealShell(argv: [String]) throws {
        let script = SessionProtocol.commandScript(argv, workingDirectory: "/", environment: ["V": "$x 'y'"], framedStdin: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/busybox")
        process.arguments = ["sh", "-c", script + "cd \"$workdir\" && \"$@\" && printf '%s' \"$V\""]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(output == argv.dropFirst(2).map { "\($0)|" }.joined() + "$x 'y'")
    }

    @Test("stdin frames are a length line and the bytes; the end is a zero-length frame")
    func stdinFrames() {
        #expect(SessionProtocol.stdinFrame(Array("hi\n".utf8)) == Array("3\nhi\n".utf8))
        #expect(SessionProtocol.stdinEnd == Array("0\n".utf8))
    }

    @Test("session ports: the control port, then three per slot, in plan order")
    func ports() {
        #expect(SessionProtocol.portNames(slots: 2) == ["launch.ctl", "launch.0.in", "launch.0.out", "launch.0.err",
                                                        "launch.1.in", "launch.1.out", "launch.1.err"])
        #expect(1 + 3 * SessionProtocol.maxSlots <= 30 - 2, "room for a couple of consoles beside the widest session")
    }

    @Test("environment names the guest's shell can export", arguments: [
        ("PATH", true), ("_X1", true), ("a_b", true), ("1A", false), ("A-B", false), ("", false), ("A B", false), ("É", false),
    ])
    func environmentNames(name: String, valid: Bool) {
        #expect(SessionProtocol.isValidEnvironmentName(name) == valid)
    }
}
