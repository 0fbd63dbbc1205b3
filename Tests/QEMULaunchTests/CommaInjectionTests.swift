import Foundation
import QMP
import TestSupport
import Testing

@testable import QEMULaunch

@Suite("Comma injection: a host path with commas stays one path in every argv")
struct CommaInjectionTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("QEMU option values double commas: ,, is one literal comma",
          arguments: [("/tmp/x/a,readonly=off", "/tmp/x/a,,readonly=off"), ("a,,b", "a,,,,b"), (",", ",,"), ("plain", "plain")])
    func optionValue(_ raw: String, _ escaped: String) {
        #expect(QEMUSyntax.optionValue(raw) == escaped)
    }

    @Test("FUSE -o values (legacy virtiofsd) escape commas and backslashes with a backslash",
          arguments: [("/tmp/x/a,readonly=off", #"/tmp/x/a\,readonly=off"#), (#"a\b,c"#, #"a\\b\,c"#), ("plain", "plain")])
    func fuseOptionValue(_ raw: String, _ escaped: String) {
        #expect(QEMUSyntax.fuseOptionValue(raw) == escaped)
    }

    @Test("a 9p share, a disk, a tag and a runtime dir with commas are escaped in QEMU's argv")
    func qemuArgv() throws {
        let p = try profile("""
            {"name": "comma", "accel": "tcg", "kernel": "/tmp/qlt-golden/vmlinuz",
             "shares": [{"tag": "t,x=y", "path": "/tmp/qlt-golden/a,readonly=off", "transport": "9p"}],
             "disks": [{"path": "/tmp/qlt-golden/d,readonly=off.img"}, {"path": "/tmp/qlt-golden/d,readonly=off.img", "ephemeral": true}]}
            """)
        let plan = try Planner.plan(p, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: "/tmp/r,x"))
        let pairs = Dictionary(grouping: zip(plan.qemu, plan.qemu.dropFirst()), by: \.0).mapValues { $0.map(\.1) }
        #expect(pairs["-fsdev"] == ["local,id=p9fs0,path=/tmp/qlt-golden/a,,readonly=off,security_model=none"])
        #expect(pairs["-drive"] == [
            "file=/tmp/qlt-golden/d,,readonly=off.img,if=none,id=disk0,format=raw",
            "file=/tmp/r,,x/disk1.qcow2,if=none,id=disk1,format=qcow2",
        ])
        #expect(pairs["-chardev"] == [
            "socket,id=console,path=/tmp/r,,x/console.sock,server=on,wait=off",
            "socket,id=qmp,path=/tmp/r,,x/qmp.sock,server=on,wait=off",
        ])
        #expect(pairs["-device"]?.contains("virtio-9p-device,fsdev=p9fs0,mount_tag=t,,x=y") == true)
        // qemu-img takes whole paths as arguments: nothing to escape there.
        #expect(plan.prepare == [[
            "/usr/local/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
            "-b", "/tmp/qlt-golden/d,readonly=off.img", "/tmp/r,x/disk1.qcow2",
        ]])
        #expect(plan.sockets.qmp == "/tmp/r,x/qmp.sock", "socket paths themselves are not escaped")
    }

    @Test("a virtiofs share with commas: \\, in legacy virtiofsd's -o source=, verbatim in the Rust --shared-dir=, ,, in QEMU's chardev")
    func virtiofsd() throws {
        let p = try profile("""
            {"name": "comma", "kernel": "/tmp/qlt-golden/vmlinuz",
             "shares": [{"tag": "src", "path": "/tmp/qlt-golden/a,readonly=off"}]}
            """)
        let legacy = try Planner.plan(p, host: Hosts.x86KVM, options: PlanOptions(runtimeDir: "/tmp/r,x"))
        #expect(legacy.virtiofsd == [[
            "/usr/lib/qemu/virtiofsd", "--socket-path=/tmp/r,x/fs0.sock",
            "-o", #"source=/tmp/qlt-golden/a\,readonly=off"#, "-o", "cache=auto", "-o", "sandbox=namespace",
        ]])
        #expect(legacy.qemu.contains("socket,id=fs0,path=/tmp/r,,x/fs0.sock"))
        let rust = try Planner.plan(p, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(rust.virtiofsd == [[
            "/usr/libexec/virtiofsd", "--socket-path=/run/user/1000/launch-test0001/fs0.sock",
            "--shared-dir=/tmp/qlt-golden/a,readonly=off", "--cache=auto", "--sandbox=namespace",
        ]])
    }

    @Test("qemu-img reads an image whose path has commas as that one file", .enabled(if: hasQEMUx86))
    func qemuImgInfo() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = "\(dir.path)/a,readonly=on,format=qcow2.img"
        try makeRawImage(path, size: "1M")
        let info = try runCommand([tcgHost.qemuImg!, "info", "--output=json", path])
        #expect(info.status == 0, "\(info.output)")
        let json = try QMP.JSONValue(parsing: info.output)
        #expect(json["filename"]?.stringValue == path)
        #expect(json["format"]?.stringValue == "raw")
        #expect(json["virtual-size"]?.intValue == 1 << 20)
    }

    @Test("real QEMU and the legacy virtiofsd take comma paths as one path: disk, ephemeral base, 9p, virtiofs, runtime dir",
          .enabled(if: hasQEMUx86 && hostKernel != nil && tcgHost.virtiofsd != nil, "needs QEMU, qemu-img, virtiofsd and a kernel"))
    func realQEMU() async throws {
        let dir = try TempDir("qlt-comma")
        defer { dir.remove() }
        // Were the commas not escaped, each of these would either be refused ("readonly" wants on/off),
        // point at a path that doesn't exist (dir/a, dir/s, dir/v), or silently change an option.
        let disk = "\(dir.path)/a,readonly=on.img"
        let base = "\(dir.path)/e,format=qcow2.img"
        try makeRawImage(disk)
        try makeRawImage(base)
        var p = Profile(name: "comma")
        p.accel = .tcg
        p.memory = .mebibytes(128)
        p.kernel = hostKernel!
        p.shares = [
            Profile.Share(tag: "p9", path: dir.folder("s,readonly=on"), transport: .ninep),
            Profile.Share(tag: "fs", path: dir.folder("v,cache=always")),
        ]
        p.disks = [Profile.Disk(path: disk), Profile.Disk(path: base, ephemeral: true)]
        let run = dir.folder("run,x=y")
        chmod(run, 0o700)
        let plan = try Planner.plan(p, host: tcgHost, options: PlanOptions(runtimeDir: run))
        #expect(plan.sockets.qmp == "\(run)/qmp.sock")
        try await startPausedAndQuit(plan) { client in
            let devices = try await blockDevices(client)
            #expect(devices["disk0"]?.file == disk)
            #expect(devices["disk0"]?.readOnly == false)
            #expect(devices["disk1"]?.file == "\(run)/disk1.qcow2")
            #expect(devices["disk1"]?.backing == base)
        }
    }
}

