import Foundation
import Testing

@testable import QEMULaunch

/// The ports a caller's protocol asks for (the guest kit's one-slot session).
let sessionPorts = ["launch.ctl", "launch.0.in", "launch.0.out", "launch.0.err"]

/// The argv of `sessionPorts` on the virtio-serial bus `vser0`: one socket chardev and one
/// `virtserialport` per port, numbered from 0, sockets in `runtimeDir`.
func sessionPortArgv(_ runtimeDir: String = goldenRuntimeDir) -> [String] {
    sessionPorts.enumerated().flatMap { index, name in
        ["-chardev", "socket,id=port\(index),path=\(runtimeDir)/port\(index).sock,server=on,wait=off",
         "-device", "virtserialport,bus=vser0.0,chardev=port\(index),name=\(name)"]
    }
}

/// One profile planned on one host, with the exact argv it must produce.
struct GoldenCase: Sendable, CustomTestStringConvertible {
    var title: String
    var host: HostFacts
    var json: String
    var options = PlanOptions(runtimeDir: goldenRuntimeDir)
    var qemu: [String]
    var virtiofsd: [[String]] = []
    var prepare: [[String]] = []
    var cmdline: String

    var testDescription: String { title }
}

@Suite("Golden argv: Planner.plan gives exactly these QEMU, virtiofsd and qemu-img command lines")
struct GoldenArgvTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("the QEMU argv, virtiofsd argv, prepare commands and kernel command line are exactly the golden ones",
          arguments: GoldenCase.all)
    func golden(_ golden: GoldenCase) throws {
        let plan = try Planner.plan(profile(golden.json), host: golden.host, options: golden.options)
        #expect(plan.qemu == golden.qemu)
        if plan.qemu != golden.qemu {
            // A readable diff for when the arrays differ somewhere in the middle.
            for (index, pair) in zip(plan.qemu, golden.qemu).enumerated() where pair.0 != pair.1 {
                Issue.record("first difference at argv[\(index)]: got \(pair.0), expected \(pair.1)")
                break
            }
        }
        #expect(plan.virtiofsd == golden.virtiofsd)
        #expect(plan.prepare == golden.prepare)
        #expect(plan.cmdline == golden.cmdline)
        #expect(plan.runtimeDir == goldenRuntimeDir)
    }

    @Test("\"onReboot\": \"reboot\" plans the golden argv without -no-reboot; \"exit\" plans it exactly",
          arguments: GoldenCase.all)
    func onReboot(_ golden: GoldenCase) throws {
        func planned(_ value: String) throws -> [String] {
            let json = "{\"onReboot\": \"\(value)\", " + golden.json.drop { $0 != "{" }.dropFirst()
            return try Planner.plan(profile(json), host: golden.host, options: golden.options).qemu
        }
        #expect(golden.qemu.filter { $0 == "-no-reboot" }.count == 1)
        #expect(try planned("exit") == golden.qemu)
        #expect(try planned("reboot") == golden.qemu.filter { $0 != "-no-reboot" })
    }

    @Test("the plan records what it picked and why: accelerator, machine, transport, virtiofsd flavor, PVH kernel")
    func choicesOnKVM() throws {
        let plan = try Planner.plan(profile(GoldenCase.kvmMicrovm.json), host: Hosts.x86KVM, options: GoldenCase.kvmMicrovm.options)
        #expect(plan.choices == [
            Plan.Choice(topic: "accelerator", value: "kvm", reason: "auto: kvm is usable"),
            Plan.Choice(topic: "machine", value: "microvm", reason: "from the profile"),
            Plan.Choice(topic: "transport", value: "virtio-mmio", reason: "default for microvm"),
            Plan.Choice(topic: "qemu", value: "7.2.22", reason: "read from /usr/bin/qemu-system-x86_64's --version and help"),
            Plan.Choice(topic: "microvm firmware", value: "qboot, option ROMs off", reason: "its bios-microvm.bin is qboot, which loads the kernel itself"),
            Plan.Choice(topic: "virtiofsd", value: "legacy-c", reason: "detected from /usr/lib/qemu/virtiofsd's --help"),
            Plan.Choice(topic: "virtiofsd", value: "sandbox namespace", reason: "root: mount, pid and net namespaces around the shared folder"),
            Plan.Choice(topic: "kernel", value: "vmlinux (PVH entry)", reason: "booted directly, no in-guest decompression"),
        ])
        #expect((plan.arch, plan.machine, plan.accelerator, plan.transport) == (.x86_64, .microvm, .kvm, .mmio))
    }

    @Test("falling back to TCG when KVM is absent is a warning, never silent")
    func tcgFallbackIsAWarning() throws {
        let plan = try Planner.plan(profile(GoldenCase.tcgMicrovm.json), host: Hosts.x86TCG, options: GoldenCase.tcgMicrovm.options)
        #expect(plan.accelerator == .tcg)
        #expect(plan.choices.first == Plan.Choice(
            topic: "accelerator", value: "tcg", reason: "auto: kvm unavailable (/dev/kvm does not exist); emulating", isWarning: true))
        #expect(plan.choices.filter(\.isWarning).count == 1)
    }

    @Test("an unusable KVM with accel auto falls back to TCG with a warning that carries the fix")
    func unusableKVMFallback() throws {
        var host = Hosts.x86KVM
        host.kvm = .unusable(reason: "no permission to open /dev/kvm", fix: "add yourself to the kvm group")
        let plan = try Planner.plan(profile(#"{"name": "x", "kernel": "/tmp/qlt-golden/vmlinuz"}"#), host: host,
                                    options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.accelerator == .tcg)
        #expect(plan.choices.first == Plan.Choice(
            topic: "accelerator", value: "tcg",
            reason: "auto: kvm unusable: no permission to open /dev/kvm; emulating instead. add yourself to the kvm group",
            isWarning: true))
    }

    @Test("an unusable KVM verdict read from the cache is a one-line warning naming the cache; an explicit accel kvm still gets the whole finding")
    func cachedUnusableKVMShortWarning() throws {
        var host = Hosts.x86KVM
        host.kvm = .unusable(reason: "a test guest made no progress under KVM in 10 s", fix: "set \"accel\": \"tcg\"")
        host.kvmVerdictCache = "/home/u/.cache/qemu-launch/accelerator-health.json"
        let plan = try Planner.plan(profile(#"{"name": "x", "kernel": "/tmp/qlt-golden/vmlinuz"}"#), host: host,
                                    options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.accelerator == .tcg)
        #expect(plan.choices.first == Plan.Choice(
            topic: "accelerator", value: "tcg",
            reason: "auto: kvm unusable here (an earlier probe's verdict, cached in /home/u/.cache/qemu-launch/accelerator-health.json); emulating instead. \"accel\": \"tcg\" skips KVM; delete that file to probe again",
            isWarning: true))
        let explicit = try profile(#"{"name": "x", "accel": "kvm", "kernel": "/tmp/qlt-golden/vmlinuz"}"#)
        let refusal = #expect(throws: ProfileProblems.self) {
            try Planner.plan(explicit, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        }
        #expect(refusal?.problems.first?.message.contains("a test guest made no progress under KVM in 10 s") == true, "\(String(describing: refusal))")
    }

    @Test("a foreign-arch guest runs emulated, with a warning that it is slow")
    func foreignArchWarning() throws {
        let plan = try Planner.plan(profile(GoldenCase.crossArch.json), host: Hosts.x86TCG, options: GoldenCase.crossArch.options)
        #expect(plan.choices.first == Plan.Choice(
            topic: "accelerator", value: "tcg",
            reason: "aarch64 guest on an x86_64 host runs emulated, 10-100x slower than native", isWarning: true))
    }

    @Test("socket paths: QMP, console, one per virtiofs share, one per virtio-serial port in port order")
    func sockets() throws {
        let plan = try Planner.plan(profile(GoldenCase.tcgQ35.json), host: Hosts.x86TCG, options: GoldenCase.tcgQ35.options)
        #expect(plan.sockets == Plan.Sockets(
            qmp: "/run/user/1000/launch-test0001/qmp.sock",
            console: "/run/user/1000/launch-test0001/console.sock",
            virtiofs: [],
            ports: [
                "launch.ctl": "/run/user/1000/launch-test0001/port0.sock",
                "launch.0.in": "/run/user/1000/launch-test0001/port1.sock",
                "launch.0.out": "/run/user/1000/launch-test0001/port2.sock",
                "launch.0.err": "/run/user/1000/launch-test0001/port3.sock",
                "trace": "/run/user/1000/launch-test0001/port4.sock",
            ]))
        let fs = try Planner.plan(profile(GoldenCase.tcgPC.json), host: Hosts.x86TCG, options: GoldenCase.tcgPC.options)
        #expect(fs.sockets.virtiofs == ["/run/user/1000/launch-test0001/fs0.sock", "/run/user/1000/launch-test0001/fs1.sock"])
        #expect(fs.sockets.ports.isEmpty)
    }

    @Test("machine and transport decisions match the plan's", arguments: GoldenCase.all)
    func decisionsMatchPlan(_ golden: GoldenCase) throws {
        let p = try profile(golden.json)
        let plan = try Planner.plan(p, host: golden.host, options: golden.options)
        let decided = Planner.decisions(p, host: golden.host)
        #expect(decided.arch == plan.arch)
        #expect(decided.machine == plan.machine)
        #expect(decided.transport == plan.transport)
        #expect(decided.accelerator == plan.accelerator)
    }

    @Test("a plan round-trips through JSON (launch plan --json)")
    func planCodable() throws {
        let plan = try Planner.plan(profile(GoldenCase.kvmQ35.json), host: Hosts.x86KVM, options: GoldenCase.kvmQ35.options)
        let data = try JSONEncoder().encode(plan)
        #expect(try JSONDecoder().decode(Plan.self, from: data) == plan)
    }
}

