import Foundation

// Decoding that reports every problem at once. Each type's `init(from:)` reads
// its fields through a `FieldReader`, which records a `ProfileProblem` (with the
// JSON path) for an unknown key, a wrong type or a missing required field, and
// goes on. The collector travels in `userInfo`; without one (plain `JSONDecoder`
// use), the first problem is thrown as `ProfileProblems` when a value is done.

final class ProblemCollector: @unchecked Sendable {
    // Decoding is synchronous and single-threaded; the class is only a shared box.
    var problems: [ProfileProblem] = []
}

extension CodingUserInfoKey {
    static let profileProblems = CodingUserInfoKey(rawValue: "launch.profileProblems")!
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

struct FieldReader {
    let container: KeyedDecodingContainer<AnyKey>
    let path: [any CodingKey]
    let collector: ProblemCollector
    let ownsCollector: Bool

    init(_ decoder: any Decoder, allowedKeys: [String], what: String) throws {
        if let shared = decoder.userInfo[.profileProblems] as? ProblemCollector {
            collector = shared
            ownsCollector = false
        } else {
            collector = ProblemCollector()
            ownsCollector = true
        }
        path = decoder.codingPath
        do {
            container = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            collector.problems.append(ProfileProblem(
                path: jsonPath(decoder.codingPath), message: "expected \(what) (a JSON object)"))
            throw ProfileProblems(source: "", problems: collector.problems)
        }
        for key in container.allKeys where !allowedKeys.contains(key.stringValue) {
            var fix = "remove it"
            if let near = closest(key.stringValue, in: allowedKeys) { fix = "did you mean \"\(near)\"?" }
            collector.problems.append(ProfileProblem(
                path: jsonPath(path, key.stringValue), message: "unknown key \"\(key.stringValue)\" in \(what)", fix: fix))
        }
    }

    func has(_ key: String) -> Bool { container.contains(AnyKey(key)) }

    /// Reads an optional field; a value of the wrong shape is recorded and read as nil.
    func optional<T: Decodable>(_ key: String, _ type: T.Type = T.self, expected: String) -> T? {
        let k = AnyKey(key)
        guard container.contains(k) else { return nil }
        if (try? container.decodeNil(forKey: k)) == true { return nil }
        do {
            return try container.decode(T.self, forKey: k)
        } catch let problems as ProfileProblems {
            // A nested value already recorded its own problems in the shared collector.
            if ownsCollector { collector.problems += problems.problems }
            return nil
        } catch {
            collector.problems.append(ProfileProblem(
                path: jsonPath(path, key), message: "expected \(expected)\(describeFound(error))"))
            return nil
        }
    }

    /// Reads a required field; absence is recorded.
    func required<T: Decodable>(_ key: String, _ type: T.Type = T.self, expected: String) -> T? {
        guard container.contains(AnyKey(key)) else {
            collector.problems.append(ProfileProblem(
                path: jsonPath(path, key), message: "missing required key \"\(key)\"", fix: "add \(expected)"))
            return nil
        }
        return optional(key, type, expected: expected)
    }

    /// Reads a string-valued enum, naming the allowed values on a bad one.
    func choice<T: RawRepresentable & CaseIterable & Decodable>(_ key: String, _ type: T.Type = T.self) -> T?
    where T.RawValue == String {
        let allowed = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        guard let raw = optional(key, String.self, expected: "one of \(allowed)") else { return nil }
        guard let value = T(rawValue: raw) else {
            collector.problems.append(ProfileProblem(
                path: jsonPath(path, key), message: "\"\(raw)\" is not one of \(allowed)"))
            return nil
        }
        return value
    }

    func record(_ key: String?, _ message: String, fix: String? = nil) {
        collector.problems.append(ProfileProblem(path: jsonPath(path, key), message: message, fix: fix))
    }

