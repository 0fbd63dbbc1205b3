import Foundation
import Logging
import TestSupport
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

private let hasQEMUImg = FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")
private let identity = MachineIdentity(uuid: "0f8fad5b-d9cb-469f-a165-70867728950e", mac: "52:54:00:ab:cd:ef")

@Suite("VM state folder: layout, machine identity, listing and reset")
struct VMStateFolderTests {
    @Test("the folder is <root>/<name>, and it owns the names of its files")
    func layout() throws {
        let folder = try VMStateFolder(vmName: "web-1.test", root: "/var/tmp/states")
        #expect(folder.path == "/var/tmp/states/web-1.test")
        #expect(VMStateFolder.identityFile == "identity.json")
        #expect(VMStateFolder.firmwareVarsFile == "efivars.fd")
        #expect(VMStateFolder.overlayFile(disk: 2) == "disk2.qcow2")
        #expect(VMStateFolder.baseRecordFile(disk: 2) == "disk2.base.json")
        #expect(VMStateFolder.defaultRoot.hasSuffix("/qemu-launch"))
    }

    @Test("a name that would escape the root or name another folder is refused", arguments: ["", ".", "..", "a/b", "../x", "with space"])
    func unusableNames(_ name: String) {
        #expect(throws: LaunchError.self) { try VMStateFolder(vmName: name, root: "/tmp") }
    }