extension GoldenCase {
    static let all: [GoldenCase] = [
        kvmMicrovm, kvmQ35, kvmPC, tcgMicrovm, tcgMicrovmPVH, tcgQ35, tcgPC, crossArch,
        armKVMPCI, armKVMMMIO, macHVFPCI, macHVFMMIO,
    ]

    static let kvmMicrovm = GoldenCase(
        title: "x86_64 Linux KVM, QEMU 7.2 microvm: qboot without option ROMs, virtiofs (legacy C), exec ports for the command, PVH adds tsc_early_khz",
        host: Hosts.x86KVM,
        json: """
            {"name": "kvm-micro", "machine": "microvm", "cpus": 2, "memory": "1G",
             "kernel": "/tmp/qlt-golden/vmlinux",
             "shares": [{"tag": "src", "path": "/tmp/qlt-golden/src"}],
             "command": ["uname", "-r"]}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, kernelArguments: ["quiet"], guestPorts: sessionPorts),
        qemu: [
            "/usr/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=kvm-micro",
            "-machine", "microvm,pit=off,pic=off,rtc=on,isa-serial=on,x-option-roms=off,memory-backend=mem",
            "-accel", "kvm",
            "-cpu", "host",
            "-smp", "2",
            "-m", "1024M",
            "-object", "memory-backend-memfd,id=mem,size=1024M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/vmlinux",
            "-append", "console=ttyS0 panic=-1 tsc_early_khz=2995200 quiet",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-device,id=vser0",
            ] + sessionPortArgv() + [
            "-chardev", "socket,id=fs0,path=/run/user/1000/launch-test0001/fs0.sock",
            "-device", "vhost-user-fs-device,chardev=fs0,tag=src",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        virtiofsd: [[
            "/usr/lib/qemu/virtiofsd",
            "--socket-path=/run/user/1000/launch-test0001/fs0.sock",
            "-o", "source=/tmp/qlt-golden/src",
            "-o", "cache=auto",
            "-o", "sandbox=namespace",
        ]],
        cmdline: "console=ttyS0 panic=-1 tsc_early_khz=2995200 quiet")

    static let kvmQ35 = GoldenCase(
        title: "x86_64 Linux KVM, q35: read-only 9p, read-only raw disk, user network with forwards, named consoles",
        host: Hosts.x86KVM,
        json: """
            {"name": "kvm-q35", "machine": "q35", "accel": "kvm", "memory": "2G",
             "kernel": "/tmp/qlt-golden/vmlinuz", "initrd": "/tmp/qlt-golden/initrd.img",
             "cmdline": "root=/dev/vda ro",
             "shares": [{"tag": "data", "path": "/tmp/qlt-golden/data", "transport": "9p", "readOnly": true}],
             "disks": [{"path": "/tmp/qlt-golden/disk.img", "readOnly": true}],
             "network": {"mode": "user", "forwards": [
                {"host": 2222, "guest": 22}, {"host": 5353, "guest": 53, "protocol": "udp"}]},
             "consoles": ["agent", "log"]}
            """,
        qemu: [
            "/usr/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=kvm-q35",
            "-machine", "q35",
            "-accel", "kvm",
            "-cpu", "host",
            "-smp", "1",
            "-m", "2048M",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-initrd", "/tmp/qlt-golden/initrd.img",
            "-append", "console=ttyS0 panic=-1 root=/dev/vda ro",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=port0,path=/run/user/1000/launch-test0001/port0.sock,server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=port0,name=agent",
            "-chardev", "socket,id=port1,path=/run/user/1000/launch-test0001/port1.sock,server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=port1,name=log",
            "-fsdev", "local,id=p9fs0,path=/tmp/qlt-golden/data,security_model=none,readonly=on",
            "-device", "virtio-9p-pci,fsdev=p9fs0,mount_tag=data",
            "-drive", "file=/tmp/qlt-golden/disk.img,if=none,id=disk0,format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=disk0",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53",
            "-device", "virtio-net-pci,netdev=net0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyS0 panic=-1 root=/dev/vda ro")

    static let kvmPC = GoldenCase(
        title: "x86_64 Linux KVM, pc: CPU override, extra QEMU args last, PVH adds no tsc_early_khz off microvm",
        host: Hosts.x86KVM,
        json: """
            {"name": "kvm-pc", "machine": "pc", "kernel": "/tmp/qlt-golden/vmlinux", "cpu": "qemu64",
             "qemu": {"extraArgs": ["-d", "guest_errors"]}}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh),
        qemu: [
            "/usr/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=kvm-pc",
            "-machine", "pc",
            "-accel", "kvm",
            "-cpu", "qemu64",
            "-smp", "1",
            "-m", "512M",
            "-kernel", "/tmp/qlt-golden/vmlinux",
            "-append", "console=ttyS0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
            "-d", "guest_errors",
        ],
        cmdline: "console=ttyS0 panic=-1")

    static let tcgMicrovm = GoldenCase(
        title: "x86_64 Linux TCG-only, QEMU 10.0 microvm (default machine): qboot.rom instead of SeaBIOS, PIT and PIC on, read-only virtiofs (Rust), ephemeral qcow2 disk",
        host: Hosts.x86TCG,
        json: """
            {"name": "tcg-micro", "kernel": "/tmp/qlt-golden/vmlinuz",
             "shares": [{"tag": "src", "path": "/tmp/qlt-golden/src", "readOnly": true}],
             "disks": [{"path": "/tmp/qlt-golden/disk.qcow2", "format": "qcow2", "ephemeral": true}],
             "virtiofsd": {"cache": "never", "extraArgs": ["--log-level=debug"]}}
            """,
        qemu: [
            "/usr/local/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=tcg-micro",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off,memory-backend=mem",
            // QEMU 10.0: bios-microvm.bin is SeaBIOS, so the plan boots qboot.rom.
            "-bios", "qboot.rom",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", "1",
            "-m", "512M",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-append", "console=ttyS0 panic=-1 tsc_early_khz=2400000",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-chardev", "socket,id=fs0,path=/run/user/1000/launch-test0001/fs0.sock",
            "-device", "vhost-user-fs-device,chardev=fs0,tag=src",
            "-drive", "file=/run/user/1000/launch-test0001/disk0.qcow2,if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-device,drive=disk0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        virtiofsd: [[
            "/usr/libexec/virtiofsd",
            "--socket-path=/run/user/1000/launch-test0001/fs0.sock",
            "--shared-dir=/tmp/qlt-golden/src",
            "--cache=never",
            "--sandbox=namespace",
            "--readonly",
            "--log-level=debug",
        ]],
        prepare: [[
            "/usr/local/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
            "-b", "/tmp/qlt-golden/disk.qcow2", "/run/user/1000/launch-test0001/disk0.qcow2",
        ]],
        cmdline: "console=ttyS0 panic=-1 tsc_early_khz=2400000")

    static let tcgMicrovmPVH = GoldenCase(
        title: "x86_64 Linux TCG-only, QEMU 10.0 microvm PVH: qboot.rom, tsc_early_khz before the caller's arguments, the guest kit's session ports without a command, not paused",
        host: Hosts.x86TCG,
        json: #"{"name": "pvh", "accel": "tcg", "kernel": "/tmp/qlt-golden/vmlinux", "cmdline": "loglevel=4"}"#,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, kernelArguments: ["rdinit=/init", "quiet"],
                             startPaused: false, guestPorts: sessionPorts),
        qemu: [
            "/usr/local/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=pvh",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off",
            // QEMU 10.0: bios-microvm.bin is SeaBIOS, so the plan boots qboot.rom.
            "-bios", "qboot.rom",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", "1",
            "-m", "512M",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/vmlinux",
            "-append", "console=ttyS0 panic=-1 tsc_early_khz=2400000 rdinit=/init quiet loglevel=4",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-device,id=vser0",
            ] + sessionPortArgv() + [
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
        ],
        cmdline: "console=ttyS0 panic=-1 tsc_early_khz=2400000 rdinit=/init quiet loglevel=4")

    static let tcgQ35 = GoldenCase(
        title: "x86_64 Linux TCG-only, q35 (accel tcg): exec ports then named consoles, user network without forwards",
        host: Hosts.x86TCG,
        json: """
            {"name": "tcg-q35", "machine": "q35", "accel": "tcg", "cpus": 2, "memory": 1024,
             "kernel": "/tmp/qlt-golden/vmlinuz", "command": ["sh", "-c", "echo hi"],
             "consoles": ["trace"], "network": {"mode": "user"}}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, guestPorts: sessionPorts),
        qemu: [
            "/usr/local/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=tcg-q35",
            "-machine", "q35",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", "2",
            "-m", "1024M",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-append", "console=ttyS0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-pci,id=vser0",
            ] + sessionPortArgv() + [
            "-chardev", "socket,id=port4,path=/run/user/1000/launch-test0001/port4.sock,server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=port4,name=trace",
            "-netdev", "user,id=net0",
            "-device", "virtio-net-pci,netdev=net0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyS0 panic=-1")

    static let tcgPC = GoldenCase(
        title: "x86_64 Linux TCG-only, pc: two virtiofs shares around a 9p one (ids by kind), qcow2 and raw disks",
        host: Hosts.x86TCG,
        json: """
            {"name": "tcg-pc", "machine": "pc", "memory": "768M", "kernel": "/tmp/qlt-golden/vmlinuz",
             "shares": [
                {"tag": "a", "path": "/tmp/qlt-golden/src"},
                {"tag": "b", "path": "/tmp/qlt-golden/data", "transport": "9p"},
                {"tag": "c", "path": "/tmp/qlt-golden/data", "readOnly": true}],
             "disks": [{"path": "/tmp/qlt-golden/disk.qcow2", "format": "qcow2"}, {"path": "/tmp/qlt-golden/disk.img"}]}
            """,
        qemu: [
            "/usr/local/bin/qemu-system-x86_64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=tcg-pc",
            "-machine", "pc,memory-backend=mem",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", "1",
            "-m", "768M",
            "-object", "memory-backend-memfd,id=mem,size=768M,share=on",
            "-kernel", "/tmp/qlt-golden/vmlinuz",
            "-append", "console=ttyS0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-chardev", "socket,id=fs0,path=/run/user/1000/launch-test0001/fs0.sock",
            "-device", "vhost-user-fs-pci,chardev=fs0,tag=a",
            "-fsdev", "local,id=p9fs1,path=/tmp/qlt-golden/data,security_model=none",
            "-device", "virtio-9p-pci,fsdev=p9fs1,mount_tag=b",
            "-chardev", "socket,id=fs1,path=/run/user/1000/launch-test0001/fs1.sock",
            "-device", "vhost-user-fs-pci,chardev=fs1,tag=c",
            "-drive", "file=/tmp/qlt-golden/disk.qcow2,if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-pci,drive=disk0",
            "-drive", "file=/tmp/qlt-golden/disk.img,if=none,id=disk1,format=raw",
            "-device", "virtio-blk-pci,drive=disk1",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        virtiofsd: [
            [
                "/usr/libexec/virtiofsd",
                "--socket-path=/run/user/1000/launch-test0001/fs0.sock",
                "--shared-dir=/tmp/qlt-golden/src",
                "--cache=auto",
                "--sandbox=namespace",
            ],
            [
                "/usr/libexec/virtiofsd",
                "--socket-path=/run/user/1000/launch-test0001/fs1.sock",
                "--shared-dir=/tmp/qlt-golden/data",
                "--cache=auto",
                "--sandbox=namespace",
                "--readonly",
            ],
        ],
        cmdline: "console=ttyS0 panic=-1")

    static let crossArch = GoldenCase(
        title: "x86_64 Linux TCG-only, aarch64 guest: virt (default) on PCI, GICv3, cortex-a57, ttyAMA0, pvpanic-pci",
        host: Hosts.x86TCG,
        json: #"{"name": "cross", "arch": "aarch64", "memory": "256M", "kernel": "/tmp/qlt-golden/Image"}"#,
        qemu: [
            "/usr/local/bin/qemu-system-aarch64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=cross",
            "-machine", "virt,gic-version=3",
            "-accel", "tcg",
            "-cpu", "cortex-a57",
            "-smp", "1",
            "-m", "256M",
            "-kernel", "/tmp/qlt-golden/Image",
            "-append", "console=ttyAMA0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic-pci",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyAMA0 panic=-1")

    static let armKVMPCI = GoldenCase(
        title: "aarch64 Linux KVM, virt on PCI: host GIC, virtiofs (Rust), raw disk, forwarded port",
        host: Hosts.armKVM,
        json: """
            {"name": "arm-kvm", "kernel": "/tmp/qlt-golden/Image", "cpus": 4, "memory": "4G",
             "shares": [{"tag": "src", "path": "/tmp/qlt-golden/src", "guestPath": "/src"}],
             "disks": [{"path": "/tmp/qlt-golden/disk.img"}],
             "network": {"mode": "user", "forwards": [{"host": 8080, "guest": 80}]}}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh),
        qemu: [
            "/usr/bin/qemu-system-aarch64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=arm-kvm",
            "-machine", "virt,gic-version=host,memory-backend=mem",
            "-accel", "kvm",
            "-cpu", "host",
            "-smp", "4",
            "-m", "4096M",
            "-object", "memory-backend-memfd,id=mem,size=4096M,share=on",
            "-kernel", "/tmp/qlt-golden/Image",
            "-append", "console=ttyAMA0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-chardev", "socket,id=fs0,path=/run/user/1000/launch-test0001/fs0.sock",
            "-device", "vhost-user-fs-pci,chardev=fs0,tag=src",
            "-drive", "file=/tmp/qlt-golden/disk.img,if=none,id=disk0,format=raw",
            "-device", "virtio-blk-pci,drive=disk0",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80",
            "-device", "virtio-net-pci,netdev=net0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic-pci",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        virtiofsd: [[
            "/usr/libexec/virtiofsd",
            "--socket-path=/run/user/1000/launch-test0001/fs0.sock",
            "--shared-dir=/tmp/qlt-golden/src",
            "--cache=auto",
            "--sandbox=namespace",
        ]],
        cmdline: "console=ttyAMA0 panic=-1")

    static let armKVMMMIO = GoldenCase(
        title: "aarch64 Linux KVM, virt on virtio-mmio: modern mmio, 9p, exec ports, no pvpanic",
        host: Hosts.armKVM,
        json: """
            {"name": "arm-mmio", "machine": "virt", "transport": "mmio", "accel": "kvm",
             "kernel": "/tmp/qlt-golden/Image",
             "shares": [{"tag": "data", "path": "/tmp/qlt-golden/data", "transport": "9p"}],
             "command": ["true"]}
            """,
        options: PlanOptions(runtimeDir: goldenRuntimeDir, guestPorts: sessionPorts),
        qemu: [
            "/usr/bin/qemu-system-aarch64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=arm-mmio",
            "-machine", "virt,gic-version=host",
            "-accel", "kvm",
            "-cpu", "host",
            "-smp", "1",
            "-m", "512M",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/Image",
            "-append", "console=ttyAMA0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-device,id=vser0",
            ] + sessionPortArgv() + [
            "-fsdev", "local,id=p9fs0,path=/tmp/qlt-golden/data,security_model=none",
            "-device", "virtio-9p-device,fsdev=p9fs0,mount_tag=data",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyAMA0 panic=-1")

    static let macHVFPCI = GoldenCase(
        title: "aarch64 macOS HVF, virt on PCI: GICv2, read-only 9p, forwarded port, named console",
        host: Hosts.macHVF,
        json: """
            {"name": "mac", "kernel": "/tmp/qlt-golden/Image", "memory": "2G", "cpus": 2,
             "shares": [{"tag": "src", "path": "/tmp/qlt-golden/src", "transport": "9p", "readOnly": true}],
             "network": {"mode": "user", "forwards": [{"host": 2222, "guest": 22}]},
             "consoles": ["agent"]}
            """,
        qemu: [
            "/opt/homebrew/bin/qemu-system-aarch64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=mac",
            "-machine", "virt,gic-version=2",
            "-accel", "hvf",
            "-cpu", "host",
            "-smp", "2",
            "-m", "2048M",
            "-kernel", "/tmp/qlt-golden/Image",
            "-append", "console=ttyAMA0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=port0,path=/run/user/1000/launch-test0001/port0.sock,server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=port0,name=agent",
            "-fsdev", "local,id=p9fs0,path=/tmp/qlt-golden/src,security_model=none,readonly=on",
            "-device", "virtio-9p-pci,fsdev=p9fs0,mount_tag=src",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "pvpanic-pci",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        cmdline: "console=ttyAMA0 panic=-1")

    static let macHVFMMIO = GoldenCase(
        title: "aarch64 macOS HVF, virt on virtio-mmio (accel hvf): ephemeral raw disk overlaid with Homebrew's qemu-img",
        host: Hosts.macHVF,
        json: """
            {"name": "mac-mmio", "transport": "mmio", "accel": "hvf", "kernel": "/tmp/qlt-golden/Image",
             "disks": [{"path": "/tmp/qlt-golden/disk.img", "ephemeral": true}]}
            """,
        qemu: [
            "/opt/homebrew/bin/qemu-system-aarch64",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-name", "guest=mac-mmio",
            "-machine", "virt,gic-version=2",
            "-accel", "hvf",
            "-cpu", "host",
            "-smp", "1",
            "-m", "512M",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", "/tmp/qlt-golden/Image",
            "-append", "console=ttyAMA0 panic=-1",
            "-chardev", "socket,id=console,path=/run/user/1000/launch-test0001/console.sock,server=on,wait=off",
            "-serial", "chardev:console",
            "-drive", "file=/run/user/1000/launch-test0001/disk0.qcow2,if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-device,drive=disk0",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0",
            "-chardev", "socket,id=qmp,path=/run/user/1000/launch-test0001/qmp.sock,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-no-reboot",
            "-S",
        ],
        prepare: [[
            "/opt/homebrew/bin/qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
            "-b", "/tmp/qlt-golden/disk.img", "/run/user/1000/launch-test0001/disk0.qcow2",
        ]],
        cmdline: "console=ttyAMA0 panic=-1")
}

/// Hosts that differ only in their QEMU: Debian 12's 7.2 (with its C virtiofsd) and
/// bookworm-backports' 10.0 (no C virtiofsd; the Rust one, as on Debian 13), both
/// described by their recorded help outputs. No KVM: the TCG plans CI runs.
enum VersionedGolden {
    static func host(_ version: String, virtiofsd: VirtiofsdBinary? = nil) -> HostFacts {
        let recorded = version == "7.2" ? RecordedQEMU.v7_2 : RecordedQEMU.v10_0
        var host = HostFacts(
            arch: .x86_64, os: .linux, kvm: .absent("/dev/kvm does not exist"),
            hvf: .absent("Hypervisor.framework exists only on macOS"),
            qemu: [.x86_64: QEMUBinary(path: "/usr/bin/qemu-system-x86_64", capabilities: recorded.x86),
                   .aarch64: QEMUBinary(path: "/usr/bin/qemu-system-aarch64", capabilities: recorded.arm)],
            qemuImg: "/usr/bin/qemu-img",
            virtiofsd: virtiofsd ?? (version == "7.2" ? VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC)
                                                      : VirtiofsdBinary(path: "/usr/libexec/virtiofsd", flavor: .rust)),
            tscKHz: 2_400_000, runtimeBase: "/tmp")
        host.isRoot = true
        return host
    }

    /// Profiles/hello.json as planned: microvm, a share with transport auto, a command.
    static let hello = """
        {"name": "hello", "machine": "microvm", "kernel": "/tmp/qlt-golden/vmlinux",
         "shares": [{"tag": "shared", "path": "/tmp/qlt-golden/src", "transport": "auto"}],
         "command": ["true"]}
        """

    /// The argv every hello plan shares after the machine options (console, session ports, share, rng, QMP).
    static func helloTail(share: [String]) -> [String] {
        let run = goldenRuntimeDir
        var argv = ["-kernel", "/tmp/qlt-golden/vmlinux",
                    "-append", "console=ttyS0 panic=-1 tsc_early_khz=2400000",
                    "-chardev", "socket,id=console,path=\(run)/console.sock,server=on,wait=off", "-serial", "chardev:console",
                    "-device", "virtio-serial-device,id=vser0"]
        argv += sessionPortArgv(run)
        return argv + share + [
            "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-device,rng=rng0",
            "-device", "pvpanic",
            "-chardev", "socket,id=qmp,path=\(run)/qmp.sock,server=on,wait=off", "-mon", "chardev=qmp,mode=control",
            "-no-reboot", "-S"]
    }
}

@Suite("Golden argv per QEMU version: 7.2 and 10.0, from their recorded help outputs")
struct VersionedGoldenArgvTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("QEMU 7.2 microvm: its bios-microvm.bin is qboot, so no -bios and the option ROMs off; virtiofs through the C virtiofsd")
    func microvmOn7_2() throws {
        let plan = try Planner.plan(profile(VersionedGolden.hello), host: VersionedGolden.host("7.2"), options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, guestPorts: sessionPorts))
        let virtiofs = ["-chardev", "socket,id=fs0,path=\(goldenRuntimeDir)/fs0.sock", "-device", "vhost-user-fs-device,chardev=fs0,tag=shared"]
        #expect(plan.qemu == [
            "/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-name", "guest=hello",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off,memory-backend=mem",
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512M",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
        ] + VersionedGolden.helloTail(share: virtiofs))
        #expect(plan.virtiofsd == [["/usr/lib/qemu/virtiofsd", "--socket-path=\(goldenRuntimeDir)/fs0.sock", "-o", "source=/tmp/qlt-golden/src",
                                    "-o", "cache=auto", "-o", "sandbox=namespace"]])
        #expect(plan.choices.contains(Plan.Choice(topic: "qemu", value: "7.2.22", reason: "read from /usr/bin/qemu-system-x86_64's --version and help")))
        #expect(plan.choices.contains(Plan.Choice(topic: "shares[0] \"shared\"", value: "virtiofs", reason: "auto: virtiofsd found (/usr/lib/qemu/virtiofsd, legacy-c flavor)")))
    }

    @Test("QEMU 10.0 microvm: bios-microvm.bin is SeaBIOS, so -bios qboot.rom with the option ROMs off; virtiofs through the Rust virtiofsd")
    func microvmOn10_0() throws {
        let plan = try Planner.plan(profile(VersionedGolden.hello), host: VersionedGolden.host("10.0"), options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, guestPorts: sessionPorts))
        let virtiofs = ["-chardev", "socket,id=fs0,path=\(goldenRuntimeDir)/fs0.sock", "-device", "vhost-user-fs-device,chardev=fs0,tag=shared"]
        #expect(plan.qemu == [
            "/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-name", "guest=hello",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off,memory-backend=mem",
            "-bios", "qboot.rom",
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512M",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
        ] + VersionedGolden.helloTail(share: virtiofs))
        #expect(plan.virtiofsd == [["/usr/libexec/virtiofsd", "--socket-path=\(goldenRuntimeDir)/fs0.sock", "--shared-dir=/tmp/qlt-golden/src",
                                    "--cache=auto", "--sandbox=namespace"]])
        #expect(plan.choices.contains(Plan.Choice(topic: "microvm firmware", value: "qboot.rom (-bios), option ROMs off",
                                                  reason: "this QEMU's bios-microvm.bin is SeaBIOS, which needs option ROMs and can't boot with shared guest memory")))
    }

    @Test("QEMU 10.0 with no virtiofsd: an auto share is 9p, said in one line with what to install; an explicit virtiofs share is refused with the same fix")
    func noVirtiofsdOn10_0() throws {
        var host = VersionedGolden.host("10.0")
        host.virtiofsd = nil
        let plan = try Planner.plan(profile(VersionedGolden.hello), host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, guestPorts: sessionPorts))
        let ninep = ["-fsdev", "local,id=p9fs0,path=/tmp/qlt-golden/src,security_model=none", "-device", "virtio-9p-device,fsdev=p9fs0,mount_tag=shared"]
        #expect(plan.qemu == [
            "/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-name", "guest=hello",
            "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,x-option-roms=off",
            "-bios", "qboot.rom",
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512M",
            "-global", "virtio-mmio.force-legacy=false",
        ] + VersionedGolden.helloTail(share: ninep))
        #expect(plan.virtiofsd == [])
        let shareLines = plan.choices.filter { $0.topic.hasPrefix("shares[") }
        #expect(shareLines == [Plan.Choice(topic: "shares[0] \"shared\"", value: "9p",
                                           reason: "auto: no virtiofsd on this host (QEMU 10.0.2: QEMU >= 8 ships no C virtiofsd); for virtiofs, " + Planner.installVirtiofsdFix)])
        let explicit = try profile(VersionedGolden.hello.replacingOccurrences(of: "\"auto\"", with: "\"virtiofs\""))
        #expect(throws: ProfileProblems.self) { try Planner.plan(explicit, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir)) }
        do {
            _ = try Planner.plan(explicit, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        } catch {
            #expect(error.problems.map(\.path) == ["shares[0].transport"])
            #expect(error.problems.first?.message.contains("QEMU 10.0.2: QEMU >= 8 ships no C virtiofsd") == true)
        }
    }

    @Test("auto picks 9p when the only virtiofsd is the C one and the launcher is not root")
    func cVirtiofsdUnprivileged() throws {
        var host = VersionedGolden.host("7.2")
        host.isRoot = false
        let resolved = Planner.resolvingShareTransports(try profile(VersionedGolden.hello), host: host)
        #expect(resolved.profile.shares.map(\.transport) == [.ninep])
        #expect(resolved.choices.first?.reason.hasPrefix("auto: the C virtiofsd /usr/lib/qemu/virtiofsd runs only as root") == true)
    }

    @Test("a QEMU whose microvm firmware is SeaBIOS and that has no qboot.rom keeps the option ROMs, and can't serve virtiofs on microvm")
    func seabiosWithoutQboot() throws {
        var host = VersionedGolden.host("10.0")
        host.qemu[.x86_64]?.capabilities?.hasQboot = false
        let plan = try Planner.plan(profile(VersionedGolden.hello), host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, guestPorts: sessionPorts))
        #expect(plan.qemu.contains("microvm,pit=on,pic=on,rtc=on,isa-serial=on"))
        #expect(!plan.qemu.contains("-bios"))
        #expect(plan.choices.contains { $0.topic == "shares[0] \"shared\"" && $0.value == "9p" && $0.reason.contains("resets the guest") })
        let explicit = try profile(VersionedGolden.hello.replacingOccurrences(of: "\"auto\"", with: "\"virtiofs\""))
        #expect(throws: ProfileProblems.self) { try Planner.plan(explicit, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir)) }
    }

    @Test("an unprobed QEMU gets the microvm options that boot on every version: bios-microvm.bin with its option ROMs")
    func unprobed() throws {
        var host = VersionedGolden.host("7.2")
        host.qemu[.x86_64]?.capabilities = nil
        let plan = try Planner.plan(profile(VersionedGolden.hello), host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh, guestPorts: sessionPorts))
        #expect(plan.qemu.contains("microvm,pit=on,pic=on,rtc=on,isa-serial=on,memory-backend=mem"))
        #expect(!plan.qemu.contains("-bios"))
        #expect(!plan.choices.contains { $0.topic == "qemu" })
    }

    @Test("q35, pc and virt plans are the same on QEMU 7.2 and 10.0 (only microvm's firmware differs)",
          arguments: [Profile.MachineKind.q35, .pc, .virt])
    func sameAcrossVersions(machine: Profile.MachineKind) throws {
        var p = try profile(VersionedGolden.hello)
        p.machine = machine
        p.arch = machine == .virt ? .aarch64 : .x86_64
        p.shares[0].transport = .ninep
        let options = PlanOptions(runtimeDir: goldenRuntimeDir)
        let old = try Planner.plan(p, host: VersionedGolden.host("7.2"), options: options)
        let new = try Planner.plan(p, host: VersionedGolden.host("10.0"), options: options)
        #expect(old.qemu == new.qemu)
        let machineArgument = old.qemu[old.qemu.firstIndex(of: "-machine")! + 1]
        #expect(machineArgument == (machine == .virt ? "virt,gic-version=3" : machine.rawValue))
    }
}
