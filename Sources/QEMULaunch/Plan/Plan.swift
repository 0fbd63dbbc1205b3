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

    public struct FirmwareVars: Sendable, Hashable, Codable {
        public var template: String
        public var path: String
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

/// The virtio-serial port names the guest kit's exec protocol uses.
public enum ExecPorts {
    public static let stdin = "launch.stdin"
    public static let stdout = "launch.stdout"
    public static let stderr = "launch.stderr"
    public static let status = "launch.status"
    public static let all = [stdin, stdout, stderr, status]
}