    @Test("\"..\" as a profile name is a problem at name: it would name every VM's state folder")
    func dotDotProfileName() {
        var p = Profile(name: "..")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        #expect(GoldenFiles.ready)
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [ProfileProblem(
            path: "name", message: "\"..\" is not a usable VM name: it would name the folder of every VM's state", fix: "use a name with a letter or digit")])
    }

    @Test("only VMs that keep something have a state folder: UEFI, or a disk with a persistent overlay")
    func keepsState() {
        var p = Profile(name: "v")
        #expect(!VMStateFolder.keepsState(p))
        p.disks = [Profile.Disk(path: "/d.img", ephemeral: true)]
        #expect(!VMStateFolder.keepsState(p))
        p.disks.append(Profile.Disk(path: "/e.img", overlay: .persistent))
        #expect(VMStateFolder.keepsState(p))
        p.disks = []
        p.firmware = .uefi
        #expect(VMStateFolder.keepsState(p))
    }

    @Test("a random identity is a version-4 UUID and a unicast, locally administered 52:54:00 MAC; no two alike")
    func randomIdentity() {
        var seen = Set<MachineIdentity>()
        for _ in 0..<200 {
            let made = MachineIdentity.random()
            #expect(made.problem == nil, "\(made)")
            #expect(made.mac.hasPrefix("52:54:00:"))
            #expect(Array(made.uuid)[14] == "4")
            #expect("89ab".contains(Array(made.uuid)[19]))
            seen.insert(made)
        }
        #expect(seen.count == 200)
    }

    @Test("a stored identity QEMU would refuse is named as such",
          arguments: [("0F8FAD5B-D9CB-469F-A165-70867728950E", "52:54:00:ab:cd:ef", "uuid"),
                      ("0f8fad5b-d9cb-469f-a165", "52:54:00:ab:cd:ef", "uuid"),
                      ("0f8fad5b-d9cb-469f-a165-70867728950e", "52:54:00:ab:cd", "mac"),
                      ("0f8fad5b-d9cb-469f-a165-70867728950e", "53:54:00:ab:cd:ef", "multicast")])
    func badIdentity(uuid: String, mac: String, word: String) {
        #expect(MachineIdentity(uuid: uuid, mac: mac).problem?.contains(word) == true)
    }

    @Test("the identity is made on first use, then the same one comes back")
    func identityKept() throws {
        let dir = try TempDir("qlt-state")
        defer { dir.remove() }
        let folder = try VMStateFolder(vmName: "vm", root: dir.path + "/root")
        #expect(try folder.storedIdentity() == nil)
        #expect(!folder.exists)
        let first = try folder.identity()
        #expect(first.isNew)
        #expect(folder.exists)
        var info = stat()
        stat(folder.path, &info)
        #expect(info.st_mode & 0o777 == 0o700, "the folder holds the guest's writes: private")
        let second = try folder.identity()
        #expect(!second.isNew)
        #expect(second.identity == first.identity)
        #expect(try VMStateFolder(vmName: "vm", root: dir.path + "/root").storedIdentity() == first.identity)
        #expect(folder.files().map(\.name) == ["identity.json"], "no temporary file is left behind")
    }

    @Test("launchers starting the same VM at once agree on one identity")
    func identityRace() async throws {
        let dir = try TempDir("qlt-state")
        defer { dir.remove() }
        let folder = try VMStateFolder(vmName: "vm", root: dir.path)
        let identities = await withTaskGroup(of: MachineIdentity?.self) { group in
            for _ in 0..<8 { group.addTask { try? folder.identity().identity } }
            var all: [MachineIdentity?] = []
            for await one in group { all.append(one) }
            return all
        }
        #expect(identities.count == 8)
        #expect(Set(identities.compactMap { $0 }).count == 1)
        #expect(!identities.contains(nil))
        #expect(try folder.storedIdentity() == identities[0])
    }

    @Test("a damaged identity file is an error that says how to fix it, and is left as it is")
    func damagedIdentity() throws {
        let dir = try TempDir("qlt-state")
        defer { dir.remove() }
        let folder = try VMStateFolder(vmName: "vm", root: dir.path)
        let file = dir.file("vm/identity.json", contents: "{\"uuid\": 1}")
        do {
            _ = try folder.identity()
            Issue.record("a damaged identity was replaced")
        } catch {
            #expect(error.message.contains(file))
            #expect(error.fix?.contains("delete it") == true)
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "{\"uuid\": 1}")
    }

    @Test("files are listed with their sizes; reset deletes the folder and says what was in it")
    func listAndReset() throws {
        let dir = try TempDir("qlt-state")
        defer { dir.remove() }
        let folder = try VMStateFolder(vmName: "vm", root: dir.path)
        #expect(try folder.reset() == [], "nothing to reset is not an error")
        _ = try folder.identity()
        _ = dir.file("vm/efivars.fd", contents: String(repeating: "v", count: 4096))
        let listed = folder.files()
        #expect(listed.map(\.name) == ["efivars.fd", "identity.json"])
        #expect(listed[0].sizeBytes == 4096)
        #expect(folder.filesInUse() == [])
        #expect(try folder.reset() == listed)
        #expect(!FileManager.default.fileExists(atPath: folder.path))
        #expect(FileManager.default.fileExists(atPath: dir.path), "only the VM's folder goes")
    }

    @Test("reset (and a second start) refuses while a process holds a lock on a file, as a running QEMU does on its images")
    func resetRefusedWhileLocked() throws {
        let dir = try TempDir("qlt-state")
        defer { dir.remove() }
        let folder = try VMStateFolder(vmName: "vm", root: dir.path)
        let vars = dir.file("vm/efivars.fd", contents: "vars")
        // QEMU takes open-file-description locks (QEMU 7.2 on Linux); so does this test.
        let fd = open(vars, O_RDWR)
        try #require(fd >= 0)
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_RDLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 100
        lock.l_len = 1
        // F_OFD_SETLK (37 on Linux) is behind _GNU_SOURCE, which Swift's Glibc module leaves out.
        let ofdSetLock: Int32 = 37
        #expect(fcntl(fd, ofdSetLock, &lock) == 0, "errno \(errno)")
        #expect(folder.filesInUse() == ["efivars.fd"])
        do {
            _ = try folder.reset()
            Issue.record("a folder in use was deleted")
        } catch {
            #expect(error.message.contains("seems to be running already"))
            #expect(error.message.contains("efivars.fd"))
            #expect(error.message.hasSuffix("not resetting it"))
        }
        #expect(throws: LaunchError.self, "Machine.start refuses a second run of the same VM") {
            try folder.checkNotInUse("starting a second run")
        }
        #expect(FileManager.default.fileExists(atPath: vars))
    }
}

