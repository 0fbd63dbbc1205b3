import Foundation
import Testing

@testable import QEMULaunch

/// "Nothing silent": each of these once planned something quietly wrong.
@Suite("Planner: nothing silent about firmware, read-only shares, binaries and PVH")
struct PlannerSafetyTests {
    init() { #expect(GoldenFiles.ready) }

    var uefiHost: HostFacts {
        var host = Hosts.x86KVM
        host.firmware[.x86_64] = UEFIFirmware(code: "/usr/share/OVMF/OVMF_CODE_4M.fd", varsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd", source: "test")
        return host
    }

    @Test("\"firmware\": \"uefi\" puts the code read-only and the VM's own variable store in pflash")
    func uefiPflash() throws {
        var p = Profile(name: "uefi")
        p.machine = .q35
        p.firmware = .uefi
        let plan = try Planner.plan(p, host: uefiHost, options: PlanOptions(runtimeDir: goldenRuntimeDir, stateDirectory: "/var/lib/vm/uefi"))
        let drives = plan.qemu.indices.filter { plan.qemu[$0] == "-drive" }.map { plan.qemu[$0 + 1] }
        #expect(drives == ["if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                           "if=pflash,format=raw,unit=1,file=/var/lib/vm/uefi/efivars.fd"])
        #expect(plan.firmwareVars == Plan.FirmwareVars(template: "/usr/share/OVMF/OVMF_VARS_4M.fd", path: "/var/lib/vm/uefi/efivars.fd"))
        #expect(!plan.qemu.contains("-kernel"))
    }

    @Test("UEFI variables without a state folder live in the runtime dir, and the plan warns they are not kept")
    func uefiWithoutStateWarns() throws {
        var p = Profile(name: "uefi")
        p.machine = .q35
        p.firmware = .uefi
        let plan = try Planner.plan(p, host: uefiHost, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.firmwareVars?.path == goldenRuntimeDir + "/efivars.fd")
        #expect(plan.choices.contains { $0.topic == "firmware" && $0.isWarning })
    }

    @Test("UEFI with no firmware on the host is refused, naming the package")
    func uefiMissingFirmware() {
        var p = Profile(name: "uefi")
        p.machine = .q35
        p.firmware = .uefi
        let problems = planProblems(p, host: Hosts.x86KVM)
        #expect(problems.map(\.path) == ["firmware"])
        #expect(problems.first?.fix == "install the package that ships it (Debian and Ubuntu: ovmf; Fedora: edk2-ovmf)")
    }

    @Test("a read-only virtiofs share on the C virtiofsd (which has no read-only mode) is served from a read-only view made on the host")
    func legacyReadOnlyView() throws {
        var p = Profile(name: "ro")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src", readOnly: true),
                    Profile.Share(tag: "rw", path: "/tmp/qlt-golden/data")]
        var host = Hosts.x86KVM
        host.virtiofsd = VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC)
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.virtiofsdViews == [Plan.ReadOnlyView(source: "/tmp/qlt-golden/src", view: goldenRuntimeDir + "/ro0"), nil])
        #expect(plan.virtiofsd[0].contains("source=" + goldenRuntimeDir + "/ro0"))
        #expect(plan.virtiofsd[1].contains("source=/tmp/qlt-golden/data"))
        #expect(!plan.choices.contains { $0.isWarning && $0.topic == "virtiofsd" })
    }

    @Test("the profile's virtiofsd.binary is the program in the virtiofsd argv")
    func profileVirtiofsdBinaryWins() throws {
        var p = Profile(name: "bin")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src")]
        p.virtiofsd.binary = "/opt/virtiofsd/bin/virtiofsd"
        let plan = try Planner.plan(p, host: Hosts.x86KVM, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.virtiofsd.first?.first == "/opt/virtiofsd/bin/virtiofsd")
    }

    @Test("microvm with a PVH entry and no known TSC frequency is refused (the guest would hang)")
    func pvhWithoutTSCRefused() {
        var p = Profile(name: "pvh")
        p.kernel = "/tmp/qlt-golden/vmlinux"
        var host = Hosts.x86TCG
        host.tscKHz = nil
        do {
            _ = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir, kernelEntry: .pvh))
            Issue.record("planned a PVH microvm without tsc_early_khz")
        } catch {
            #expect(error.problems.map(\.path) == ["kernel"])
            #expect(error.problems.first?.message.contains("TSC") == true)
        }
    }

    @Test("an unresolved \"kernel\": \"auto\" is a problem, not `-kernel auto`")
    func unresolvedAutoKernel() {
        var p = Profile(name: "auto")
        p.kernel = "auto"
        #expect(planProblems(p, host: Hosts.x86TCG).map(\.path) == ["kernel"])
    }

    @Test("port forwards listen on loopback unless the profile names an address")
    func forwardsOnLoopback() throws {
        var p = Profile(name: "net")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.network = Profile.Network(mode: .user, forwards: [Profile.Forward(host: 2222, guest: 22),
                                                            Profile.Forward(host: 8080, guest: 80, address: "0.0.0.0")])
        let plan = try Planner.plan(p, host: Hosts.x86TCG, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.qemu.contains("user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:0.0.0.0:8080-:80"))
    }

    @Test("locked guest memory over RLIMIT_MEMLOCK is refused before start, with the exact fix", arguments: [true, false])
    func memlockTooLow(viaProfileKey: Bool) {
        var p = Profile(name: "locked")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.memory = .mebibytes(1024)
        if viaProfileKey { p.lockMemory = true } else { p.qemu.extraArgs = ["-overcommit", "mem-lock=on"] }
        var host = Hosts.x86KVM
        host.memlockLimitBytes = 8 << 20
        let problems = planProblems(p, host: host)
        #expect(problems.map(\.path) == [viaProfileKey ? "lockMemory" : "qemu.extraArgs"])
        #expect(problems.first?.message.contains("8192 KiB") == true)
        #expect(problems.first?.fix?.contains("/etc/security/limits.conf") == true)
        #expect(problems.first?.fix?.contains("DefaultLimitMEMLOCK") == true)
    }

    @Test("locked guest memory within the limit plans -overcommit mem-lock=on")
    func memlockEnough() throws {
        var p = Profile(name: "locked")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.lockMemory = true
        var host = Hosts.x86KVM
        host.memlockLimitBytes = nil
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        let index = try #require(plan.qemu.firstIndex(of: "-overcommit"))
        #expect(plan.qemu[index + 1] == "mem-lock=on")
    }

    @Test("not root: the C virtiofsd (root only) is refused; the Rust one runs unsandboxed with a warning")
    func virtiofsdWithoutRoot() throws {
        var p = Profile(name: "user")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.shares = [Profile.Share(tag: "src", path: "/tmp/qlt-golden/src")]
        var host = Hosts.x86KVM
        host.isRoot = false
        host.virtiofsd = VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC)
        #expect(planProblems(p, host: host).map(\.path) == ["shares[0].transport"])
        host.virtiofsd = VirtiofsdBinary(path: "/usr/libexec/virtiofsd", flavor: .rust)
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.virtiofsd.first?.contains("--sandbox=none") == true)
        #expect(plan.choices.contains { $0.topic == "virtiofsd" && $0.value == "sandbox none" && $0.isWarning })
    }
}
