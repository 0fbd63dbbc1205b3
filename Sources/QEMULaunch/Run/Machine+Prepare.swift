import Foundation
import LaunchSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// What a launch is prepared for.
public enum LaunchPurpose: Sendable, Hashable {
    /// `Machine.start`: the VM runs next. A VM that keeps state and has no identity yet
    /// gets a new one in the plan, stored when it starts; a running VM's state folder is refused.
    case start
    /// `launch plan`: show what would run and make nothing. The state folder is read as it
    /// is (no identity when none was made), and the plan has no launcher QMP fd.
    case preview
}

/// A launch prepared and planned: the facts read from the host, the options the plan
/// was made with, the plan, and what starting it still has to make. The result of
/// `Machine.prepare(_:options:for:)`, shared by `Machine.start` and `launch plan`.
public struct PreparedLaunch: Sendable {
    /// What was read from the host: the profile with its kernel resolved, host facts,
    /// the profile's files, the QEMU binary's capabilities.
    public var facts: LaunchFacts
    /// The options the plan was made with (runtime dir, kernel entry, ports, state, identity).
    public var options: PlanOptions
    /// The plan: `Planner.plan(facts, options:)`.
    public var plan: Plan
    /// The VM's state folder, when its profile keeps state (it may not exist yet).
    package var stateFolder: VMStateFolder?
    /// Whether the VM has no stored identity yet: for `.start` the plan carries a new one
    /// that starting stores; for `.preview` the plan has none.
    public var identityIsNew: Bool

    /// The same launch planned again with `identity` (pure: no host access).
    mutating func replan(identity: MachineIdentity) throws(LaunchError) {
        options.identity = identity
        do {
            plan = try Planner.plan(facts, options: options)
        } catch {
            throw .invalid(error)
        }
    }
}

extension Machine {
    /// Prepares `profile` for a launch, then plans it: the one place a launch reads the host.
    ///
    /// Preparing resolves `"kernel": "auto"`, probes the host (or takes `options.host`),
    /// checks the programs the launch needs, looks at every file the profile names, reads
    /// the QEMU binary's capabilities, picks the runtime dir's name and reads the VM's state
    /// folder. Planning (`Planner.plan`) is then a pure function of those facts and lists
    /// every problem of the profile at once. Nothing is made on the host: `Machine.start`
    /// makes the runtime dir and the identity after this returns.
    ///
    /// A profile read by `Profile.loadDeferringProblems(contentsOf:)` is planned with the
    /// stand-ins for its bad values, and its JSON's problems lead the list.
    ///
    /// Throws `LaunchError` with `.invalidProfile` (every profile problem, in `problems`),
    /// `.missingProgram` (no QEMU or qemu-img), `.hostProblem` (a state folder in use, an
    /// overlay whose base changed, an unreadable identity) or `.cancelled`.
    public static func prepare(_ profile: Profile, options: Options = Options(), for purpose: LaunchPurpose) async throws(LaunchError) -> PreparedLaunch {
        var logger = options.logger
        logger[metadataKey: "vm.name"] = .string(profile.name)
        let profile = try profile.resolvingAutoKernel(logger: logger)
        let host = await AcceleratorHealth.hostFacts(for: profile, given: options.host, logger: logger)
        try LaunchError.checkCancellation("starting \(profile.name)")
        try requirePrograms(profile, host: host)
        let capabilities = try await QEMUCapabilities.of(Planner.qemuBinary(profile, host: host))
        try LaunchError.checkCancellation("starting \(profile.name)")
        let facts = LaunchFacts(profile: profile, host: host, files: HostFiles.read(for: profile), capabilities: capabilities)

        // The caller's choices as the planner takes them (a new plan option is passed on here).
        var planOptions = PlanOptions(
            runtimeDir: options.runtimeDirectory ?? ((profile.runtimeDir ?? host.runtimeBase) + "/" + RuntimeDirectory.newName()),
            kernelEntry: options.kernelEntry, kernelArguments: options.kernelArguments, guestPorts: options.guestPorts,
            controlFileDescriptor: purpose == .start ? controlFileDescriptor : nil)
        planOptions.gdb = options.gdb
        planOptions.holdOnPanic = options.crashCapture != nil
        // What the VM keeps between runs: its identity, UEFI variables, persistent overlays.
        // (An unusable name is a profile problem the plan lists; it names no folder.)
        var stateFolder: VMStateFolder?
        var identityIsNew = false
        if VMStateFolder.keepsState(profile), ProfileValidator.isUsableVMName(profile.name) {
            let folder = try VMStateFolder(vmName: profile.name, root: options.stateRoot)
            planOptions.stateDirectory = folder.path
            planOptions.identity = try folder.storedIdentity()
            if planOptions.identity == nil {
                identityIsNew = true
                if purpose == .start { planOptions.identity = MachineIdentity.random() }
            }
            stateFolder = folder
        }

        // Every problem at once: the JSON's (a profile read by Profile.loadDeferringProblems
        // is planned with stand-ins for its bad values), then the planner's, which include the
        // host's and what the QEMU binary lacks, less what is said at a path that failed to decode.
        var problems = profile.decodingProblems?.problems ?? []
        var planned: Plan?
        do {
            planned = try Planner.plan(facts, options: planOptions)
        } catch {
            problems = problems.followed(by: error.problems)
        }
        guard let plan = planned, problems.isEmpty else {
            throw .invalid(ProfileProblems(source: profile.decodingProblems?.source ?? profile.name, problems: problems))
        }
        // The profile is fine; are its host ports free, and is the VM's state ready for it?
        if purpose == .start { try checkForwardPorts(profile) }
        if let stateFolder {
            if purpose == .start { try stateFolder.checkNotInUse("starting a second run") }
            try checkExistingOverlays(profile, in: stateFolder)
        }
        return PreparedLaunch(facts: facts, options: planOptions, plan: plan, stateFolder: stateFolder, identityIsNew: identityIsNew)
    }

