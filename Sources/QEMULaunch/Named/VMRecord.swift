import Foundation

/// What a named VM's supervisor says about it: the `record.json` in its record folder.
///
/// Written whole (atomically) by the supervisor at every change of state; read by
/// `launch list`, `launch down` and ``VMRegistry``. Whether the supervisor is still alive
/// is not in here: that is its lock (``NamedVM/supervisorIsAlive``).
public struct VMRecord: Sendable, Hashable, Codable {
    /// The state the supervisor last wrote.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Preparing and booting; not yet ready.
        case starting
        /// Ready: the guest kit's init reported in, or the profile's readiness was seen.
        case running
        /// `launch down` (or a signal) asked the supervisor to stop it; the ladder runs.
        case stopping
        /// It ended cleanly (the guest powered off, or the ladder stopped it).
        case stopped
        /// It ended otherwise: a failed start, a panic, QEMU dying by itself.
        case crashed

        /// Whether the VM has ended for good (the record stays until `down` or the next `up`).
        public var isFinal: Bool { self == .stopped || self == .crashed }
    }

    /// A host port forwarded into the guest.
    public struct Forward: Sendable, Hashable, Codable {
        /// The host address QEMU listens on.
        public var address: String
        /// The host port.
        public var host: Int
        /// The guest port.
        public var guest: Int
        /// "tcp" or "udp".
        public var proto: String
        /// A forward of `address:host` to the guest's `guest` port.
        public init(address: String, host: Int, guest: Int, proto: String) {
            self.address = address
            self.host = host
            self.guest = guest
            self.proto = proto
        }
    }

    /// How to reach the guest's sshd (`launch ssh NAME`).
    public struct SSH: Sendable, Hashable, Codable {
        /// The host port forwarded to the guest's sshd.
        public var hostPort: Int
        /// The host address of that forward.
        public var address: String
        /// The guest user to log in as.
        public var user: String
        /// The private key (the launcher's per-VM key, or the profile's).
        public var identityFile: String
        /// The VM's own known_hosts file.
        public var knownHostsFile: String
        /// The details ssh needs.
        public init(hostPort: Int, address: String, user: String, identityFile: String, knownHostsFile: String) {
            self.hostPort = hostPort
            self.address = address
            self.user = user
            self.identityFile = identityFile
            self.knownHostsFile = knownHostsFile
        }
    }

    /// The VM's name (its record folder's name).
    public var name: String
    /// The profile it was started from (absolute path).
    public var profile: String
    /// The supervisor process.
    public var supervisorPid: Int32
    /// The QEMU process, once started.
    public var qemuPid: Int32?
    /// When `launch up` started it.
    public var startedAt: Date
    /// When it became ready, if it did.
    public var readyAt: Date?
    /// Its state as the supervisor last wrote it.
    public var state: State
    /// Guest RAM in MiB.
    public var memoryMiB: UInt64
    /// The profile's port forwards.
    public var forwards: [Forward]
    /// The VM's state folder (identity, UEFI variables, persistent overlays), if it keeps one.
    public var stateFolder: String?
    /// How to reach its sshd, when the profile asks for ssh.
    public var ssh: SSH?
    /// Whether the supervisor keeps a guest-kit session (the exec channel) open: a guest-kit
    /// profile; your own OS has none.
    public var guestSession = false
    /// The profile's deadline per shutdown step, in seconds: how long `down` may wait.
    public var shutdownStepSeconds: Double
    /// How it ended, in words, once it did (or why it failed to start).
    public var end: String?
    /// The shutdown ladder's step that ended it, when the ladder did ("acpi-powerdown", ...).
    public var shutdownStep: String?

    /// A record in state `starting`.
    public init(name: String, profile: String, supervisorPid: Int32, startedAt: Date, memoryMiB: UInt64,
                forwards: [Forward], stateFolder: String?, ssh: SSH?, shutdownStepSeconds: Double) {
        self.name = name
        self.profile = profile
        self.supervisorPid = supervisorPid
        self.startedAt = startedAt
        self.state = .starting
        self.memoryMiB = memoryMiB
        self.forwards = forwards
        self.stateFolder = stateFolder
        self.ssh = ssh
        self.shutdownStepSeconds = shutdownStepSeconds
    }

    /// The record as JSON (ISO 8601 dates, sorted keys).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try encoder.encode(self)
    }

    /// A record read back from ``jsonData()``.
    public init(jsonData: Data) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        self = try decoder.decode(VMRecord.self, from: jsonData)
    }
}