@Suite("Persistent disk overlays: profile key, plan, and the overlay's life in the state folder")
struct PersistentOverlayTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("\"overlay\" decodes, encodes, and an unknown value lists the choices")
    func decoding() throws {
        let p = try profile(#"{"name": "x", "disks": [{"path": "/d.img", "overlay": "persistent"}]}"#)
        #expect(p.disks[0].overlay == .persistent)
        #expect(try profile(#"{"name": "x", "disks": [{"path": "/d.img"}]}"#).disks[0].overlay == .none)
        let again = try Profile.decode(JSONEncoder().encode(p))
        #expect(again == p)
        #expect(decodeProblems(#"{"name": "x", "disks": [{"path": "/d.img", "overlay": "keep"}]}"#) == [
            ProfileProblem(path: "disks[0].overlay", message: "\"keep\" is not one of \"none\", \"persistent\"")])
    }

    @Test("a persistent overlay with readOnly or ephemeral is a problem at disks[N].overlay, with the fix")
    func conflicts() {
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.disks = [Profile.Disk(path: "/tmp/qlt-golden/disk.img", readOnly: true, overlay: .persistent),
                   Profile.Disk(path: "/tmp/qlt-golden/disk.img", ephemeral: true, overlay: .persistent)]
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [
            ProfileProblem(path: "disks[0].overlay", message: "a persistent overlay keeps the guest's writes, and readOnly forbids them",
                           fix: "remove \"readOnly\" to keep writes in the VM's state folder, or remove \"overlay\" for a read-only disk"),
            ProfileProblem(path: "disks[1].overlay", message: "a persistent overlay keeps the guest's writes between runs, and ephemeral throws them away at exit",
                           fix: "keep one: remove \"ephemeral\" or \"overlay\""),
        ])
    }

    @Test("a plan with a persistent overlay needs the state folder; without one it says so")
    func planNeedsStateFolder() {
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.disks = [Profile.Disk(path: "/tmp/qlt-golden/disk.img"), Profile.Disk(path: "/tmp/qlt-golden/disk.img", overlay: .persistent)]
        #expect(planProblems(p, host: Hosts.x86KVM) == [ProfileProblem(
            path: "disks[1].overlay", message: "a persistent overlay lives in the VM's state folder, and the plan was given none",
            fix: "plan with PlanOptions.stateDirectory set to VMStateFolder(vmName:).path (Machine.start does)")])
    }

    @Test("golden argv with a machine identity: -uuid after -name, the NIC's mac, the overlay and UEFI vars in the state folder",
          arguments: GoldenCase.withIdentity)
    func golden(_ golden: GoldenCase) throws {
        let plan = try Planner.plan(profile(golden.json), host: golden.host, options: golden.options)
        #expect(plan.qemu == golden.qemu)
        for (index, pair) in zip(plan.qemu, golden.qemu).enumerated() where pair.0 != pair.1 {
            Issue.record("first difference at argv[\(index)]: got \(pair.0), expected \(pair.1)")
            break
        }
        #expect(plan.prepare == golden.prepare)
        #expect(plan.cmdline == golden.cmdline)
    }

    @Test("the plan describes each persistent overlay; its qemu-img command backs it with the base's absolute path")
    func planOverlay() throws {
        let plan = try Planner.plan(profile(GoldenCase.identityQ35.json), host: GoldenCase.identityQ35.host, options: GoldenCase.identityQ35.options)
        let overlay = Plan.PersistentOverlay(disk: 1, base: "/tmp/qlt-golden/disk.img", baseFormat: .raw,
                                             path: "/home/u/.local/state/qemu-launch/id-q35/disk1.qcow2",
                                             baseRecord: "/home/u/.local/state/qemu-launch/id-q35/disk1.base.json")
        #expect(plan.persistentOverlays == [overlay])
        #expect(overlay.createCommand(qemuImg: "/usr/bin/qemu-img", output: "/o.qcow2") == [
            "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/tmp/qlt-golden/disk.img", "/o.qcow2"])
        var relative = overlay
        relative.base = "images/../disk.img"
        #expect(relative.absoluteBase == FileManager.default.currentDirectoryPath + "/disk.img")
        #expect(plan.choices.contains(Plan.Choice(topic: "identity", value: "uuid \(identity.uuid), mac \(identity.mac)", reason: "kept in the VM's state folder")))
        #expect(try JSONDecoder().decode(Plan.self, from: JSONEncoder().encode(plan)) == plan)
    }

    // MARK: the overlay files, with the real qemu-img

    struct Setup {
        let dir: TempDir
        let folder: VMStateFolder
        let base: String
        let overlay: Plan.PersistentOverlay

        init() throws {
            dir = try TempDir("qlt-ovl")
            folder = try VMStateFolder(vmName: "vm", root: dir.path + "/state")
            base = dir.path + "/base.img"
            try Data(repeating: 0xab, count: 1 << 20).write(to: URL(fileURLWithPath: base))
            overlay = Plan.PersistentOverlay(disk: 0, base: base, baseFormat: .raw,
                                             path: folder.path + "/disk0.qcow2", baseRecord: folder.path + "/disk0.base.json")
        }

        func prepare() async throws(LaunchError) {
            try await folder.prepareOverlays([overlay], qemuImg: "/usr/bin/qemu-img", environment: ["PATH": "/usr/bin:/bin"],
                                             logger: Logger(label: "test"))
        }
    }

    @Test("the first run makes the overlay over the base and records the base; later runs reuse it as is", .enabled(if: hasQEMUImg))
    func makeThenReuse() async throws {
        let s = try Setup()
        defer { s.dir.remove() }
        try await s.prepare()
        #expect(s.folder.files().map(\.name) == ["disk0.base.json", "disk0.qcow2"], "no temporary file is left behind")
        let info = try Tool.capture(["/usr/bin/qemu-img", "info", "--output=json", s.overlay.path])
        #expect(info.contains("\"backing-filename\": \"\(s.base)\""))
        #expect(info.contains("\"backing-filename-format\": \"raw\""))
        let record = try #require(s.folder.baseRecord(disk: 0))
        #expect(record.path == s.base && record.format == .raw && record.sizeBytes == 1 << 20)
        // A guest's write lands in the overlay; the next run must keep it.
        let marker = Array("guest wrote this".utf8)
        let fd = open(s.overlay.path, O_WRONLY | O_APPEND)
        try #require(fd >= 0)
        _ = write(fd, marker, marker.count)
        close(fd)
        try await s.prepare()
        let kept = try Data(contentsOf: URL(fileURLWithPath: s.overlay.path))
        #expect(kept.suffix(marker.count) == Data(marker), "the overlay was remade")
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.base)) == Data(repeating: 0xab, count: 1 << 20))
    }

    @Test("a base changed since the overlay was made fails before QEMU, naming what changed and the fixes", .enabled(if: hasQEMUImg))
    func baseChanged() async throws {
        let s = try Setup()
        defer { s.dir.remove() }
        try await s.prepare()
        let recorded = try #require(s.folder.baseRecord(disk: 0))
        // Same size, new bytes: only the mtime tells.
        try await Task.sleep(for: .milliseconds(20))
        try Data(repeating: 0xcd, count: 1 << 20).write(to: URL(fileURLWithPath: s.base))
        do {
            try await s.prepare()
            Issue.record("an overlay over a changed base was used")
        } catch {
            #expect(error.code == .hostProblem)
            #expect(error.message.hasPrefix("disks[0]: the base image \(s.base) changed since its persistent overlay \(s.overlay.path) was made (modified "))
            #expect(error.message.contains("the guest would see a corrupt disk"))
            let time = "\(recorded.modifiedSeconds)." + String(format: "%09lld", recorded.modifiedNanoseconds)
            #expect(error.fix?.contains("touch -d @\(time) \(s.base)") == true)
            #expect(error.fix?.contains("rm \(s.overlay.path) \(s.overlay.baseRecord)") == true)
            #expect(error.fix?.contains("launch state PROFILE --reset") == true)
        }
        // A size change is named too.
        try Data(repeating: 0xcd, count: 2 << 20).write(to: URL(fileURLWithPath: s.base))
        let problem = try #require(s.folder.overlayProblem(disk: 0, base: s.base, format: .raw))
        #expect(problem.message.contains("size 1048576 → 2097152 bytes"))
        #expect(!problem.fix.contains("touch"), "a size change is not only a time change")
        #expect(s.folder.files().map(\.name) == ["disk0.base.json", "disk0.qcow2"])
    }

    @Test("an overlay whose disk now points elsewhere, or whose record is gone, is refused with the fix", .enabled(if: hasQEMUImg))
    func movedOrUnrecorded() async throws {
        let s = try Setup()
        defer { s.dir.remove() }
        try await s.prepare()
        let other = s.dir.path + "/other.img"
        try Data(count: 4096).write(to: URL(fileURLWithPath: other))
        let moved = try #require(s.folder.overlayProblem(disk: 0, base: other, format: .raw))
        #expect(moved.message == "the persistent overlay \(s.overlay.path) was made over \(s.base) (raw), and disks[0] is now \(other) (raw)")
        #expect(moved.fix.hasPrefix("point disks[0] back at \(s.base), or discard"))
        #expect(s.folder.overlayProblem(disk: 0, base: s.base, format: .qcow2) != nil, "a changed format is refused too")
        #expect(s.folder.overlayProblem(disk: 0, base: nil, format: nil) == nil, "`launch state` checks against the recorded base")
        unlink(s.overlay.baseRecord)
        do {
            try await s.prepare()
            Issue.record("an overlay without a record was used")
        } catch {
            #expect(error.message.contains("has no readable record of its base image"))
        }
    }

    @Test("a qemu-img failure is an error with its command and output, and leaves no overlay", .enabled(if: hasQEMUImg))
    func qemuImgFails() async throws {
        let s = try Setup()
        defer { s.dir.remove() }
        unlink(s.base)
        do {
            try await s.prepare()
            Issue.record("an overlay over a missing base was made")
        } catch {
            #expect(error.description.contains("qemu-img create"))
            #expect(error.description.contains(s.base))
        }
        #expect(!FileManager.default.fileExists(atPath: s.overlay.path))
        #expect(s.folder.files().allSatisfy { !$0.name.contains(".tmp-") })
    }
}

