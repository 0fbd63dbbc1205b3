import Foundation
import QMP
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

/// A machine to start for real: guest arch, machine, transport.
struct RealMachine: Sendable, CustomTestStringConvertible {
    var arch: Profile.Arch
    var machine: Profile.MachineKind
    var transport: Profile.TransportChoice
    var testDescription: String { "\(arch.rawValue) \(machine.rawValue) (\(transport.rawValue))" }

    static let x86: [RealMachine] = [
        RealMachine(arch: .x86_64, machine: .microvm, transport: .auto),
        RealMachine(arch: .x86_64, machine: .q35, transport: .auto),
        RealMachine(arch: .x86_64, machine: .pc, transport: .auto),
    ]
    static let arm: [RealMachine] = [
        RealMachine(arch: .aarch64, machine: .virt, transport: .mmio),
        RealMachine(arch: .aarch64, machine: .virt, transport: .pci),
    ]
}

/// Fetches `query-block` as device name → (file, read-only, backing file).
func blockDevices(_ client: QMP.Client) async throws -> [String: (file: String, readOnly: Bool, backing: String?)] {
    let reply = try await client.execute("query-block")
    var devices: [String: (file: String, readOnly: Bool, backing: String?)] = [:]
    for entry in reply.arrayValue ?? [] {
        guard let name = entry["device"]?.stringValue, let inserted = entry["inserted"] else { continue }
        devices[name] = (inserted["file"]?.stringValue ?? "", inserted["ro"]?.boolValue ?? false, inserted["backing_file"]?.stringValue)
    }
    return devices
}

/// Starts `plan` (runtime dir made first), checks QEMU stays up paused, talks QMP,
/// runs `inspect`, quits, and checks QEMU exits 0 and virtiofsd follows it.
func startPausedAndQuit(_ plan: Plan, inspect: (QMP.Client) async throws -> Void = { _ in }) async throws {
    let running = try await RunningPlan.start(plan, logDirectory: plan.runtimeDir)
    defer { running.stop() }
    // Paused by -S: it must stay up, not die a moment after making its socket.
    try await Task.sleep(for: .milliseconds(300))
    #expect(running.qemu.isRunning, "QEMU died: \(running.qemuStderr)")
    let client = try await running.connect()
    defer { client.close() }
    let status = try await client.queryStatus()
    #expect(status.status == "prelaunch")
    #expect(!status.running)
    try await inspect(client)
    try await client.quit()
    #expect(await eventually(timeout: .seconds(10)) { !running.qemu.isRunning }, "QEMU did not exit after quit")
    #expect(running.qemu.terminationStatus == 0, "QEMU stderr: \(running.qemuStderr)")
    // virtiofsd exits by itself when its VMM disconnects.
    #expect(await eventually(timeout: .seconds(5)) { running.virtiofsd.allSatisfy { !$0.isRunning } },
            "virtiofsd outlived QEMU")
}

@Suite("Real QEMU accepts the plans (starts paused with -S, answers QMP, quits cleanly)",
       .serialized, .enabled(if: hasQEMUx86 && hostKernel != nil, "needs qemu-system-x86_64, qemu-img and a /boot/vmlinuz-*"))
struct RealQEMUPlanTests {
    /// A profile with every device kind: virtiofs and 9p shares, read-write, read-only
    /// and ephemeral disks, a forwarded port, a named console and the guest kit's session ports.
    static func fullProfile(_ m: RealMachine, files: TempDir, kernel: String) throws -> Profile {
        var p = Profile(name: "real-\(m.arch.rawValue)-\(m.machine.rawValue)-\(m.transport.rawValue)")
        p.arch = m.arch
        p.machine = m.machine
        p.transport = m.transport
        p.accel = .tcg
        p.memory = .mebibytes(256)
        p.kernel = kernel
        p.shares = [
            Profile.Share(tag: "fs", path: files.folder("fs")),
            Profile.Share(tag: "p9", path: files.folder("p9"), readOnly: true, transport: .ninep),
        ]
        try makeRawImage("\(files.path)/rw.img")
        try makeRawImage("\(files.path)/ro.img")
        try makeRawImage("\(files.path)/base.img")
        p.disks = [
            Profile.Disk(path: "\(files.path)/rw.img"),
            Profile.Disk(path: "\(files.path)/ro.img", readOnly: true),
            Profile.Disk(path: "\(files.path)/base.img", ephemeral: true),
        ]
        p.network = Profile.Network(mode: .user, forwards: [Profile.Forward(host: freeTCPPort(), guest: 22)])
        p.consoles = ["agent"]
        p.command = ["true"]
        return p
    }

    static func check(_ m: RealMachine, kernel: String) async throws {
        let files = try TempDir("qlt-files")
        defer { files.remove() }
        let run = try TempDir("qlt-run")
        defer { run.remove() }
        let plan = try Planner.plan(fullProfile(m, files: files, kernel: kernel), host: tcgHost,
                                    options: PlanOptions(runtimeDir: run.path, guestPorts: sessionPorts))
        #expect(plan.virtiofsd.count == 1)
        #expect(plan.prepare.count == 1)
        try await startPausedAndQuit(plan) { client in
            let devices = try await blockDevices(client)
            #expect(devices["disk0"]?.file == "\(files.path)/rw.img")
            #expect(devices["disk0"]?.readOnly == false)
            #expect(devices["disk1"]?.file == "\(files.path)/ro.img")
            #expect(devices["disk1"]?.readOnly == true)
            #expect(devices["disk2"]?.file == "\(run.path)/disk2.qcow2")
            #expect(devices["disk2"]?.readOnly == false)
            #expect(devices["disk2"]?.backing == "\(files.path)/base.img")
            let chardevs = try await client.execute("query-chardev").arrayValue?.compactMap { $0["label"]?.stringValue } ?? []
            #expect(Set(chardevs).isSuperset(of: ["console", "qmp", "fs0", "port0", "port1", "port2", "port3", "port4"]))
        }
    }

