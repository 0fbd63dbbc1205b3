import ArgumentParser
import Foundation
import GuestKit
import Logging
import QEMULaunch
import Synchronization

@main
struct Launch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Boot a QEMU virtual machine from a JSON profile, without libvirt.",
        discussion: """
            Exit codes: 0 clean poweroff (or the guest command's own exit code), \
            124 timeout, 125 guest panic, 130 interrupted while a command ran, \
            75 forced stop (the guest did not power off; killed at qmp-quit, SIGTERM or SIGKILL), \
            76 the guest rebooted (onReboot: exit), 65 invalid profile, 69 a required program \
            is missing, 70 internal error, 71 host problem.
            """,
        subcommands: [RunCommand.self, BatchCommand.self, PlanCommand.self, StateCommand.self, DoctorCommand.self, KconfigCommand.self, ReportCommand.self,
                      UpCommand.self, ListCommand.self, ConsoleCommand.self, ExecCommand.self, SSHCommand.self, QMPCommand.self, DownCommand.self,
                      SuperviseCommand.self],
        defaultSubcommand: RunCommand.self
    )

    static func main() async {
        await main(KernelDebugOptions.givingBareGDBItsPort(Array(CommandLine.arguments.dropFirst())))
    }
}

/// Options every subcommand that reads a profile shares.
struct ProfileOverrides: ParsableArguments {
    @Option(help: "Accelerator: auto, kvm, hvf or tcg (overrides the profile).")
    var accel: Profile.AccelChoice?

    @Option(help: "Kernel image path, or \"auto\" (overrides the profile).")
    var kernel: String?

    @Option(help: "Initrd path (overrides the profile).")
    var initrd: String?

    @Option(help: "Extra kernel arguments, appended to the profile's.")
    var append: String?

    @Option(help: "Guest memory, like 512M or 2G (overrides the profile).")
    var memory: String?

    @Option(help: "Number of vCPUs (overrides the profile).")
    var cpus: Int?

    @Option(help: "A kernel build tree: boots DIR/arch/<arch>/boot/bzImage (or DIR/vmlinux).")
    var kernelTree: String?

    @Option(help: ArgumentHelp("How long the command may run, like 30s or 10m (overrides timeouts.run); past it the command is killed and launch exits 124.", valueName: "duration"))
    var timeout: String?

    @Option(help: ArgumentHelp("How long the guest may take to boot until the guest kit's init reports in, like 20s (overrides timeouts.boot); past it launch exits 124 with the console's last lines.", valueName: "duration"))
    var bootTimeout: String?

    @Option(help: "Kernel modules for the guest: a /lib/modules/<release> folder, or an INSTALL_MOD_PATH root.")
    var modules: String?

    @Flag(help: "Boot the bzImage as is under TCG instead of its extracted PVH vmlinux.")
    var noFastBoot = false

    @Option(help: "The guest's root filesystem for the command: host (this host's /, read-only), a folder, or disk:N (the root partition of disks[N]).")
    var rootfs: String?

    @Option(help: ArgumentHelp("A host folder the guest may write (with --rootfs): shared read-write at the same path, so the guest's writes change the host's files. Repeatable.", valueName: "dir"))
    var rwdir: [String] = []

    @Flag(help: "With --rootfs: a throw-away overlay over the whole root (every path writable in the guest, writes discarded at exit).")
    var rootOverlay = false

    func apply(to profile: inout Profile) throws {
        if let accel { profile.accel = accel }
        if let kernel {
            profile.kernel = kernel == "auto" ? kernel : absolutePath(kernel)
        }
        for (flag, value, path) in [("--timeout", timeout, \Profile.Timeouts.run), ("--boot-timeout", bootTimeout, nil)] {
            guard let value else { continue }
            guard let limit = TimeLimit(parsing: value) else {
                throw ValidationError("\(flag) \(value): not a duration; use a form like 30s, 500ms or 10m")
            }
            if let path { profile.timeouts[keyPath: path] = limit } else { profile.timeouts.boot = limit }
        }
        if let tree = kernelTree {
            // The tree's own .config says its arch: a tree for another arch, or one not built,
            // is named as such here; the config check before the boot does the rest.
            let arch = profile.arch ?? .host
            let source = profile.arch == nil ? "the profile's arch (the host's: the profile sets none)" : "the profile's arch"
            do {
                profile.kernel = try KernelTree(URL(fileURLWithPath: absolutePath(tree))).image(for: arch, archSource: source, guest: KernelRequirements.Guest(profile: profile, hostArch: .host)).path
            } catch {
                throw ValidationError("--kernel-tree \(tree): \(error)")
            }
        }
        if let initrd { profile.initrd = absolutePath(initrd) }
        if let append {
            profile.cmdline = [profile.cmdline, append].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        }
        if let memory {
            guard let size = MemorySize(parsing: memory) else {
                throw ValidationError("--memory \(memory): not a size; use a form like 512M or 2G")
            }
            profile.memory = size
        }
        if let cpus { profile.cpus = cpus }
        if let rootfs {
            guard var root = Profile.RootFS(argument: rootfs) else { throw ValidationError("--rootfs: give host, a folder, or disk:N") }
            if case .folder(let path) = root.source { root.source = .folder(absolutePath(path)) }
            root.rwdirs = profile.rootfs?.rwdirs ?? []
            root.overlay = profile.rootfs?.overlay ?? false
            root.transport = profile.rootfs?.transport
            profile.rootfs = root
        }
        if !rwdir.isEmpty || rootOverlay {
            guard profile.rootfs != nil else { throw ValidationError("--rwdir and --root-overlay need a root filesystem: add --rootfs host (or a folder, or disk:N)") }
            profile.rootfs?.rwdirs += rwdir.map(absolutePath)
            if rootOverlay { profile.rootfs?.overlay = true }
        }
    }

