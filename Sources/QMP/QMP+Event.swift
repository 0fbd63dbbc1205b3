extension QMP {
    /// An asynchronous QMP event, such as `STOP`, `RESUME`, `SHUTDOWN` or `DEVICE_DELETED`.
    public struct Event: Sendable, Hashable {
        /// The event's name, e.g. `SHUTDOWN`.
        public var name: String
        /// The event's `data` member; `.null` when QEMU sent none (e.g. `STOP`).
        public var data: JSONValue
        /// When QEMU emitted the event, in seconds since the Unix epoch (host clock);
        /// nil when the message had no timestamp.
        public var timestamp: Double?

        /// An event as given, for tests and for tools that relay events.
        public init(name: String, data: JSONValue = .null, timestamp: Double? = nil) {
            self.name = name
            self.data = data
            self.timestamp = timestamp
        }

        /// Reads `{"event": "NAME", "data": {...}, "timestamp": {"seconds": s, "microseconds": us}}`.
        init?(message: JSONValue) {
            guard let name = message["event"]?.stringValue else { return nil }
            var timestamp: Double?
            if let stamp = message["timestamp"], let seconds = stamp["seconds"]?.doubleValue {
                timestamp = seconds + (stamp["microseconds"]?.doubleValue ?? 0) / 1_000_000
            }
            self.init(name: name, data: message["data"] ?? .null, timestamp: timestamp)
        }
    }
}