extension GoldenCase {
    static let withIdentity = [identityQ35, identityMicrovm]

    static let uefiHost: HostFacts = {
        var host = Hosts.x86KVM
        host.firmware[.x86_64] = UEFIFirmware(code: "/usr/share/OVMF/OVMF_CODE_4M.fd", varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd", source: "test")
        return host
    }()

    static let identityQ35 = GoldenCase(
        title: "x86_64 Linux KVM, q35 UEFI: identity (-uuid, NIC mac), UEFI vars and a persistent overlay in the state folder",
        host: uefiHost,
        json: """
            {"name": "id-q35", "machine": "q35", "firmware": "uefi", "kernel": "/tmp/qlt-golden/vmlinuz",
             "disks": [{"path": "/tmp/qlt-golden/disk.qcow2", "format": "qcow2", "ephemeral": true},
                       {"path": "/tmp/qlt-golden/disk.img", "overlay": "persistent"}],
             "network": {"mode": "user"}}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, stateDirectory: "/home/u/.local/state/qemu-launch/id-q35", identity: identity),
        qemu: [
            "/usr/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=id-q35",
            "-uuid", "0f8fad5b-d9cb-469f-a165-70867728950e",
            "-machine", "q35",
            "-accel", "kvm",
            "-cpu", "host",
            "-smp", "1",
            "-m", "512M",
            "-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "-drive", "if=pflash,format=raw,unit=1,file=/home/u/.local/state/qemu-launch/id-q35/efivars.fd",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-append", "console=ttyS0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-drive", "file=/run/user/1000/launch-test0001/disk0.qcow2,if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-pci,drive=disk0",
            "-drive", "file=/home/u/.local/state/qemu-launch/id-q35/disk1.qcow2,if=none,id=disk1,format=qcow2",
            "-device", "virtio-blk-pci,drive=disk1",
            "-netdev", "user,id=net0",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:ab:cd:ef",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        // Only the ephemeral overlay is a prepare command: the persistent one is made once, by Machine.start.
        prepare: [[
            "/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
            "-b", "/tmp/qlt-golden/disk.qcow2", "/run/user/1000/launch-test0001/disk0.qcow2",
        ]],
        cmdline: "console=ttyS0 panic=-1")

    static let identityMicrovm = GoldenCase(
        title: "x86_64 Linux TCG-only, QEMU 10.0 microvm: identity without a network is only -uuid",
        host: Hosts.x86TCG,
        json: #"{"name": "id-micro", "kernel": "/tmp/qlt-golden/vmlinuz"}"#,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, identity: identity),
        qemu: [
            "/usr/local/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=id-micro",
            "-uuid", "0f8fad5b-d9cb-469f-a165-70867728950e",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off",
            // QEMU 10.0: bios-microvm.bin is SeaBIOS, so the plan boots qboot.rom.
            "-bios", "qboot.rom",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", "1",
            "-m", "512M",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-append", "console=ttyS0 panic=-1 tsc_early_khz=2400000",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyS0 panic=-1 tsc_early_khz=2400000")
}

private enum Tool {
    /// Runs a program; its stdout, or a thrown failure with its stderr.
    static func capture(_ argv: [String]) throws -> String {
        try TestProcess.capture(argv)
    }
}
