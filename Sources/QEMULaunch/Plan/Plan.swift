import Foundation

/// Everything that will run for one VM, computed before anything runs.
///
/// A pure function of (launch facts, options) built by `Planner.plan`:
/// the exact argv of QEMU and of each virtiofsd, the kernel command line, the
/// runtime paths, and the choices made on the way with their reasons.
public struct Plan: Sendable, Hashable, Codable {
    /// QEMU's argv; `qemu[0]` is the binary.
    public var qemu: [String]
    /// One argv per virtiofs share, in share order.
    public var virtiofsd: [[String]]
    /// Commands to run before QEMU (qemu-img overlays for ephemeral disks).
    public var prepare: [[String]]
    /// The kernel command line (`-append`), also when the argv has it already.
    public var cmdline: String
    /// The VM's private runtime dir: every socket and log lives in it.
    public var runtimeDir: String
    /// The sockets QEMU and virtiofsd listen on, all in `runtimeDir`.
    public var sockets: Sockets
    /// The guest's architecture.
    public var arch: Profile.Arch
    /// The machine type (`-machine`).
    public var machine: Profile.MachineKind
    /// The accelerator chosen (`-accel`).
    public var accelerator: Accelerator
    /// How virtio devices attach: virtio-mmio or PCI.
    public var transport: Transport
    /// The choices made, one line each, for the log.
    public var choices: [Choice]
    /// UEFI only: the VM's variable store and the template it is copied from when missing.
    public var firmwareVars: FirmwareVars?
    /// Disks with `overlay: persistent`: overlays in the VM's state folder, made on the first run.
    public var persistentOverlays: [PersistentOverlay] = []
    /// The tags of the virtiofs shares, in the order of `virtiofsd` (after `auto` was resolved).
    public var virtiofsTags: [String] = []

    /// Per virtiofsd (same order): the read-only view it must be started in, if any.
    public var virtiofsdViews: [ReadOnlyView?] = []

    /// A folder served read-only, enforced on the host: the daemon is spawned in a mount
    /// namespace of its own where `view` (a folder in the runtime dir) is a recursive bind
    /// of `source` with every mount read-only, and it serves `view`. For the C virtiofsd,
    /// which has no read-only mode (and can't serve `/` itself: its pivot_root fails).
    public struct ReadOnlyView: Sendable, Hashable, Codable {
        /// The host folder shared read-only.
        public var source: String
        /// The bind of `source` in the runtime dir that virtiofsd serves.
        public var view: String
        /// A view of `source` at `view`.
        public init(source: String, view: String) {
            self.source = source
            self.view = view
        }
    }

    /// A UEFI variable store: the VM's own copy of the firmware's template.
    public struct FirmwareVars: Sendable, Hashable, Codable {
        /// The firmware's empty store, copied when the VM has none.
        public var template: String
        /// The VM's store (in its state folder, or the runtime dir when it has none).
        public var path: String
    }

    /// A qcow2 overlay kept in the VM's state folder over a base image that is never written.
    public struct PersistentOverlay: Sendable, Hashable, Codable {
        /// Index in the profile's `disks`.
        public var disk: Int
        /// The base image (the profile's disk path), never written.
        public var base: String
        /// The base image's format.
        public var baseFormat: Profile.DiskFormat
        /// The overlay file QEMU opens.
        public var path: String
        /// The base image's path, format, size and mtime when the overlay was made.
        public var baseRecord: String

        /// `qemu-img create` for an overlay at `output` backed by the base's absolute path.
        public func createCommand(qemuImg: String, output: String) -> [String] {
            [qemuImg, "create", "-q", "-f", "qcow2", "-F", baseFormat.rawValue, "-b", absoluteBase, output]
        }

        /// qemu-img stores the backing path in the overlay and resolves a relative one
        /// against the overlay's folder: give it an absolute one.
        public var absoluteBase: String {
            URL(fileURLWithPath: base).standardizedFileURL.path
        }
    }

    /// How virtio devices attach to the machine.
    public enum Transport: String, Sendable, Hashable, Codable {
        /// virtio-mmio (`-device NAME-device`): microvm, and virt when asked.
        case mmio
        /// PCI (`-device NAME-pci`): q35, pc, virt by default.
        case pci
    }

    /// The Unix sockets of one VM, all in its runtime dir.
    public struct Sockets: Sendable, Hashable, Codable {
        /// QMP for other tools (the launcher has its own connection).
        public var qmp: String
        /// The serial console (ttyS0 / ttyAMA0).
        public var console: String
        /// One per virtiofs share, in the same order as `virtiofsd`.
        public var virtiofs: [String]
        /// Named virtio-serial ports: port name → socket path.
        public var ports: [String: String]
    }

    /// One thing the planner picked, and why: a line of the launch's log.
    public struct Choice: Sendable, Hashable, Codable, CustomStringConvertible {
        /// What was picked: "accelerator", "machine", "shares[0] \"src\"", ...
        public var topic: String
        /// What it is: "tcg", "microvm", "9p", ...
        public var value: String
        /// Why: "from the profile", "auto: kvm is usable", ...
        public var reason: String
        /// True when a user would want to know (a fallback, a cost).
        public var isWarning: Bool

        /// A choice of `value` for `topic` because of `reason`; a warning when a user would want to know.
        public init(topic: String, value: String, reason: String, isWarning: Bool = false) {
            self.topic = topic
            self.value = value
            self.reason = reason
            self.isWarning = isWarning
        }

        /// "topic: value (reason)".
        public var description: String { "\(topic): \(value) (\(reason))" }
    }
}