    @Test("an x86_64 plan with virtiofs, 9p, three disk kinds, a forward, consoles and session ports starts under TCG",
          .enabled(if: tcgHost.virtiofsd != nil, "needs a virtiofsd (QEMU >= 8 ships no C virtiofsd; install the Rust one)"),
          arguments: RealMachine.x86)
    func x86PlanStarts(_ m: RealMachine) async throws {
        try await Self.check(m, kernel: hostKernel!)
    }

    @Test("an aarch64 virt plan (mmio and PCI) with the same devices starts under TCG (a dummy Image: it never runs)",
          .enabled(if: hasQEMUarm, "needs qemu-system-aarch64"),
          .enabled(if: tcgHost.virtiofsd != nil, "needs a virtiofsd (QEMU >= 8 ships no C virtiofsd; install the Rust one)"),
          arguments: RealMachine.arm)
    func armPlanStarts(_ m: RealMachine) async throws {
        let files = try TempDir("qlt-arm")
        defer { files.remove() }
        let image = files.file("Image", contents: String(repeating: "\0", count: 65536))
        try await Self.check(m, kernel: image)
    }

    @Test("a microvm plan for a PVH kernel entry (tsc_early_khz) and without session ports starts too")
    func pvhPlanStarts() async throws {
        let run = try TempDir("qlt-run")
        defer { run.remove() }
        var p = Profile(name: "pvh")
        p.accel = .tcg
        p.memory = .mebibytes(128)
        p.kernel = hostKernel!
        var host = tcgHost
        host.tscKHz = host.tscKHz ?? 2_000_000
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: run.path, kernelEntry: .pvh))
        #expect(plan.cmdline.contains("tsc_early_khz=\(host.tscKHz!)"))
        #expect(plan.sockets.ports.isEmpty)
        try await startPausedAndQuit(plan)
    }
}

/// The example profiles whose files all exist here (after "kernel": "auto" resolves).
let runnableProfileFiles: [String] = profileFiles.filter { exampleProblems($0).isEmpty }

/// What keeps an example profile from running here; a profile that doesn't load is a problem too.
func exampleProblems(_ relativePath: String) -> [ProfileProblem] {
    guard var p = try? Profile.load(contentsOf: packageRoot.appendingPathComponent(relativePath)) else {
        return [ProfileProblem(path: "$", message: "does not load")]
    }
    if p.kernel == "auto" { p.kernel = hostKernel }
    return ProfileValidator.hostProblems(p, host: tcgHost, runtimeDir: "/tmp/qlt-run-XXXXXX")
}

@Suite("Real QEMU accepts the plans of the example profiles",
       .serialized, .enabled(if: hasQEMUx86 && hostKernel != nil, "needs qemu-system-x86_64, qemu-img and a /boot/vmlinuz-*"))
struct RealQEMUProfileTests {
    @Test("the example profile's plan starts paused and quits", arguments: runnableProfileFiles)
    func examplePlanStarts(_ relativePath: String) async throws {
        var p = try Profile.load(contentsOf: packageRoot.appendingPathComponent(relativePath))
        if p.kernel == "auto" { p.kernel = hostKernel }
        // A fixed host port may be taken on a shared machine: forward from a free one instead.
        p.network.forwards = p.network.forwards.map { var f = $0; f.host = freeTCPPort(); return f }
        let run = try TempDir("qlt-run")
        defer { run.remove() }
        // What a first run's state folder holds (Machine.start makes it, not the plan's
        // prepare steps): the run's folder stands in for it, with each persistent overlay
        // over its image and the firmware's variable store copied from its template.
        let persistent = p.disks.indices.filter { p.disks[$0].overlay == .persistent }
        let plan = try Planner.plan(p, host: tcgHost, options: PlanOptions(runtimeDir: run.path, stateDirectory: persistent.isEmpty ? nil : run.path))
        for index in persistent {
            let made = try runCommand([tcgHost.qemuImg!, "create", "-q", "-f", "qcow2", "-F", p.disks[index].format.rawValue,
                                       "-b", p.disks[index].path, "\(run.path)/disk\(index).qcow2"])
            try #require(made.status == 0, "\(made.output)")
        }
        if let vars = plan.firmwareVars, !FileManager.default.fileExists(atPath: vars.path) {
            try FileManager.default.copyItem(atPath: vars.template, toPath: vars.path)
        }
        try await startPausedAndQuit(plan)
    }

    @Test("profiles left out are left out only for files missing on this host (arm64's kernel is fetched separately)")
    func onlyMissingFilesExclude() {
        for path in profileFiles where !runnableProfileFiles.contains(path) {
            let problems = exampleProblems(path)
            #expect(problems.allSatisfy { $0.message.hasPrefix("no ") && $0.message.contains(" at ") }, "\(path): \(problems)")
        }
        #expect(runnableProfileFiles.contains("Profiles/hello.json"))
        #expect(runnableProfileFiles.contains("Profiles/q35.json"))
        #expect(runnableProfileFiles.contains("Profiles/pc.json"))
        #expect(runnableProfileFiles.contains("Profiles/boot.json"))
        #expect(runnableProfileFiles.contains("Examples/profiles/ninep.json"))
    }
}
