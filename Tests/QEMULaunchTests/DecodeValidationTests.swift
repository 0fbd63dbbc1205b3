import Foundation
import Testing

@testable import QEMULaunch

/// A profile text and every problem decoding it must report.
struct DecodeCase: Sendable, CustomTestStringConvertible {
    var title: String
    var json: String
    var problems: [ProfileProblem]
    var testDescription: String { title }
}

private func problem(_ path: String, _ message: String, fix: String? = nil) -> ProfileProblem {
    ProfileProblem(path: path, message: message, fix: fix)
}

@Suite("Profile decoding reports each problem with its JSON path, message and fix")
struct DecodeValidationTests {
    @Test("a bad profile gives exactly these problems", arguments: DecodeCase.all)
    func decodeProblemsAreExact(_ c: DecodeCase) {
        #expect(decodeProblems(c.json) == c.problems)
    }

    @Test("a profile with many problems lists all of them at once, each once")
    func everyDecodeProblemAtOnce() {
        let json = """
            {"memroy": "1G", "kernal": "/boot/vmlinuz", "cpus": "two", "arch": "arm64", "memory": "12X",
             "accel": 3, "shares": [{"tag": "src", "pth": "/tmp"}, {"tag": 7, "path": "/tmp", "readOnly": "yes"}],
             "disks": [{"path": "/tmp/d.img", "format": "vmdk"}],
             "network": {"mode": "bridge", "forwards": [{"host": "22"}]},
             "command": "uname -r", "consoles": "ttyS1",
             "timeouts": {"boot": "soon", "run": -1, "idle": "1s"},
             "qemu": {"binary": 5, "args": []}, "virtiofsd": {"cache": "sometimes"}}
            """
        let expected = [
            problem("memroy", "unknown key \"memroy\" in a profile", fix: "did you mean \"memory\"?"),
            problem("kernal", "unknown key \"kernal\" in a profile", fix: "did you mean \"kernel\"?"),
            problem("name", "missing required key \"name\"", fix: "add a name like \"hello\""),
            problem("arch", "\"arm64\" is not one of \"x86_64\", \"aarch64\""),
            problem("accel", "expected one of \"auto\", \"kvm\", \"hvf\", \"tcg\""),
            problem("cpus", "expected a whole number of CPUs"),
            problem("memory", "expected a size like \"512M\" or \"2G\" (not a size: \"12X\")"),
            problem("shares[0].pth", "unknown key \"pth\" in a share", fix: "did you mean \"path\"?"),
            problem("shares[0].path", "missing required key \"path\"", fix: "add the host folder to share"),
            problem("shares[1].tag", "expected a mount tag like \"src\""),
            problem("shares[1].readOnly", "expected true or false"),
            problem("disks[0].format", "\"vmdk\" is not one of \"raw\", \"qcow2\""),
            problem("network.mode", "\"bridge\" is not one of \"none\", \"user\""),
            problem("network.forwards[0].host", "expected a host port number"),
            problem("network.forwards[0].guest", "missing required key \"guest\"", fix: "add a guest port number"),
            problem("command", "expected an argv array of strings, like [\"uname\", \"-r\"]"),
            problem("consoles", "expected an array of port names"),
            problem("qemu.args", "unknown key \"args\" in qemu options", fix: "remove it"),
            problem("qemu.binary", "expected a program path or name"),
            problem("virtiofsd.cache", "\"sometimes\" is not one of \"auto\", \"always\", \"never\""),
            problem("timeouts.idle", "unknown key \"idle\" in timeouts", fix: "remove it"),
            problem("timeouts.boot", "expected a duration like \"30s\", \"500ms\" or \"10m\" (not a duration: \"soon\")"),
            problem("timeouts.run", "expected a duration like \"30s\", \"500ms\" or \"10m\""),
        ]
        let found = decodeProblems(json)
        // Unknown keys come in the decoder's key order, which JSON objects don't fix: compare as sets.
        #expect(Set(found) == Set(expected))
        #expect(found.count == expected.count, "a problem was reported twice: \(found)")
    }