@Suite("Shell quoting for printed command lines")
struct ShellQuoteTests {
    static let words = [
        "plain", "with space", "it's", "", "$HOME", "`id`", "$(id)", "a\"b", #"back\slash"#, "new\nline", "tab\there",
        "*", "?", "~", "semi;colon", "a|b", "a&b", "<in", ">out", "ünïcödé", "-n", "--", "a,b=c", "'", "''", "!x", "#hash",
    ]

    @Test("safe words stay bare, everything else is single-quoted",
          arguments: [
            ("plain", "plain"), ("/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-system-x86_64"),
            ("file=/a,,b,if=none", "file=/a,,b,if=none"), ("a+b@c%d:e", "a+b@c%d:e"),
            ("", "''"), ("with space", "'with space'"), ("it's", #"'it'\''s'"#), ("$HOME", "'$HOME'"), ("ü", "'ü'"),
          ])
    func quote(_ word: String, _ quoted: String) {
        #expect(QEMUSyntax.shellQuote(word) == quoted)
    }

    @Test("/bin/sh reads a quoted line back as the same words")
    func roundTripThroughShell() throws {
        let line = "printf '%s\\0' " + QEMUSyntax.shellLine(Self.words)
        let run = try TestProcess.run(["/bin/sh", "-c", line], environment: ["HOME": "/should-not-expand", "PATH": "/usr/bin:/bin"])
        let data = run.stdout
        #expect(run.status == 0)
        let words = data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        #expect(words == Self.words)
    }

    @Test("a plan's QEMU argv survives the round trip through /bin/sh")
    func planRoundTrip() throws {
        #expect(GoldenFiles.ready)
        let plan = try Planner.plan(profile(GoldenCase.kvmQ35.json), host: Hosts.x86KVM, options: GoldenCase.kvmQ35.options)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "printf '%s\\0' " + QEMUSyntax.shellLine(plan.qemu)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let words = data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        #expect(words == plan.qemu)
    }
}