    /// Call last: throws the problems when this value owns the collector.
    func finish() throws {
        if ownsCollector && !collector.problems.isEmpty {
            throw ProfileProblems(source: "", problems: collector.problems)
        }
    }
}

private func describeFound(_ error: any Error) -> String {
    guard let decoding = error as? DecodingError else { return "" }
    switch decoding {
    case .typeMismatch(_, let context), .dataCorrupted(let context), .valueNotFound(_, let context):
        let detail = context.debugDescription
        if detail.hasPrefix("not a ") { return " (\(detail))" }
        return ""
    default:
        return ""
    }
}

/// The allowed key closest to a typo, if it is close enough to be a typo.
func closest(_ word: String, in candidates: [String]) -> String? {
    let lower = word.lowercased()
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(lower, candidate.lowercased())
        if d <= max(2, candidate.count / 3), d < (best?.1 ?? Int.max) { best = (candidate, d) }
    }
    return best?.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

extension Profile: Codable {
    static let keys = [
        "$schema", "name", "arch", "machine", "accel", "cpus", "memory", "kernel", "initrd", "cmdline",
        "shares", "disks", "network", "command", "firmware", "onReboot", "transport", "consoles", "cpu",
        "runtimeDir", "qemu", "virtiofsd", "timeouts", "guestKit", "lockMemory",
        "rootfs",
        "ready", "ssh",
    ]

    /// Decodes a profile's JSON object. Every unknown key (with the closest known one),
    /// wrong type or missing field is recorded with its JSON path and decoding goes on:
    /// ``decode(_:source:baseDirectory:)`` and ``load(contentsOf:)`` report them all at
    /// once; a plain `JSONDecoder` throws the first as ``ProfileProblems``.
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: Self.keys, what: "a profile")
        name = r.required("name", String.self, expected: "a name like \"hello\"") ?? ""
        arch = r.choice("arch")
        machine = r.choice("machine")
        accel = r.choice("accel") ?? .auto
        cpus = r.optional("cpus", Int.self, expected: "a whole number of CPUs") ?? 1
        memory = r.optional("memory", MemorySize.self, expected: "a size like \"512M\" or \"2G\"") ?? .mebibytes(512)
        kernel = r.optional("kernel", String.self, expected: "a kernel path or \"auto\"")
        initrd = r.optional("initrd", String.self, expected: "an initrd path")
        cmdline = r.optional("cmdline", String.self, expected: "a string of kernel arguments")
        shares = r.optional("shares", [Share].self, expected: "an array of shares") ?? []
        disks = r.optional("disks", [Disk].self, expected: "an array of disks") ?? []
        network = r.optional("network", Network.self, expected: "a network object") ?? .init()
        command = r.optional("command", [String].self, expected: "an argv array of strings, like [\"uname\", \"-r\"]")
        firmware = r.choice("firmware") ?? .none
        onReboot = r.choice("onReboot") ?? .exit
        transport = r.choice("transport") ?? .auto
        consoles = r.optional("consoles", [String].self, expected: "an array of port names") ?? []
        cpu = r.optional("cpu", String.self, expected: "a QEMU CPU model name")
        lockMemory = r.optional("lockMemory", Bool.self, expected: "true or false") ?? false
        runtimeDir = r.optional("runtimeDir", String.self, expected: "a folder path")
        qemu = r.optional("qemu", QEMUOptions.self, expected: "an object") ?? .init()
        virtiofsd = r.optional("virtiofsd", VirtiofsdOptions.self, expected: "an object") ?? .init()
        timeouts = r.optional("timeouts", Timeouts.self, expected: "an object") ?? .init()
        guestKit = r.optional("guestKit", GuestKitOptions.self, expected: "an object") ?? .init()
        rootfs = r.optional("rootfs", RootFS.self, expected: "\"host\", a folder path, or {\"disk\": N}")
        ready = r.optional("ready", Readiness.self, expected: "an object: {\"console\": TEXT} or {\"port\": N}")
        ssh = r.optional("ssh", SSHAccess.self, expected: "an object: {\"port\": 22, \"user\": \"root\"}")
        try r.finish()
    }

    /// Encodes the profile as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(name, forKey: AnyKey("name"))
        try c.encodeIfPresent(arch, forKey: AnyKey("arch"))
        try c.encodeIfPresent(machine, forKey: AnyKey("machine"))
        try c.encode(accel, forKey: AnyKey("accel"))
        try c.encode(cpus, forKey: AnyKey("cpus"))
        try c.encode(memory, forKey: AnyKey("memory"))
        try c.encodeIfPresent(kernel, forKey: AnyKey("kernel"))
        try c.encodeIfPresent(initrd, forKey: AnyKey("initrd"))
        try c.encodeIfPresent(cmdline, forKey: AnyKey("cmdline"))
        if !shares.isEmpty { try c.encode(shares, forKey: AnyKey("shares")) }
        if !disks.isEmpty { try c.encode(disks, forKey: AnyKey("disks")) }
        if network != .init() { try c.encode(network, forKey: AnyKey("network")) }
        try c.encodeIfPresent(command, forKey: AnyKey("command"))
        if firmware != .none { try c.encode(firmware, forKey: AnyKey("firmware")) }
        if onReboot != .exit { try c.encode(onReboot, forKey: AnyKey("onReboot")) }
        if transport != .auto { try c.encode(transport, forKey: AnyKey("transport")) }
        if !consoles.isEmpty { try c.encode(consoles, forKey: AnyKey("consoles")) }
        try c.encodeIfPresent(cpu, forKey: AnyKey("cpu"))
        if lockMemory { try c.encode(lockMemory, forKey: AnyKey("lockMemory")) }
        try c.encodeIfPresent(runtimeDir, forKey: AnyKey("runtimeDir"))
        if qemu != .init() { try c.encode(qemu, forKey: AnyKey("qemu")) }
        if virtiofsd != .init() { try c.encode(virtiofsd, forKey: AnyKey("virtiofsd")) }
        if timeouts != .init() { try c.encode(timeouts, forKey: AnyKey("timeouts")) }
        if guestKit != .init() { try c.encode(guestKit, forKey: AnyKey("guestKit")) }
        try c.encodeIfPresent(rootfs, forKey: AnyKey("rootfs"))
        try c.encodeIfPresent(ready, forKey: AnyKey("ready"))
        try c.encodeIfPresent(ssh, forKey: AnyKey("ssh"))
    }
}