    /// Refuses `profile` before anything is built for it when it already shows a problem:
    /// one of its JSON (``Profile/decodingProblems``) or one its files on the host show
    /// (missing folders, duplicate tags; `ProfileValidator.hostProblems`). The error then
    /// lists every problem at once, as ``prepare(_:options:for:)`` finds them for a preview
    /// (the planner's and what the QEMU binary lacks included). A profile that shows none is
    /// left to `prepare`. The guest kit calls it before it builds its initramfs, `launch`
    /// before any job starts. A forward's host port already in use is refused here too.
    package static func refuseEarly(_ profile: Profile, options: Options = Options()) async throws(LaunchError) {
        try checkForwardPorts(profile)
        let decodingFailed = profile.decodingProblems?.problems.isEmpty == false
        guard decodingFailed || !ProfileValidator.hostProblems(profile, host: options.host ?? HostProbe.basics()).isEmpty else { return }
        _ = try await prepare(profile, options: options, for: .preview)
    }

    /// The programs a launch can't start without: a QEMU for the guest's arch (or the
    /// profile's), and qemu-img for disk overlays.
    static func requirePrograms(_ profile: Profile, host: HostFacts) throws(LaunchError) {
        let arch = profile.arch ?? host.arch
        guard profile.qemu.binary != nil || host.qemu[arch] != nil else {
            throw LaunchError.missing(arch.qemuSystemBinary, package: arch == .x86_64 ? "qemu-system-x86" : "qemu-system-arm",
                                      purpose: "to run \(arch.rawValue) guests")
        }
        if let binary = profile.qemu.binary, HostProbe.findProgram(binary) == nil {
            throw LaunchError(.missingProgram, "the profile's qemu.binary \(binary) was not found", fix: "fix qemu.binary or remove it")
        }
        if profile.disks.contains(where: { $0.ephemeral || $0.overlay == .persistent }), host.qemuImg == nil {
            throw LaunchError.missing("qemu-img", package: "qemu-utils", purpose: "for ephemeral and persistent disk overlays")
        }
    }

    /// Refuses a persistent overlay that exists and whose base image changed since it was
    /// made (the guest would see a corrupt disk). Starting checks again as it makes the missing ones.
    static func checkExistingOverlays(_ profile: Profile, in folder: VMStateFolder) throws(LaunchError) {
        for (index, disk) in profile.disks.enumerated() where disk.overlay == .persistent {
            guard FileManager.default.fileExists(atPath: folder.path + "/" + VMStateFolder.overlayFile(disk: index)),
                  let problem = folder.overlayProblem(disk: index, base: disk.path, format: disk.format) else { continue }
            throw LaunchError(.hostProblem, "disks[\(index)]: " + problem.message, fix: problem.fix)
        }
    }
}

extension Machine {
    /// Refuses a profile whose `network.forwards` name a host port something else holds,
    /// before anything is made for the launch. QEMU would otherwise fail only once started
    /// ("Could not set up host forwarding rule"), after the runtime dir and state folder exist.
    /// Each port is bound for a moment as QEMU's slirp binds it (SO_REUSEADDR for TCP, so a
    /// port only in TIME_WAIT is free as it is for QEMU). An address that isn't IPv4 is left to QEMU.
    static func checkForwardPorts(_ profile: Profile) throws(LaunchError) {
        guard profile.network.mode == .user else { return }
        for (index, forward) in profile.network.forwards.enumerated() {
            guard let err = bindProblem(forward) else { continue }
            let proto = forward.proto.rawValue
            let lister = forward.proto == .tcp ? "ss -ltnp" : "ss -lunp"
            throw LaunchError(.hostProblem,
                              "network.forwards[\(index)].host: \(proto) port \(forward.host) on \(forward.address) can't be forwarded: \(POSIX.describe(err))",
                              fix: err == EADDRINUSE
                                ? "another program holds it (`\(lister) 'sport = :\(forward.host)'` shows which): stop it, or pick another host port in network.forwards[\(index)].host"
                                : "pick another host port or address in network.forwards[\(index)]")
        }
    }

    /// The errno of binding `forward`'s host port as QEMU would; nil when it is free
    /// (or the address is not an IPv4 one this check reads).
    static func bindProblem(_ forward: Profile.Forward) -> Int32? {
        var address = in_addr()
        guard inet_pton(AF_INET, forward.address, &address) == 1, (1...65535).contains(forward.host) else { return nil }
        let type = forward.proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if forward.proto == .tcp {
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(forward.host).bigEndian)
        socketAddress.sin_addr = address
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return errno }
        // A TCP port another socket listens on with SO_REUSEADDR binds, but can't be listened on.
        if forward.proto == .tcp, listen(fd, 1) != 0 { return errno }
        return nil
    }
}
