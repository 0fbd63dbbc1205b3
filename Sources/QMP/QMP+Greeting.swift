extension QMP {
    /// The first message a QMP server sends:
    /// `{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "..."}, "capabilities": ["oob"]}}`.
    public struct Greeting: Sendable, Hashable {
        /// The QEMU version the server announced.
        public var version: Version
        /// Capabilities the server offers (QEMU 7.2 offers `oob`). The client enables none.
        public var capabilities: [String]

        /// A greeting as given, for tests.
        public init(version: Version, capabilities: [String]) {
            self.version = version
            self.capabilities = capabilities
        }

        /// QEMU's version, as in the greeting and `query-version`.
        public struct Version: Sendable, Hashable, CustomStringConvertible {
            /// The major version: 7 for QEMU 7.2.0.
            public var major: Int
            /// The minor version: 2 for QEMU 7.2.0.
            public var minor: Int
            /// The micro version: 0 for QEMU 7.2.0.
            public var micro: Int
            /// The distributor's package string, e.g. `Debian 1:7.2+dfsg-7+deb12u7`; may be empty.
            public var package: String

            /// A version as given; `package` is empty when none was announced.
            public init(major: Int, minor: Int, micro: Int, package: String = "") {
                self.major = major
                self.minor = minor
                self.micro = micro
                self.package = package
            }

            /// Whether this version is `major.minor.micro` or newer (the package is ignored).
            public func isAtLeast(_ major: Int, _ minor: Int = 0, _ micro: Int = 0) -> Bool {
                (self.major, self.minor, self.micro) >= (major, minor, micro)
            }

            /// "7.2.0", or "7.2.0 (Debian 1:7.2+dfsg-7)" with the package.
            public var description: String {
                let number = "\(major).\(minor).\(micro)"
                return package.isEmpty ? number : "\(number) (\(package.trimmingSpaces()))"
            }

            /// Reads `{"qemu": {"major":, "minor":, "micro":}, "package": ""}`.
            init?(json: JSONValue) {
                guard let qemu = json["qemu"],
                    let major = qemu["major"]?.intValue,
                    let minor = qemu["minor"]?.intValue,
                    let micro = qemu["micro"]?.intValue
                else { return nil }
                self.init(major: major, minor: minor, micro: micro, package: json["package"]?.stringValue ?? "")
            }
        }

        /// Reads the greeting message; nil when it is not one.
        init?(message: JSONValue) {
            guard let body = message["QMP"], let versionJSON = body["version"],
                let version = Version(json: versionJSON)
            else { return nil }
            let capabilities = body["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
            self.init(version: version, capabilities: capabilities)
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var slice = self[...]
        while slice.first == " " { slice.removeFirst() }
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}