extension Profile.Share: Codable {
    /// Decodes one of `shares`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["tag", "path", "guestPath", "readOnly", "transport"], what: "a share")
        tag = r.required("tag", String.self, expected: "a mount tag like \"src\"") ?? ""
        path = r.required("path", String.self, expected: "the host folder to share") ?? ""
        guestPath = r.optional("guestPath", String.self, expected: "an absolute guest path")
        readOnly = r.optional("readOnly", Bool.self, expected: "true or false") ?? false
        transport = r.choice("transport") ?? .virtiofs
        try r.finish()
    }

    /// Encodes the share as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(tag, forKey: AnyKey("tag"))
        try c.encode(path, forKey: AnyKey("path"))
        try c.encodeIfPresent(guestPath, forKey: AnyKey("guestPath"))
        try c.encode(readOnly, forKey: AnyKey("readOnly"))
        try c.encode(transport, forKey: AnyKey("transport"))
    }
}

extension Profile.Disk: Codable {
    /// Decodes one of `disks`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["path", "format", "readOnly", "ephemeral", "overlay"], what: "a disk")
        path = r.required("path", String.self, expected: "the disk image's path") ?? ""
        format = r.choice("format") ?? .raw
        readOnly = r.optional("readOnly", Bool.self, expected: "true or false") ?? false
        ephemeral = r.optional("ephemeral", Bool.self, expected: "true or false") ?? false
        overlay = r.choice("overlay") ?? .none
        try r.finish()
    }

    /// Encodes the disk as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(path, forKey: AnyKey("path"))
        try c.encode(format, forKey: AnyKey("format"))
        try c.encode(readOnly, forKey: AnyKey("readOnly"))
        try c.encode(ephemeral, forKey: AnyKey("ephemeral"))
        try c.encode(overlay, forKey: AnyKey("overlay"))
    }
}

