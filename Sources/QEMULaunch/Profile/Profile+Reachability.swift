import Foundation

extension Profile {
    /// `ready`: when a VM that runs your own OS counts as up (`launch up` returns then).
    /// A guest-kit VM is up when its init reports in and needs none.
    public struct Readiness: Sendable, Hashable {
        /// `console`: up once a serial console line contains this text (e.g. "login:").
        public var consoleText: String?
        /// `port`: up once a connection to this guest port, through the profile's forward
        /// of it, receives bytes (starting with `banner` when set).
        public var port: Int?
        /// `banner`: the bytes the port's first reply starts with (e.g. "SSH-2.0").
        public var banner: String?
        /// Up at a console line containing `consoleText`, or at `port` answering with `banner`.
        public init(consoleText: String? = nil, port: Int? = nil, banner: String? = nil) {
            self.consoleText = consoleText
            self.port = port
            self.banner = banner
        }
    }

    /// `ssh`: reach your own OS's sshd with `launch ssh NAME`, through a forward of `port`.
    public struct SSHAccess: Sendable, Hashable {
        /// The guest's sshd port; the profile must forward a host port to it.
        public var port: Int = 22
        /// The guest user to log in as.
        public var user: String = "root"
        /// Your own private key (set up in the image yourself); nil = a per-VM key the launcher
        /// makes and injects for root as a systemd credential (SMBIOS type 11: x86 q35 and pc).
        public var key: String?
        /// sshd on guest port 22 as root with a per-VM key.
        public init(port: Int = 22, user: String = "root", key: String? = nil) {
            self.port = port
            self.user = user
            self.key = key
        }
    }

    /// The readiness `launch up` waits for: the profile's `ready`, else the ssh banner when
    /// it has `ssh`, else none (up once the vCPUs run).
    public var effectiveReadiness: Readiness? {
        if let ready { return ready }
        if let ssh { return Readiness(port: ssh.port, banner: "SSH-2.0") }
        return nil
    }

    /// The forward to guest TCP port `port`, if the profile has one.
    public func forward(toGuestPort port: Int) -> Forward? {
        network.forwards.first { $0.guest == port && $0.proto == .tcp }
    }

    /// Problems of `ready` and `ssh`, with their JSON paths.
    func reachabilityProblems(arch: Arch) -> [ProfileProblem] {
        var problems: [ProfileProblem] = []
        if let ready {
            let given = [ready.consoleText != nil, ready.port != nil].filter { $0 }.count
            if given != 1 {
                problems.append(ProfileProblem(path: "ready", message: "give one readiness: \"console\" (a console text) or \"port\" (a forwarded guest port)",
                                               fix: "e.g. {\"console\": \"login:\"} or {\"port\": 22, \"banner\": \"SSH-2.0\"}"))
            }
            if ready.banner != nil, ready.port == nil {
                problems.append(ProfileProblem(path: "ready.banner", message: "a banner needs a \"port\"", fix: "add \"port\""))
            }
            if let port = ready.port, forward(toGuestPort: port) == nil {
                problems.append(ProfileProblem(path: "ready.port", message: "no TCP forward to guest port \(port)",
                                               fix: "add {\"host\": N, \"guest\": \(port)} to network.forwards (with \"mode\": \"user\")"))
            }
        }
        if let ssh {
            if forward(toGuestPort: ssh.port) == nil {
                problems.append(ProfileProblem(path: "ssh.port", message: "no TCP forward to the guest's sshd port \(ssh.port)",
                                               fix: "add {\"host\": 2222, \"guest\": \(ssh.port)} to network.forwards (with \"mode\": \"user\")"))
            }
            if ssh.key == nil {
                // systemd reads ssh.authorized_keys.root from SMBIOS type 11 OEM strings, which
                // QEMU gives only machines with SMBIOS tables: x86 pc and q35 (not microvm; on
                // aarch64 virt only through UEFI firmware, not checked here).
                if arch != .x86_64 || !(machine == .q35 || machine == .pc) {
                    problems.append(ProfileProblem(path: "ssh", message: "the launcher's per-VM key is injected as an SMBIOS credential, which only x86 \"q35\" and \"pc\" machines carry",
                                                   fix: "use \"machine\": \"q35\", or name your own \"key\" (set up in the image)"))
                }
                if ssh.user != "root" {
                    problems.append(ProfileProblem(path: "ssh.user", message: "the per-VM key is installed for root only (systemd's ssh.authorized_keys.root credential)",
                                                   fix: "use \"user\": \"root\", or name your own \"key\""))
                }
            }
        }
        return problems
    }
}

extension Profile.Readiness: Codable {
    /// Decodes `ready`, recording every problem with its JSON path.
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["console", "port", "banner"], what: "a readiness")
        consoleText = r.optional("console", String.self, expected: "a text a console line contains, like \"login:\"")
        port = r.optional("port", Int.self, expected: "a guest TCP port")
        banner = r.optional("banner", String.self, expected: "the text the reply starts with, like \"SSH-2.0\"")
        try r.finish()
    }

    /// Encodes `ready` as profile JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encodeIfPresent(consoleText, forKey: AnyKey("console"))
        try c.encodeIfPresent(port, forKey: AnyKey("port"))
        try c.encodeIfPresent(banner, forKey: AnyKey("banner"))
    }
}

extension Profile.SSHAccess: Codable {
    /// Decodes `ssh`, recording every problem with its JSON path.
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["port", "user", "key"], what: "ssh access")
        port = r.optional("port", Int.self, expected: "the guest's sshd port") ?? 22
        user = r.optional("user", String.self, expected: "a guest user name") ?? "root"
        key = r.optional("key", String.self, expected: "a private key's path")
        try r.finish()
    }

    /// Encodes `ssh` as profile JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(port, forKey: AnyKey("port"))
        try c.encode(user, forKey: AnyKey("user"))
        try c.encodeIfPresent(key, forKey: AnyKey("key"))
    }
}
