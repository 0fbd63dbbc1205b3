import Foundation
import Testing

@testable import QEMULaunch

/// A change to a valid profile, the host it is planned on, and every problem the plan must report.
struct HostCase: Sendable, CustomTestStringConvertible {
    var title: String
    var host: HostFacts = Hosts.x86KVM
    var change: @Sendable (inout Profile) -> Void
    var problems: [ProfileProblem]
    var testDescription: String { title }

    /// A profile that plans cleanly on `Hosts.x86KVM`, with the change applied.
    var profile: Profile {
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        change(&p)
        return p
    }
}

private func problem(_ path: String, _ message: String, fix: String? = nil) -> ProfileProblem {
    ProfileProblem(path: path, message: message, fix: fix)
}

private let kernelFix = "give the path of a bzImage/vmlinux/Image, or \"auto\" for the newest /boot/vmlinuz-*"
private let portNameFix = "use 1-63 letters, digits, '.', '_' or '-'"

@Suite("Host validation: every problem of a decoded profile on a host, with its path and fix")
struct HostValidationTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("the unchanged base profile plans on every host kind", arguments: [Hosts.x86KVM, Hosts.x86TCG])
    func baseIsValid(_ host: HostFacts) {
        #expect(planProblems(HostCase(title: "", change: { _ in }, problems: []).profile, host: host) == [])
    }

    @Test("Planner.plan refuses with exactly these problems", arguments: HostCase.all)
    func planProblemsAreExact(_ c: HostCase) {
        #expect(planProblems(c.profile, host: c.host) == c.problems)
    }

    @Test("ProfileValidator.hostProblems finds the same problems, except the accelerator and virtiofsd checks made while planning",
          arguments: HostCase.all)
    func validatorAgrees(_ c: HostCase) {
        let planOnly = c.problems.filter { $0.path == "accel" || $0.message.contains("needs virtiofsd") }
        let expected = c.problems.filter { !planOnly.contains($0) }
        #expect(ProfileValidator.hostProblems(c.profile, host: c.host, runtimeDir: goldenRuntimeDir) == expected)
    }

    @Test("a profile with many problems on a host lists all of them at once, in profile order, accelerator last")
    func everyHostProblemAtOnce() {
        var p = Profile(name: "bad name")
        p.cpus = 0
        p.memory = .mebibytes(16)
        p.machine = .virt
        p.accel = .hvf
        p.kernel = "/nonexistent/qlt/vmlinuz"
        p.initrd = "/nonexistent/qlt/initrd.img"
        p.shares = [
            Profile.Share(tag: "src", path: "/nonexistent/qlt/share"),
            Profile.Share(tag: "src", path: "/tmp/qlt-golden/src", guestPath: "mnt/src"),
        ]
        p.disks = [Profile.Disk(path: "/nonexistent/qlt/disk.img", readOnly: true, ephemeral: true)]
        p.network = Profile.Network(mode: .none, forwards: [Profile.Forward(host: 0, guest: 22), Profile.Forward(host: 0, guest: 23)])
        p.command = []
        p.consoles = ["launch.agent", "bad name"]
        let longRuntimeDir = "/tmp/" + String(repeating: "r", count: 90)  // 95 bytes
        do {
            _ = try Planner.plan(p, host: Hosts.x86KVM, options: PlanOptions(runtimeDir: longRuntimeDir))
            Issue.record("planning should have failed")
        } catch {
            #expect(error.source == "bad name")
            #expect(error.problems == [
                problem("name", "\"bad name\" is not a usable VM name", fix: "use 1-64 letters, digits, '.', '_' or '-'"),
                problem("cpus", "0 CPUs is out of range", fix: "use 1 to 255"),
                problem("memory", "16M is too little memory for a Linux guest", fix: "use at least \"32M\" (\"256M\" or more is comfortable)"),
                problem("machine", "the virt machine is for aarch64; an x86_64 guest can't have it", fix: "use \"microvm\", \"q35\" or \"pc\""),
                problem("kernel", "no kernel file at /nonexistent/qlt/vmlinuz", fix: kernelFix),
                problem("initrd", "no initrd file at /nonexistent/qlt/initrd.img", fix: "fix the path or remove \"initrd\""),
                problem("shares[0].path", "no folder at /nonexistent/qlt/share", fix: "create it or fix the path"),
                problem("shares[1].tag", "duplicate tag \"src\" (also shares[0].tag)", fix: "give every share its own tag"),
                problem("shares[1].guestPath", "\"mnt/src\" is not an absolute guest path", fix: "start it with /"),
                problem("disks[0].path", "no disk image at /nonexistent/qlt/disk.img", fix: "fix the path"),
                problem("disks[0]", "a disk can't be both ephemeral and readOnly", fix: "keep one: ephemeral discards writes, readOnly forbids them"),
                problem("network.forwards[0].host", "port 0 is out of range", fix: "use 1-65535"),
                problem("network.forwards[1].host", "port 0 is out of range", fix: "use 1-65535"),
                problem("network.forwards[1].host", "host port 0 is forwarded twice (also network.forwards[0])", fix: "use another host port"),
                problem("network.forwards", "port forwards need \"mode\": \"user\"", fix: "set network.mode to \"user\" or remove the forwards"),
                problem("command", "the command is an empty array", fix: "give an argv like [\"uname\", \"-r\"], or remove \"command\""),
                problem("consoles[0]", "port names starting with \"launch.\" are the launcher's own", fix: "pick another name"),
                problem("consoles[1]", "\"bad name\" is not a usable port name", fix: portNameFix),
                problem("$", "socket paths under \(longRuntimeDir) would be 108 bytes, over the 107-byte Unix socket limit",
                        fix: "set \"runtimeDir\" to a shorter folder, like /tmp"),
                problem("accel", "hvf is not available on linux", fix: "use \"accel\": \"kvm\", \"tcg\" or \"auto\""),
            ])
        }
    }
}

