import Foundation
import LaunchSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Whether KVM can really run a guest here, not just open /dev/kvm.
///
/// Some hosts (nested virtualization, restricted clouds) let QEMU open /dev/kvm
/// and create a VM, and then the guest never gets past early boot, or QEMU
/// aborts on `-cpu host` ("failed to set MSR 0x10a", seen with QEMU 7.2). The
/// probe boots the kernel with no initrd under KVM for a few seconds: a healthy
/// host reaches the root-mount panic in about a second. The verdict is cached
/// per host kernel, QEMU binary and CPU, so only the first run pays.
package enum AcceleratorHealth {
    package static let probeDeadline: Duration = .seconds(10)

    /// `given` facts as they are, or this host's, probed for `profile` with KVM tried for real.
    package static func hostFacts(for profile: Profile, given: HostFacts?, logger: Logger) async -> HostFacts {
        // Given facts are kept as they are; only the QEMU binary's capabilities are added.
        if let given { return await HostProbe.withQEMUCapabilities(given, for: profile) }
        // Probing runs tools (virtiofsd --help): on a thread of its own, off the cooperative pool.
        let probed = await onOwnThread { HostProbe.current(for: profile) }
        return await verified(probed, for: profile, logger: logger)
    }

    /// Host facts with `kvm` downgraded to `.unusable` when the probe says so, and the
    /// capabilities of the QEMU binary `profile` would run (`HostProbe.withQEMUCapabilities`).
    /// Probes KVM only when it opens and `profile` could use it.
    package static func verified(_ host: HostFacts, for profile: Profile, logger: Logger) async -> HostFacts {
        let host = await HostProbe.withQEMUCapabilities(host, for: profile)
        guard host.os == .linux, host.kvm.isUsable, profile.accel == .auto || profile.accel == .kvm,
              (profile.arch ?? host.arch) == host.arch,
              let qemu = host.qemu[host.arch]?.path else { return host }
        let kernel = profile.kernel.flatMap { $0 == "auto" ? nil : $0 } ?? KernelLocator.newest()?.path
        guard let kernel else { return host }
        var result = host
        let (status, cached) = await status(qemu: qemu, kernel: kernel, arch: host.arch, logger: logger)
        result.kvm = status
        result.kvmVerdictCache = cached ? cacheFile.path : nil
        return result
    }

    /// The cached verdict (and true), or a fresh probe's (and false).
    package static func status(qemu: String, kernel: String, arch: Profile.Arch, logger: Logger) async -> (AcceleratorStatus, Bool) {
        let key = cacheKey(qemu: qemu)
        if let cached = cache.read()[key] {
            logger.debug("KVM health: cached verdict", metadata: ["kvm.key": .string(key)])
            return (cached, true)
        }
        logger.info("KVM health: probing whether guests make progress under KVM (once per host; the verdict is cached)")
        let verdict = await probe(qemu: qemu, kernel: kernel, arch: arch)
        cache.store(verdict, forKey: key)
        return (verdict, false)
    }

    /// Boots `kernel` under KVM with no initrd and watches the console: first with
    /// `-cpu host` (what plans use), then, if QEMU refuses that, with its default CPU
    /// model, so the verdict says whether KVM runs guests at all.
    package static func probe(qemu: String, kernel: String, arch: Profile.Arch, deadline: Duration = probeDeadline) async -> AcceleratorStatus {
        let fix = "This is typical of nested virtualization without full support. Set \"accel\": \"tcg\" (or pass --accel tcg) to skip KVM; after fixing KVM, delete \(cacheFile.path) to probe again"
        let withHost = await boot(qemu: qemu, kernel: kernel, arch: arch, cpu: "host", deadline: deadline)
        switch withHost {
        case .progressed:
            return .usable
        case .stalled(let last):
            return .unusable(reason: "/dev/kvm opens, but a test guest made no progress under KVM in \(formatDuration(deadline)) (its console stopped at: \"\(last)\")", fix: fix)
        case .failed(let said):
            let reason = "/dev/kvm opens, but QEMU can't run a guest with -cpu host (\(said))"
            switch await boot(qemu: qemu, kernel: kernel, arch: arch, cpu: nil, deadline: deadline) {
            case .progressed:
                return .unusable(reason: reason + "; with QEMU's default CPU model the guest does boot", fix: "set \"cpu\" in the profile to a model KVM accepts here, or \"accel\": \"tcg\". " + fix)
            case .stalled(let last):
                return .unusable(reason: reason + ", and with QEMU's default CPU model the guest made no progress in \(formatDuration(deadline)) (its console stopped at: \"\(last)\")", fix: fix)
            case .failed(let said2):
                return .unusable(reason: reason + ", nor with its default CPU model (\(said2))", fix: fix)
            }
        }
    }

    enum ProbeBoot { case progressed, stalled(String), failed(String) }

    static func boot(qemu: String, kernel: String, arch: Profile.Arch, cpu: String?, deadline: Duration) async -> ProbeBoot {
        var argv = [qemu, "-machine", arch == .x86_64 ? "microvm" : "virt,gic-version=host", "-accel", "kvm"]
        if let cpu { argv += ["-cpu", cpu] }
        argv += ["-m", "256M", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
                 "-kernel", kernel, "-append", "\(arch == .x86_64 ? "console=ttyS0" : "console=ttyAMA0") panic=-1",
                 "-serial", "stdio", "-no-reboot"]
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(name: "kvm-probe", argv: argv, environment: childEnvironment())
        } catch {
            return .failed("could not start QEMU: \(error.message)")
        }
        let started = ContinuousClock.now
        // Any of these means the kernel ran all the way to the root mount.
        let progressMarks = ["Kernel panic", "VFS:", "Run /init", "Freeing unused kernel"]
        while ContinuousClock.now - started < deadline {
            let lines = child.outputTail.lines(last: 60)
            if lines.contains(where: { line in progressMarks.contains { line.contains($0) } }) {
                await child.terminate(grace: .milliseconds(200))
                return .progressed
            }
            if let status = child.exitStatus {
                let said = lines.first { $0.contains("error") || $0.contains("failed") } ?? lines.last ?? "no output"
                return .failed("QEMU \(status): \(said)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let last = child.outputTail.lines(last: 60).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .last { !$0.hasPrefix("qemu-system") && !$0.isEmpty } ?? "nothing"
        await child.terminate(grace: .milliseconds(200))
        return .stalled(last)
    }

    static var cache: JSONFileCache<AcceleratorStatus> { JSONFileCache(named: "accelerator-health.json") }
    static var cacheFile: URL { cache.file }

    /// Host kernel release, QEMU binary identity and CPU model: a change to any may change the verdict.
    static func cacheKey(qemu: String) -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        var info = stat()
        stat(qemu, &info)
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespaces) } ?? "?"
        return "kvm|\(release)|\(qemu):\(info.st_size):\(info.st_mtim.tv_sec)|\(model)"
    }
}