    /// Loads the profile at `path` with these overrides applied; prints the problems
    /// and exits 65 when either is invalid.
    func loadProfile(_ path: String) async throws -> Profile {
        var profile = try launch.loadProfile(path, deferringProblems: true)
        do {
            try apply(to: &profile)
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
            throw ExitCode(LaunchError.Code.invalidProfile)
        }
        // The profile as it will run: one that already shows a problem (of its JSON, or of
        // its files on this host) is refused with every problem at once, the planner's and
        // the QEMU binary's included, before anything is built or any job starts.
        do {
            try await Machine.refuseEarly(profile)
        } catch {
            throw fail(error)
        }
        return profile
    }

    /// Guest-kit options these overrides ask for.
    func guestOptions(logger: Logger, interrupt: Interrupt? = nil, keepRuntimeDir: Bool = false) -> GuestKit.Options {
        var options = GuestKit.Options()
        options.fastBoot = !noFastBoot
        options.keepRuntimeDir = keepRuntimeDir
        options.logger = logger
        options.interrupt = interrupt
        options.modulesDirectory = modulesDirectory(release: nil)
        options.kernelTree = kernelTree.map { URL(fileURLWithPath: absolutePath($0)) }
        return options
    }

    /// The modules folder: the release folder itself, or an INSTALL_MOD_PATH root.
    func modulesDirectory(release: String?) -> URL? {
        modules.map { GuestKit.modulesFolder(URL(fileURLWithPath: absolutePath($0)), release: release) }
    }
}

extension Profile.AccelChoice: ExpressibleByArgument {}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).standardizedFileURL.path
}

/// Loads a profile, printing every problem of its JSON and exiting 65 when there is one;
/// `deferringProblems` leaves them to the launch (`Profile.loadDeferringProblems`), which
/// lists them with the rest, and exits here only for a file that is no JSON object.
func loadProfile(_ path: String, deferringProblems: Bool = false) throws -> Profile {
    let url = URL(fileURLWithPath: absolutePath(path))
    do {
        return try deferringProblems ? Profile.loadDeferringProblems(contentsOf: url) : Profile.load(contentsOf: url)
    } catch {
        FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
        throw ExitCode(LaunchError.Code.invalidProfile)
    }
}

/// Prints a launch error and exits with its code.
func fail(_ error: LaunchError) -> ExitCode {
    // An invalid profile's message is its own header ("invalid profile FILE: N problems").
    let label = error.code == .invalidProfile && error.message.hasPrefix("invalid profile") ? "" : "\(error.code): "
    FileHandle.standardError.write(Data("launch: \(label)\(error)\n".utf8))
    return ExitCode(error.code)
}

/// Logging to stderr: info by default, debug with --verbose.
func makeLogger(verbose: Bool, quiet: Bool) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StderrLogHandler(label: label)
        handler.logLevel = verbose ? .debug : (quiet ? .warning : .info)
        return handler
    }
    return Logger(label: "launch")
}

/// One line per message: `launch: info: ...`, with metadata at debug level only.
struct StderrLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Warnings already printed: a batch of VMs on one host would repeat the same host warning per VM.
    static let printedWarnings = Mutex<Set<String>>([])

    func log(event: LogEvent) {
        if event.level == .warning {
            let text = "\(event.message)"
            guard Self.printedWarnings.withLock({ $0.insert(text).inserted }) else { return }
        }
        var line = "launch: \(event.level == .info ? "" : "\(event.level): ")\(event.message)"
        if logLevel <= .debug {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            if !all.isEmpty { line += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Runs `body`; a `LaunchError` it throws is printed and becomes its exit status.
func withFailureMapping<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as LaunchError {
        throw fail(error)
    }
}