@Suite("Socket path limits: sun_path holds 107 bytes on Linux and 103 on macOS")
struct SocketPathLimitTests {
    init() { #expect(GoldenFiles.ready) }

    private var base: Profile {
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        return p
    }

    @Test("a runtime dir of 94 bytes plans, and its longest socket path is exactly 107 bytes")
    func longestThatFits() throws {
        let dir = "/tmp/" + String(repeating: "r", count: 89)
        #expect(dir.utf8.count == 94)
        let plan = try Planner.plan(base, host: Hosts.x86KVM, options: PlanOptions(runtimeDir: dir))
        let sockets = [plan.sockets.qmp, plan.sockets.console] + plan.sockets.virtiofs + plan.sockets.ports.values
        #expect(sockets.map(\.utf8.count).max() == 107)
    }

    @Test("one byte more and the plan is refused, naming the runtime dir, the length and the limit")
    func oneByteTooLong() {
        let dir = "/tmp/" + String(repeating: "r", count: 90)
        #expect(planProblems(base, host: Hosts.x86KVM, runtimeDir: dir) == [
            problem("$", "socket paths under \(dir) would be 108 bytes, over the 107-byte Unix socket limit",
                    fix: "set \"runtimeDir\" to a shorter folder, like /tmp"),
        ])
    }

    @Test("on macOS the limit is 103 bytes")
    func macOSLimit() {
        var p = base
        p.arch = .aarch64
        p.kernel = "/tmp/qlt-golden/Image"
        let fits = "/tmp/" + String(repeating: "r", count: 85)  // 90 + 1 + 12 = 103
        let over = fits + "r"
        #expect(planProblems(p, host: Hosts.macHVF, runtimeDir: fits) == [])
        #expect(planProblems(p, host: Hosts.macHVF, runtimeDir: over) == [
            problem("$", "socket paths under \(over) would be 104 bytes, over the 103-byte Unix socket limit",
                    fix: "set \"runtimeDir\" to a shorter folder, like /tmp"),
        ])
        #expect(ProfileValidator.socketPathLimit(.linux) == 107)
        #expect(ProfileValidator.socketPathLimit(.macOS) == 103)
    }

    @Test("before the runtime dir exists, a profile's runtimeDir base too long for launch-XXXXXX/console.sock is refused with the byte budget")
    func profileRuntimeBaseTooLong() {
        var p = base
        p.runtimeDir = "/tmp/" + String(repeating: "b", count: 76)  // 81 bytes + "/launch-XXXXXX/console.sock" = 108
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM) == [
            problem("runtimeDir", "socket paths under \(p.runtimeDir!) would be 108 bytes, over the 107-byte Unix socket limit",
                    fix: "set \"runtimeDir\" to a folder of at most 80 bytes, like /tmp"),
        ])
        p.runtimeDir = "/tmp/" + String(repeating: "b", count: 75)  // 80 bytes
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM) == [])
    }

    @Test("the runtime dir's name budget matches what RuntimeDirectory makes: launch-XXXXXX")
    func runtimeDirNameLength() throws {
        let base = try TempDir()
        defer { base.remove() }
        let made = try RuntimeDirectory.create(under: base.path)
        defer { made.remove() }
        #expect(made.path.utf8.count - base.path.utf8.count - 1 == ProfileValidator.runtimeDirNameLength)
    }

    @Test("a host runtime base that is too long is reported at runtimeDir, where the fix goes")
    func hostRuntimeBaseTooLong() {
        var host = Hosts.x86KVM
        host.runtimeBase = "/run/user/1000/" + String(repeating: "x", count: 70)  // 85 bytes
        #expect(ProfileValidator.hostProblems(base, host: host) == [
            problem("runtimeDir", "socket paths under \(host.runtimeBase) would be 112 bytes, over the 107-byte Unix socket limit",
                    fix: "set \"runtimeDir\" to a folder of at most 80 bytes, like /tmp"),
        ])
    }

    @Test("a runtimeDir in the profile that is too long is reported at runtimeDir also when planning")
    func profileRuntimeDirPathWhenPlanning() {
        var p = base
        p.runtimeDir = "/tmp"
        let dir = "/tmp/" + String(repeating: "r", count: 90)
        #expect(planProblems(p, host: Hosts.x86KVM, runtimeDir: dir).map(\.path) == ["runtimeDir"])
    }
}

