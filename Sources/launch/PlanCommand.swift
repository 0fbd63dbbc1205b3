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

    // The same flags as `run`'s (gdb stub, crash captures' panic hold, kernel log level,
    // modules): they change the argv, and plan prints what run would start.
    @OptionGroup(title: "Kernel development") var kernelDebug: KernelDebugOptions

    @Flag(help: "Print one JSON object: {\"qemu\": [...], \"virtiofsd\": [[...]], \"cmdline\": \"...\", \"runtimeDir\": \"...\", ...}.")
    var json = false

    func run() async throws {
        let logger = makeLogger(verbose: false, quiet: true)
        let profile = try await overrides.loadProfile(self.profile)
        var options = overrides.guestOptions(logger: logger)
        try kernelDebug.apply(to: &options, profile: profile, logger: logger, announce: false)
        let launch: PreparedLaunch
        do {
            launch = try await prepare(profile, options: options)
        } catch {
            throw fail(error)
        }
        var plan = launch.plan
        // What `auto` shares became (the guest kit resolved them before planning).
        // (With warm start, `auto` shares became 9p: the init's park argument says it is on.)
        let warm = plan.cmdline.contains("launch.park=1")
        plan.choices = (warm ? WarmStart.shareChoices(profile, host: launch.facts.host)
                             : Planner.resolvingShareTransports(profile, host: launch.facts.host).choices) + plan.choices
        let qemuImg = launch.facts.host.qemuImg ?? "qemu-img"
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
        if launch.identityIsNew, let folder = launch.stateFolder {
            print("# the first run makes this VM's identity in \(folder.path + "/" + VMStateFolder.identityFile); then QEMU also gets -uuid UUID and the NIC mac=MAC")
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

    /// What `run` boots (a one-command session when there is a command, else a console
    /// shell), prepared and planned as `run` does it (`Machine.prepare`), making nothing.
    /// A profile's problems are reported against its file (the profile knows it), as `run` reports them.
    func prepare(_ profile: Profile, options: GuestKit.Options) async throws(LaunchError) -> PreparedLaunch {
        let guest = try await GuestKit.prepare(profile, options: options, sessionSlots: profile.command != nil ? 1 : 0)
        return try await Machine.prepare(guest.profile, options: GuestKit.machineOptions(guest, options), for: .preview)
    }
}
