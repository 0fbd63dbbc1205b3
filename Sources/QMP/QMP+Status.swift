extension QMP {
    /// The reply to `query-status`.
    public struct Status: Sendable, Hashable {
        /// QEMU's run state: `prelaunch`, `running`, `paused`, `shutdown`, `internal-error`, ...
        public var status: String
        /// Whether the guest's vCPUs are running.
        public var running: Bool

        /// A status as given, for tests.
        public init(status: String, running: Bool) {
            self.status = status
            self.running = running
        }
    }
}