extension HostCase {
    static let all: [HostCase] = [
        // Files.
        HostCase(title: "a kernel path that doesn't exist",
                 change: { $0.kernel = "/nonexistent/qlt/vmlinuz" },
                 problems: [problem("kernel", "no kernel file at /nonexistent/qlt/vmlinuz", fix: kernelFix)]),
        HostCase(title: "a kernel path that is a folder",
                 change: { $0.kernel = "/tmp/qlt-golden/src" },
                 problems: [problem("kernel", "no kernel file at /tmp/qlt-golden/src", fix: kernelFix)]),
        HostCase(title: "no kernel with no firmware",
                 change: { $0.kernel = nil },
                 problems: [problem("kernel", "no kernel given, and firmware is \"none\" (direct kernel boot needs one)",
                                    fix: "add \"kernel\": \"auto\" or a path")]),
        HostCase(title: "an initrd path that doesn't exist",
                 change: { $0.initrd = "/nonexistent/qlt/initrd.img" },
                 problems: [problem("initrd", "no initrd file at /nonexistent/qlt/initrd.img", fix: "fix the path or remove \"initrd\"")]),
        HostCase(title: "a share folder that doesn't exist",
                 change: { $0.shares = [Profile.Share(tag: "src", path: "/nonexistent/qlt/share", transport: .ninep)] },
                 problems: [problem("shares[0].path", "no folder at /nonexistent/qlt/share", fix: "create it or fix the path")]),
        HostCase(title: "a share path that is a file, not a folder",
                 change: { $0.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/disk.img")] },
                 problems: [problem("shares[0].path", "no folder at /tmp/qlt-golden/disk.img", fix: "create it or fix the path")]),
        HostCase(title: "an empty share path",
                 change: { $0.shares = [Profile.Share(tag: "src", path: "", transport: .ninep)] },
                 problems: [problem("shares[0].path", "the host path is empty", fix: "name the host folder to share")]),
        HostCase(title: "a disk image that doesn't exist",
                 change: { $0.disks = [Profile.Disk(path: "/nonexistent/qlt/disk.img")] },
                 problems: [problem("disks[0].path", "no disk image at /nonexistent/qlt/disk.img", fix: "fix the path")]),
        // Shares.
        HostCase(title: "two shares with the same tag",
                 change: {
                     $0.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src"),
                                  Profile.Share(tag: "data", path: "/tmp/qlt-golden/data"),
                                  Profile.Share(tag: "src", path: "/tmp/qlt-golden/data", transport: .ninep)]
                 },
                 problems: [problem("shares[2].tag", "duplicate tag \"src\" (also shares[0].tag)", fix: "give every share its own tag")]),
        HostCase(title: "an empty tag",
                 change: { $0.shares = [Profile.Share(tag: "", path: "/tmp/qlt-golden/src")] },
                 problems: [problem("shares[0].tag", "the mount tag is empty", fix: "give a short tag like \"src\"")]),
        HostCase(title: "a tag of 37 bytes",
                 change: { $0.shares = [Profile.Share(tag: String(repeating: "t", count: 37), path: "/tmp/qlt-golden/src")] },
                 problems: [problem("shares[0].tag", "the tag \"\(String(repeating: "t", count: 37))\" is longer than 36 bytes",
                                    fix: "use a shorter tag")]),
        HostCase(title: "a relative guest path",
                 change: { $0.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src", guestPath: "src")] },
                 problems: [problem("shares[0].guestPath", "\"src\" is not an absolute guest path", fix: "start it with /")]),
        HostCase(title: "a virtiofs share (after a 9p one) on a host without virtiofsd",
                 host: Hosts.macHVF,
                 change: {
                     $0.kernel = "/tmp/qlt-golden/Image"
                     $0.shares = [Profile.Share(tag: "a", path: "/tmp/qlt-golden/src", transport: .ninep),
                                  Profile.Share(tag: "b", path: "/tmp/qlt-golden/data")]
                 },
                 problems: [problem(
                    "shares[1].transport", "a virtiofs share needs virtiofsd, and none was found on this host",
                    fix: "install the package that ships the Rust virtiofsd (Debian 13, Ubuntu 24.04 and Fedora: virtiofsd; on Debian 12, QEMU 7.2's qemu-system-common ships the C one at /usr/lib/qemu/virtiofsd, or build the Rust one with `cargo install virtiofsd`), set virtiofsd.binary, or use \"transport\": \"9p\" (or \"auto\": 9p when no virtiofsd is found)")]),
        // Disks.
        HostCase(title: "a disk both ephemeral and readOnly",
                 change: { $0.disks = [Profile.Disk(path: "/tmp/qlt-golden/disk.img"), Profile.Disk(path: "/tmp/qlt-golden/disk.img", readOnly: true, ephemeral: true)] },
                 problems: [problem("disks[1]", "a disk can't be both ephemeral and readOnly",
                                    fix: "keep one: ephemeral discards writes, readOnly forbids them")]),
        // Machines and transports.
        HostCase(title: "virt for an x86_64 guest",
                 change: { $0.machine = .virt },
                 problems: [problem("machine", "the virt machine is for aarch64; an x86_64 guest can't have it", fix: "use \"microvm\", \"q35\" or \"pc\"")]),
        HostCase(title: "microvm for an aarch64 guest",
                 host: Hosts.armKVM,
                 change: { $0.machine = .microvm; $0.kernel = "/tmp/qlt-golden/Image" },
                 problems: [problem("machine", "the microvm machine is x86-only; an aarch64 guest can't have it", fix: "use \"virt\"")]),
        HostCase(title: "q35 for an aarch64 guest on an x86_64 host",
                 change: { $0.arch = .aarch64; $0.machine = .q35 },
                 problems: [problem("machine", "the q35 machine is x86-only; an aarch64 guest can't have it", fix: "use \"virt\"")]),
        HostCase(title: "mmio transport on q35",
                 change: { $0.machine = .q35; $0.transport = .mmio },
                 problems: [problem("transport", "q35 has no virtio-mmio bus: its devices are PCI",
                                    fix: "use \"transport\": \"pci\" (or \"auto\"), or machine \"microvm\"")]),
        HostCase(title: "mmio transport on pc",
                 change: { $0.machine = .pc; $0.transport = .mmio },
                 problems: [problem("transport", "pc has no virtio-mmio bus: its devices are PCI",
                                    fix: "use \"transport\": \"pci\" (or \"auto\"), or machine \"microvm\"")]),
        HostCase(title: "pci transport on microvm",
                 change: { $0.machine = .microvm; $0.transport = .pci },
                 problems: [problem("transport", "microvm has no PCI bus here: its devices are virtio-mmio",
                                    fix: "use \"transport\": \"mmio\" (or \"auto\"), or machine \"q35\"")]),
        HostCase(title: "pci transport on the default machine (microvm) too",
                 change: { $0.transport = .pci },
                 problems: [problem("transport", "microvm has no PCI bus here: its devices are virtio-mmio",
                                    fix: "use \"transport\": \"mmio\" (or \"auto\"), or machine \"q35\"")]),
        HostCase(title: "UEFI firmware on microvm",
                 change: { $0.machine = .microvm; $0.firmware = .uefi },
                 problems: [problem("firmware", "microvm boots only a kernel directly; it has no UEFI firmware", fix: "use machine \"q35\" for UEFI")]),
        // Accelerators.
        HostCase(title: "hvf on Linux",
                 change: { $0.accel = .hvf },
                 problems: [problem("accel", "hvf is not available on linux", fix: "use \"accel\": \"kvm\", \"tcg\" or \"auto\"")]),
        HostCase(title: "kvm on macOS",
                 host: Hosts.macHVF,
                 change: { $0.accel = .kvm; $0.kernel = "/tmp/qlt-golden/Image" },
                 problems: [problem("accel", "kvm is not available on macOS", fix: "use \"accel\": \"hvf\", \"tcg\" or \"auto\"")]),
        HostCase(title: "kvm for an aarch64 guest on an x86_64 host",
                 change: { $0.accel = .kvm; $0.arch = .aarch64; $0.kernel = "/tmp/qlt-golden/Image" },
                 problems: [problem("accel", "kvm can't run an aarch64 guest on this x86_64 host",
                                    fix: "use an x86_64 kernel and images, or \"accel\": \"tcg\" (emulation is 10-100x slower)")]),
        HostCase(title: "hvf for an x86_64 guest on Apple silicon",
                 host: Hosts.macHVF,
                 change: { $0.accel = .hvf; $0.arch = .x86_64 },
                 problems: [problem("accel", "hvf can't run an x86_64 guest on this aarch64 host",
                                    fix: "use an aarch64 kernel and images, or \"accel\": \"tcg\" (emulation is 10-100x slower)")]),
        HostCase(title: "kvm asked for on a host without /dev/kvm",
                 host: Hosts.x86TCG,
                 change: { $0.accel = .kvm },
                 problems: [problem("accel", "kvm was asked for, but /dev/kvm does not exist", fix: "use \"accel\": \"tcg\" or \"auto\"")]),
        HostCase(title: "kvm asked for on a host whose /dev/kvm can't be opened",
                 host: {
                     var host = Hosts.x86KVM
                     host.kvm = .unusable(reason: "no permission to open /dev/kvm", fix: "add yourself to the kvm group")
                     return host
                 }(),
                 change: { $0.accel = .kvm },
                 problems: [problem("accel", "kvm was asked for, but no permission to open /dev/kvm", fix: "add yourself to the kvm group")]),
        // Network.
        HostCase(title: "forwarded ports out of range",
                 change: {
                     $0.network = Profile.Network(mode: .user, forwards: [
                         Profile.Forward(host: 0, guest: 22), Profile.Forward(host: 65536, guest: -1, proto: .udp),
                     ])
                 },
                 problems: [
                     problem("network.forwards[0].host", "port 0 is out of range", fix: "use 1-65535"),
                     problem("network.forwards[1].host", "port 65536 is out of range", fix: "use 1-65535"),
                     problem("network.forwards[1].guest", "port -1 is out of range", fix: "use 1-65535"),
                 ]),
        HostCase(title: "a host port forwarded twice (the same port over udp is another forward)",
                 change: {
                     $0.network = Profile.Network(mode: .user, forwards: [
                         Profile.Forward(host: 2222, guest: 22), Profile.Forward(host: 2222, guest: 22, proto: .udp),
                         Profile.Forward(host: 2222, guest: 23),
                     ])
                 },
                 problems: [problem("network.forwards[2].host", "host port 2222 is forwarded twice (also network.forwards[0])",
                                    fix: "use another host port")]),
        HostCase(title: "forwards without user networking",
                 change: { $0.network = Profile.Network(mode: .none, forwards: [Profile.Forward(host: 2222, guest: 22)]) },
                 problems: [problem("network.forwards", "port forwards need \"mode\": \"user\"",
                                    fix: "set network.mode to \"user\" or remove the forwards")]),
        // Command and consoles.
        HostCase(title: "an empty command",
                 change: { $0.command = [] },
                 problems: [problem("command", "the command is an empty array", fix: "give an argv like [\"uname\", \"-r\"], or remove \"command\"")]),
        HostCase(title: "bad console names: a space, empty, the launcher's prefix, a duplicate, 64 characters",
                 change: { $0.consoles = ["bad name", "", "launch.stdout", "agent", "agent", String(repeating: "c", count: 64), "a,b"] },
                 problems: [
                     problem("consoles[0]", "\"bad name\" is not a usable port name", fix: portNameFix),
                     problem("consoles[1]", "\"\" is not a usable port name", fix: portNameFix),
                     problem("consoles[2]", "port names starting with \"launch.\" are the launcher's own", fix: "pick another name"),
                     problem("consoles[4]", "duplicate port name \"agent\"", fix: "give every port its own name"),
                     problem("consoles[5]", "\"\(String(repeating: "c", count: 64))\" is not a usable port name", fix: portNameFix),
                     problem("consoles[6]", "\"a,b\" is not a usable port name", fix: portNameFix),
                 ]),
        HostCase(title: "27 consoles",
                 change: { $0.consoles = (0..<27).map { "c\($0)" } },
                 problems: [problem("consoles", "too many ports (27)", fix: "use at most 26")]),
        // Name, CPUs, memory.
        HostCase(title: "a VM name with a space",
                 change: { $0.name = "my vm" },
                 problems: [problem("name", "\"my vm\" is not a usable VM name", fix: "use 1-64 letters, digits, '.', '_' or '-'")]),
        HostCase(title: "a VM name with a comma (it would inject a QEMU -name option)",
                 change: { $0.name = "vm,debug-threads=on" },
                 problems: [problem("name", "\"vm,debug-threads=on\" is not a usable VM name", fix: "use 1-64 letters, digits, '.', '_' or '-'")]),
        HostCase(title: "a VM name of 65 characters",
                 change: { $0.name = String(repeating: "n", count: 65) },
                 problems: [problem("name", "\"\(String(repeating: "n", count: 65))\" is not a usable VM name",
                                    fix: "use 1-64 letters, digits, '.', '_' or '-'")]),
        HostCase(title: "0 CPUs",
                 change: { $0.cpus = 0 },
                 problems: [problem("cpus", "0 CPUs is out of range", fix: "use 1 to 255")]),
        HostCase(title: "256 CPUs",
                 change: { $0.cpus = 256 },
                 problems: [problem("cpus", "256 CPUs is out of range", fix: "use 1 to 255")]),
        HostCase(title: "16 MiB of memory",
                 change: { $0.memory = MemorySize(parsing: "16M")! },
                 problems: [problem("memory", "16M is too little memory for a Linux guest", fix: "use at least \"32M\" (\"256M\" or more is comfortable)")]),
        HostCase(title: "memory that is not a whole number of MiB",
                 change: { $0.memory = MemorySize(parsing: "33000K")! },
                 problems: [problem("memory", "33000K is not a whole number of MiB", fix: "round it to MiB, like \"512M\"")]),
    ]
}

@Suite("Boundaries that are valid")
struct HostValidationBoundaryTests {
    init() { #expect(GoldenFiles.ready) }

    @Test("a 36-byte tag, 26 consoles, 255 CPUs, 32 MiB, ports 1 and 65535, a 64-character name all plan")
    func validBoundaries() {
        var p = Profile(name: String(repeating: "n", count: 64))
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.cpus = 255
        p.memory = .mebibytes(32)
        p.shares = [Profile.Share(tag: String(repeating: "t", count: 36), path: "/tmp/qlt-golden/src")]
        p.consoles = (0..<26).map { "c\($0)" }
        p.network = Profile.Network(mode: .user, forwards: [Profile.Forward(host: 1, guest: 65535), Profile.Forward(host: 65535, guest: 1)])
        #expect(planProblems(p, host: Hosts.x86KVM) == [])
    }

    @Test("26 consoles plus a one-slot guest-kit session's 4 ports fit: port29.sock is the last socket")
    func consolesWithCommand() throws {
        var p = Profile(name: "v")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.command = ["true"]
        p.consoles = (0..<26).map { "c\($0)" }
        let plan = try Planner.plan(p, host: Hosts.x86KVM, options: PlanOptions(runtimeDir: goldenRuntimeDir, guestPorts: sessionPorts))
        #expect(plan.sockets.ports.count == 30)
        #expect(plan.sockets.ports["c25"] == "/run/user/1000/launch-test0001/port29.sock")
    }

    @Test("\"kernel\": \"auto\" passes validation (the caller resolves it before planning)")
    func autoKernel() {
        var p = Profile(name: "v")
        p.kernel = "auto"
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [])
    }

    @Test("UEFI firmware without a kernel passes validation on q35")
    func uefiWithoutKernel() {
        var p = Profile(name: "v")
        p.firmware = .uefi
        #expect(ProfileValidator.hostProblems(p, host: Hosts.x86KVM, runtimeDir: goldenRuntimeDir) == [])
        #expect(Planner.defaultMachine(arch: .x86_64, firmware: .uefi) == .q35)
    }
}
