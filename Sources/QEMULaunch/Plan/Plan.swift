import Foundation

/// Everything that will run for one VM, computed before anything runs.
///
/// A pure function of (profile, host facts, options) built by `Planner.plan`:
/// the exact argv of QEMU and of each virtiofsd, the kernel command line, the
/// runtime paths, and the choices made on the way with their reasons.
public struct Plan: Sendable, Hashable, Codable {
    /// QEMU's argv; `qemu[0]` is the binary.
    public var qemu: [String]
    /// One argv per virtiofs share, in share order.
    public var virtiofsd: [[String]]
    /// Commands to run before QEMU (qemu-img overlays for ephemeral disks).
    public var prepare: [[String]]
    public var cmdline: String
    public var runtimeDir: String
    public var sockets: Sockets
    public var arch: Profile.Arch
    public var machine: Profile.MachineKind
    public var accelerator: Accelerator
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
        public var source: String
        public var view: String
        public init(source: String, view: String) {
            self.source = source
            self.view = view
        }
    }

    public struct FirmwareVars: Sendable, Hashable, Codable {
        public var template: String
        public var path: String
    }

    /// A qcow2 overlay kept in the VM's state folder over a base image that is never written.
    public struct PersistentOverlay: Sendable, Hashable, Codable {
        /// Index in the profile's `disks`.
        public var disk: Int
        public var base: String
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

    public enum Transport: String, Sendable, Hashable, Codable { case mmio, pci }

    public struct Sockets: Sendable, Hashable, Codable {
        public var qmp: String
        /// The serial console (ttyS0 / ttyAMA0).
        public var console: String
        /// One per virtiofs share, in the same order as `virtiofsd`.
        public var virtiofs: [String]
        /// Named virtio-serial ports: port name → socket path.
        public var ports: [String: String]
    }

    public struct Choice: Sendable, Hashable, Codable, CustomStringConvertible {
        public var topic: String
        public var value: String
        public var reason: String
        /// True when a user would want to know (a fallback, a cost).
        public var isWarning: Bool

        public init(topic: String, value: String, reason: String, isWarning: Bool = false) {
            self.topic = topic
            self.value = value
            self.reason = reason
            self.isWarning = isWarning
        }

        public var description: String { "\(topic): \(value) (\(reason))" }
    }
}
