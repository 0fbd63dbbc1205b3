import Foundation
import Testing

@testable import QEMULaunch

@Suite("Doctor and accelerator diagnosis with injected host facts")
struct DoctorTests {
    init() { #expect(GoldenFiles.ready) }

    func kvmCheck(_ status: AcceleratorStatus) -> HostCheck {
        var host = Hosts.x86KVM
        host.kvm = status
        return HostDoctor.checks(host).first { $0.name == "kvm" }!
    }

    @Test("KVM absent is a warning that guests run emulated")
    func kvmAbsent() {
        let check = kvmCheck(.absent("/dev/kvm does not exist (no virtualization extensions, or the kvm module is not loaded)"))
        #expect(check.status == .warn)
        #expect(check.detail.contains("/dev/kvm does not exist"))
        #expect(check.detail.contains("TCG"))
    }

    @Test("KVM without permission names the group to join")
    func kvmNoPermission() {
        let check = kvmCheck(.unusable(reason: "no permission to open /dev/kvm",
                                       fix: "add yourself to the kvm group: sudo usermod -aG kvm $USER, then log in again"))
        #expect(check.status == .warn)
        #expect(check.fix?.contains("usermod -aG kvm") == true)
    }

    @Test("healthy KVM is ok")
    func kvmHealthy() {
        #expect(kvmCheck(.usable).status == .ok)
    }

    @Test("KVM whose guests hang is a warning that says so in plain words, with the fix")
    func kvmHung() {
        let check = kvmCheck(.unusable(reason: "/dev/kvm opens, but a test guest made no progress under KVM in 10 s", fix: "Set \"accel\": \"tcg\""))
        #expect(check.status == .warn)
        #expect(check.detail.contains("made no progress"))
        #expect(check.fix == "Set \"accel\": \"tcg\"")
    }

    @Test("auto falls back to TCG with one warning carrying the probe's reason and fix")
    func autoFallsBack() throws {
        var host = Hosts.x86KVM
        host.kvm = .unusable(reason: "guests make no progress", fix: "use tcg")
        var p = Profile(name: "auto")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        let plan = try Planner.plan(p, host: host, options: PlanOptions(runtimeDir: goldenRuntimeDir))
        #expect(plan.accelerator == .tcg)
        let warnings = plan.choices.filter(\.isWarning)
        #expect(warnings.count == 1)
        #expect(warnings.first?.reason.contains("guests make no progress") == true)
        #expect(warnings.first?.reason.contains("use tcg") == true)
    }

    @Test("\"accel\": \"kvm\" on a host whose KVM is unusable fails with the diagnosis instead of falling back")
    func explicitKVMRefused() {
        var host = Hosts.x86KVM
        host.kvm = .unusable(reason: "guests make no progress", fix: "use tcg")
        var p = Profile(name: "kvm")
        p.kernel = "/tmp/qlt-golden/vmlinuz"
        p.accel = .kvm
        let problems = planProblems(p, host: host)
        #expect(problems.count == 1)
        #expect(problems.first?.path == "accel")
        #expect(problems.first?.message.contains("guests make no progress") == true)
        #expect(problems.first?.fix == "use tcg")
    }

    @Test("missing virtiofsd and firmware are warnings with the package to install")
    func missingPrograms() {
        var host = Hosts.x86KVM
        host.virtiofsd = nil
        host.firmware = [:]
        let checks = HostDoctor.checks(host)
        let virtiofsd = checks.first { $0.name == "virtiofsd" }
        #expect(virtiofsd?.status == .warn)
        #expect(virtiofsd?.fix?.hasPrefix("install the package that ships the Rust virtiofsd (Debian 13, Ubuntu 24.04 and Fedora: virtiofsd;") == true)
        let uefi = checks.first { $0.name == "uefi x86_64" }
        #expect(uefi?.status == .warn)
        #expect(uefi?.fix == "install the package that ships it (Debian and Ubuntu: ovmf; Fedora: edk2-ovmf)")
    }

    @Test("a missing QEMU for the host's arch fails, naming the Debian package")
    func missingQEMU() {
        var host = Hosts.x86KVM
        host.qemu = [:]
        let check = HostDoctor.checks(host).first { $0.name == "qemu x86_64" }
        #expect(check?.status == .fail)
        #expect(check?.fix == "install the package that ships it (Debian and Ubuntu: qemu-system-x86)")
    }

    @Test("a low locked-memory limit is reported with how to raise it")
    func lowMemlock() {
        var host = Hosts.x86KVM
        host.memlockLimitBytes = 8 << 20
        let check = HostDoctor.checks(host).first { $0.name == "memlock" }
        #expect(check?.detail.contains("8192 KiB") == true)
        #expect(check?.fix?.contains("limits.conf") == true)
    }
}