    @Test("ProfileProblems reads as a list a person can act on")
    func problemsDescription() {
        do {
            _ = try Profile.decode(Data(#"{"name": "x", "cpus": "two", "memroy": "1G"}"#.utf8), source: "Profiles/x.json")
            Issue.record("decoding should have failed")
        } catch {
            #expect(error.source == "Profiles/x.json")
            let lines = error.description.split(separator: "\n").map(String.init)
            #expect(lines.first == "invalid profile Profiles/x.json: 2 problems")
            #expect(Set(lines.dropFirst()) == [
                "  - memroy: unknown key \"memroy\" in a profile (fix: did you mean \"memory\"?)",
                "  - cpus: expected a whole number of CPUs",
            ])
        }
        let one = ProfileProblems(source: "p", problems: [problem("$", "bad")])
        #expect(one.description == "invalid profile p: 1 problem\n  - $: bad")
    }

    @Test("JSON null for an optional key means its default")
    func nullIsDefault() throws {
        let p = try profile(#"{"name": "x", "cpus": null, "memory": null, "network": null, "accel": null}"#)
        #expect(p.cpus == 1)
        #expect(p.memory == .mebibytes(512))
        #expect(p.network == .init())
        #expect(p.accel == .auto)
    }

    @Test("a minimal profile gets the documented defaults")
    func defaults() throws {
        let p = try profile(#"{"name": "x"}"#)
        #expect(p.arch == nil && p.machine == nil)
        #expect(p.accel == .auto && p.firmware == .none && p.transport == .auto)
        #expect(p.cpus == 1 && p.memory == .mebibytes(512))
        #expect(p.kernel == nil && p.command == nil && p.shares.isEmpty && p.disks.isEmpty && p.consoles.isEmpty)
        #expect(p.network == Profile.Network(mode: .none, forwards: []))
        #expect(p.timeouts.boot == TimeLimit(.seconds(60)))
        #expect(p.timeouts.run == nil)
        #expect(p.timeouts.shutdown == TimeLimit(.seconds(10)))
        #expect(p.virtiofsd.cache == .auto)
    }

    @Test("a share's defaults: virtiofs, read-write, mounted at /mnt/TAG")
    func shareDefaults() throws {
        let p = try profile(#"{"name": "x", "shares": [{"tag": "src", "path": "/tmp"}]}"#)
        #expect(p.shares == [Profile.Share(tag: "src", path: "/tmp", guestPath: nil, readOnly: false, transport: .virtiofs)])
        #expect(p.shares[0].mountPoint == "/mnt/src")
    }

    @Test("encoding a decoded profile and decoding it again gives the same profile")
    func encodeRoundTrip() throws {
        let p = try profile(ProfileFileTests.everyKeyProfile)
        let data = try JSONEncoder().encode(p)
        #expect(try Profile.decode(data) == p)
    }
}

extension DecodeCase {
    static let all: [DecodeCase] = [
        DecodeCase(
            title: "a typo of a top-level key suggests the key (memroy → memory)",
            json: #"{"name": "x", "memroy": "1G"}"#,
            problems: [problem("memroy", "unknown key \"memroy\" in a profile", fix: "did you mean \"memory\"?")]),
        DecodeCase(
            title: "a key's case is a typo too (Memory → memory)",
            json: #"{"name": "x", "Memory": "1G"}"#,
            problems: [problem("Memory", "unknown key \"Memory\" in a profile", fix: "did you mean \"memory\"?")]),
        DecodeCase(
            title: "a typo inside a share suggests the share's key, at the share's path",
            json: #"{"name": "x", "shares": [{"tag": "a", "path": "/tmp", "readonly": true}]}"#,
            problems: [problem("shares[0].readonly", "unknown key \"readonly\" in a share", fix: "did you mean \"readOnly\"?")]),
        DecodeCase(
            title: "a typo inside a port forward suggests its key",
            json: #"{"name": "x", "network": {"mode": "user", "forwards": [{"host": 1, "guest": 2, "proto": "udp"}]}}"#,
            problems: [problem("network.forwards[0].proto", "unknown key \"proto\" in a port forward", fix: "remove it")]),
        DecodeCase(
            title: "a typo inside timeouts suggests its key",
            json: #"{"name": "x", "timeouts": {"shutdwn": "1s"}}"#,
            problems: [problem("timeouts.shutdwn", "unknown key \"shutdwn\" in timeouts", fix: "did you mean \"shutdown\"?")]),
        DecodeCase(
            title: "an unknown key like no known key is to be removed",
            json: #"{"name": "x", "zzzzzzzzzz": 1}"#,
            problems: [problem("zzzzzzzzzz", "unknown key \"zzzzzzzzzz\" in a profile", fix: "remove it")]),
        DecodeCase(
            title: "a size with an unknown unit (12X) names the bad text",
            json: #"{"name": "x", "memory": "12X"}"#,
            problems: [problem("memory", "expected a size like \"512M\" or \"2G\" (not a size: \"12X\")")]),
        DecodeCase(
            title: "a fractional size is not a size",
            json: #"{"name": "x", "memory": "1.5G"}"#,
            problems: [problem("memory", "expected a size like \"512M\" or \"2G\" (not a size: \"1.5G\")")]),
        DecodeCase(
            title: "a size of the wrong JSON type is named by what is expected",
            json: #"{"name": "x", "memory": true}"#,
            problems: [problem("memory", "expected a size like \"512M\" or \"2G\"")]),
        DecodeCase(
            title: "a negative number is not a size",
            json: #"{"name": "x", "memory": -512}"#,
            problems: [problem("memory", "expected a size like \"512M\" or \"2G\"")]),
        DecodeCase(
            title: "a duration with an unknown unit (10d) names the bad text",
            json: #"{"name": "x", "timeouts": {"boot": "10d"}}"#,
            problems: [problem("timeouts.boot", "expected a duration like \"30s\", \"500ms\" or \"10m\" (not a duration: \"10d\")")]),
        DecodeCase(
            title: "a negative duration is refused",
            json: #"{"name": "x", "timeouts": {"shutdown": "-5s"}}"#,
            problems: [problem("timeouts.shutdown", "expected a duration like \"30s\", \"500ms\" or \"10m\" (not a duration: \"-5s\")")]),
        DecodeCase(
            title: "a negative number of seconds is refused",
            json: #"{"name": "x", "timeouts": {"run": -1}}"#,
            problems: [problem("timeouts.run", "expected a duration like \"30s\", \"500ms\" or \"10m\"")]),
        DecodeCase(
            title: "a string where a number belongs is a wrong type",
            json: #"{"name": "x", "cpus": "2"}"#,
            problems: [problem("cpus", "expected a whole number of CPUs")]),
        DecodeCase(
            title: "a fractional CPU count is a wrong type",
            json: #"{"name": "x", "cpus": 1.5}"#,
            problems: [problem("cpus", "expected a whole number of CPUs")]),
        DecodeCase(
            title: "a number where a string belongs is a wrong type",
            json: #"{"name": 42}"#,
            problems: [problem("name", "expected a name like \"hello\"")]),
        DecodeCase(
            title: "a command given as one string asks for an argv array",
            json: #"{"name": "x", "command": "uname -r"}"#,
            problems: [problem("command", "expected an argv array of strings, like [\"uname\", \"-r\"]")]),
        DecodeCase(
            title: "a command with a non-string element asks for an argv array",
            json: #"{"name": "x", "command": ["sleep", 1]}"#,
            problems: [problem("command", "expected an argv array of strings, like [\"uname\", \"-r\"]")]),
        DecodeCase(
            title: "a share that is not an object says so at its index",
            json: #"{"name": "x", "shares": ["/tmp"]}"#,
            problems: [problem("shares[0]", "expected a share (a JSON object)")]),
        DecodeCase(
            title: "shares that are not an array say so",
            json: #"{"name": "x", "shares": {"tag": "a", "path": "/tmp"}}"#,
            problems: [problem("shares", "expected an array of shares")]),
        DecodeCase(
            title: "a share without tag and path reports both missing keys",
            json: #"{"name": "x", "shares": [{}]}"#,
            problems: [
                problem("shares[0].tag", "missing required key \"tag\"", fix: "add a mount tag like \"src\""),
                problem("shares[0].path", "missing required key \"path\"", fix: "add the host folder to share"),
            ]),
        DecodeCase(
            title: "a disk without a path reports the missing key",
            json: #"{"name": "x", "disks": [{"format": "raw"}]}"#,
            problems: [problem("disks[0].path", "missing required key \"path\"", fix: "add the disk image's path")]),
        DecodeCase(
            title: "a readOnly that is a string asks for true or false",
            json: #"{"name": "x", "disks": [{"path": "/d", "readOnly": "yes"}]}"#,
            problems: [problem("disks[0].readOnly", "expected true or false")]),
        DecodeCase(
            title: "an unknown machine lists the machines",
            json: #"{"name": "x", "machine": "q36"}"#,
            problems: [problem("machine", "\"q36\" is not one of \"microvm\", \"q35\", \"pc\", \"virt\"")]),
        DecodeCase(
            title: "an unknown transport, firmware and share transport list their choices",
            json: #"{"name": "x", "transport": "ccw", "firmware": "bios", "shares": [{"tag": "a", "path": "/", "transport": "nfs"}]}"#,
            problems: [
                problem("shares[0].transport", "\"nfs\" is not one of \"virtiofs\", \"9p\", \"auto\""),
                problem("firmware", "\"bios\" is not one of \"none\", \"uefi\""),
                problem("transport", "\"ccw\" is not one of \"auto\", \"mmio\", \"pci\""),
            ]),
        DecodeCase(
            title: "a forward's protocol lists tcp and udp",
            json: #"{"name": "x", "network": {"mode": "user", "forwards": [{"host": 1, "guest": 2, "protocol": "sctp"}]}}"#,
            problems: [problem("network.forwards[0].protocol", "\"sctp\" is not one of \"tcp\", \"udp\"")]),
        DecodeCase(
            title: "a missing name is reported with how to add it",
            json: #"{"kernel": "auto"}"#,
            problems: [problem("name", "missing required key \"name\"", fix: "add a name like \"hello\"")]),
        DecodeCase(
            title: "a profile that is not an object says so at $",
            json: #"["name", "x"]"#,
            problems: [problem("$", "expected a profile (a JSON object)")]),
        DecodeCase(
            title: "a network that is not an object says so",
            json: #"{"name": "x", "network": "user"}"#,
            problems: [problem("network", "expected a network (a JSON object)")]),
    ]
}

@Suite("Profile decoding of broken JSON and of files")
struct ProfileSyntaxTests {
    @Test("text that is not JSON is one problem at $ that says how to check the file",
          arguments: [#"{"name": "x""#, #"{name: "x"}"#, #"{"name": 'x'}"#, #"{"name": "x"} trailing"#, ""])
    func notJSON(_ text: String) {
        do {
            _ = try Profile.decode(Data(text.utf8), source: "bad.json")
            Issue.record("decoding should have failed")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.path == "$")
            #expect(error.problems.first?.message.hasPrefix("not valid JSON: ") == true)
            #expect(error.problems.first?.fix == "check the file with `python3 -m json.tool bad.json`")
        }
    }

    @Test("a profile file that can't be read is one problem at $ naming the file")
    func unreadableFile() {
        do {
            _ = try Profile.load(contentsOf: URL(fileURLWithPath: "/nonexistent/qlt/p.json"))
            Issue.record("loading should have failed")
        } catch {
            #expect(error.source == "/nonexistent/qlt/p.json")
            #expect(error.problems.map(\.path) == ["$"])
            #expect(error.problems.first?.message.hasPrefix("cannot read the profile: ") == true)
            #expect(error.problems.first?.fix == "check that /nonexistent/qlt/p.json exists and is readable")
        }
    }
}