extension Profile.Network: Codable {
    /// Decodes `network`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["mode", "forwards"], what: "a network")
        mode = r.choice("mode") ?? .none
        forwards = r.optional("forwards", [Profile.Forward].self, expected: "an array of {\"host\", \"guest\"} ports") ?? []
        try r.finish()
    }

    /// Encodes the network as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(mode, forKey: AnyKey("mode"))
        if !forwards.isEmpty { try c.encode(forwards, forKey: AnyKey("forwards")) }
    }
}

extension Profile.Forward: Codable {
    /// Decodes one of `network.forwards`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["host", "guest", "protocol", "address"], what: "a port forward")
        host = r.required("host", Int.self, expected: "a host port number") ?? 0
        guest = r.required("guest", Int.self, expected: "a guest port number") ?? 0
        proto = r.choice("protocol") ?? .tcp
        address = r.optional("address", String.self, expected: "a host IP address like \"127.0.0.1\"") ?? "127.0.0.1"
        try r.finish()
    }

    /// Encodes the forward as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(host, forKey: AnyKey("host"))
        try c.encode(guest, forKey: AnyKey("guest"))
        try c.encode(proto, forKey: AnyKey("protocol"))
        if address != "127.0.0.1" { try c.encode(address, forKey: AnyKey("address")) }
    }
}

extension Profile.QEMUOptions: Codable {
    /// Decodes `qemu`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["binary", "extraArgs"], what: "qemu options")
        binary = r.optional("binary", String.self, expected: "a program path or name")
        extraArgs = r.optional("extraArgs", [String].self, expected: "an array of strings") ?? []
        try r.finish()
    }

    /// Encodes the options as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encodeIfPresent(binary, forKey: AnyKey("binary"))
        if !extraArgs.isEmpty { try c.encode(extraArgs, forKey: AnyKey("extraArgs")) }
    }
}

extension Profile.VirtiofsdOptions: Codable {
    /// Decodes `virtiofsd`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["binary", "extraArgs", "cache"], what: "virtiofsd options")
        binary = r.optional("binary", String.self, expected: "a program path or name")
        extraArgs = r.optional("extraArgs", [String].self, expected: "an array of strings") ?? []
        cache = r.choice("cache") ?? .auto
        try r.finish()
    }

    /// Encodes the options as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encodeIfPresent(binary, forKey: AnyKey("binary"))
        if !extraArgs.isEmpty { try c.encode(extraArgs, forKey: AnyKey("extraArgs")) }
        if cache != .auto { try c.encode(cache, forKey: AnyKey("cache")) }
    }
}

extension Profile.Timeouts: Codable {
    /// Decodes `timeouts`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["boot", "run", "shutdown"], what: "timeouts")
        let expected = "a duration like \"30s\", \"500ms\" or \"10m\""
        boot = r.optional("boot", TimeLimit.self, expected: expected) ?? .init(.seconds(60))
        run = r.optional("run", TimeLimit.self, expected: expected)
        shutdown = r.optional("shutdown", TimeLimit.self, expected: expected) ?? .init(.seconds(10))
        try r.finish()
    }

    /// Encodes the timeouts as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(boot, forKey: AnyKey("boot"))
        try c.encodeIfPresent(run, forKey: AnyKey("run"))
        try c.encode(shutdown, forKey: AnyKey("shutdown"))
    }
}

extension Profile.GuestKitOptions: Codable {
    /// Decodes `guestKit`, recording every problem with its JSON path (see ``Profile/init(from:)``).
    public init(from decoder: any Decoder) throws {
        let r = try FieldReader(decoder, allowedKeys: ["busybox", "modules"], what: "guest kit options")
        busybox = r.optional("busybox", String.self, expected: "the path of a static busybox for the guest")
        modules = r.optional("modules", String.self, expected: "a modules folder path")
        try r.finish()
    }

    /// Encodes the options as profile JSON, leaving out keys that are at their default.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encodeIfPresent(busybox, forKey: AnyKey("busybox"))
        try c.encodeIfPresent(modules, forKey: AnyKey("modules"))
    }
}
