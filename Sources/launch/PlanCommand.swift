import ArgumentParser
import Foundation
import GuestKit
import QEMULaunch

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print what `run` would start, one shell-quoted command a line, without starting it.",
        discussion: """
            The runtime dir shown is a fresh name that `run` would create. Guest-kit \
            files (the initramfs, an extracted vmlinux) are built into the cache if \
            missing, so the printed paths exist. Exits 65 on an invalid profile, \
            listing every problem with its JSON path.
            """
    )

    @Argument(help: "The profile (a JSON file).")
    var profile: String

    @OptionGroup var overrides: ProfileOverrides

    @Flag(help: "Print one JSON object: {\"qemu\": [...], \"virtiofsd\": [[...]], \"cmdline\": \"...\", \"runtimeDir\": \"...\", ...}.")
    var json = false

    func run() async throws {
        let logger = makeLogger(verbose: false, quiet: true)
        let profile = try overrides.loadProfile(self.profile)
        var plan: Plan
        var qemuImg = "qemu-img"
        var newIdentityFile: String?
        var shareChoices: [Plan.Choice] = []
        do {
            var options = overrides.guestOptions(logger: logger)
            // Validate first: a profile with problems must list them all, not fail in preparation.
            let host = await AcceleratorHealth.hostFacts(for: profile, given: nil, logger: logger)
            let problems = ProfileValidator.hostProblems(profile, host: host)
            if !problems.isEmpty { throw LaunchError.invalid(ProfileProblems(source: self.profile, problems: problems)) }
            options.host = host
            // What `auto` shares become here (prepare resolves them before planning).
            shareChoices = Planner.resolvingShareTransports(profile, host: host).choices
            // What `run` boots: a one-command session when there is a command, else a console shell.
            let prepared = try await GuestKit.prepare(profile, options: options, sessionSlots: profile.command != nil ? 1 : 0)
            let runtimeDir = (profile.runtimeDir ?? host.runtimeBase) + "/launch-" + randomName()
            // The state folder as it is: read, never made here (`run` makes it).
            var state: VMStateFolder?
            var identity: MachineIdentity?
            if VMStateFolder.keepsState(prepared.profile) {
                let folder = try VMStateFolder(vmName: prepared.profile.name)
                identity = try folder.storedIdentity()
                if identity == nil { newIdentityFile = folder.path + "/" + VMStateFolder.identityFile }
                state = folder
            }
            qemuImg = host.qemuImg ?? qemuImg
            do {
                plan = try Planner.plan(prepared.profile, host: host, options: PlanOptions(
                    runtimeDir: runtimeDir, kernelEntry: prepared.kernelEntry, kernelArguments: prepared.kernelArguments,
                    guestPorts: prepared.guestPorts, stateDirectory: state?.path, identity: identity))
            } catch {
                throw LaunchError.invalid(ProfileProblems(source: self.profile, problems: error.problems))
            }
            // What this QEMU binary can't do is a problem now, not a QEMU error later.
            let missing = try await QEMUCapabilities.of(plan.qemu[0]).problems(with: plan, binary: plan.qemu[0])
            if !missing.isEmpty { throw LaunchError.invalid(ProfileProblems(source: self.profile, problems: missing)) }
            // An overlay `run` would refuse (its base changed) fails here too.
            for overlay in plan.persistentOverlays where FileManager.default.fileExists(atPath: overlay.path) {
                if let problem = state?.overlayProblem(disk: overlay.disk, base: overlay.base, format: overlay.baseFormat) {
                    throw LaunchError(.hostProblem, "disks[\(overlay.disk)]: " + problem.message, fix: problem.fix)
                }
            }
        } catch let error as LaunchError {
            throw fail(error)
        }
        plan.choices = shareChoices + plan.choices
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(plan)
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            return
        }
        // What was picked and why, as `run` says it (QEMU version, microvm firmware, transports, ...).
        for choice in plan.choices { print("# \(choice.isWarning ? "warning: " : "")\(choice)") }
        // The one difference from `run`, which also hands QEMU its own QMP connection.
        print("# launch run adds: -chardev socket,id=control,fd=3 -mon chardev=control,mode=control (its QMP connection, a socketpair); qmp.sock is for other tools")
        if let newIdentityFile {
            print("# the first run makes this VM's identity in \(newIdentityFile); then QEMU also gets -uuid UUID and the NIC mac=MAC")
        }
        for overlay in plan.persistentOverlays where !FileManager.default.fileExists(atPath: overlay.path) {
            print("# first run: the persistent overlay of disks[\(overlay.disk)] (launch writes it under a temporary name, then records the base in \(VMStateFolder.baseRecordFile(disk: overlay.disk)))")
            print(QEMUSyntax.shellLine(overlay.createCommand(qemuImg: qemuImg, output: overlay.path)))
        }
        for command in plan.prepare { print(QEMUSyntax.shellLine(command)) }
        for (index, command) in plan.virtiofsd.enumerated() {
            if index < plan.virtiofsdViews.count, let view = plan.virtiofsdViews[index] {
                print("# read-only on the host: launch starts this virtiofsd in a mount namespace of its own where \(view.view) is a recursive bind of \(view.source) with every mount read-only (mount_setattr; util-linux's mount can't do that in one step)")
            }
            print(QEMUSyntax.shellLine(command) + " &")
        }
        print(QEMUSyntax.shellLine(plan.qemu))
    }
}

func randomName() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<6).map { _ in alphabet.randomElement()! })
}
