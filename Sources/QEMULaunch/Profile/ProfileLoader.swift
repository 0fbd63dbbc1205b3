import Foundation

extension Profile {
    /// Decodes a profile from JSON bytes, collecting every problem.
    /// Relative paths are resolved against `baseDirectory` when it is given.
    public static func decode(_ data: Data, source: String = "<profile>", baseDirectory: URL? = nil) throws(ProfileProblems) -> Profile {
        let (profile, problems) = decodeCollectingProblems(data, source: source, baseDirectory: baseDirectory)
        guard let profile, problems.isEmpty else { throw ProfileProblems(source: source, problems: problems) }
        return profile
    }

    /// Reads and decodes a profile file; relative paths resolve against its folder.
    public static func load(contentsOf url: URL) throws(ProfileProblems) -> Profile {
        let data = try read(url)
        return try decode(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    /// Reads a profile file and reports every problem in one pass: those of the JSON
    /// itself (unknown keys, bad sizes, wrong types) together with those found by
    /// checking it against `host` (missing share folders, duplicate tags, a machine the
    /// arch can't have; `ProfileValidator.hostProblems`). A value that failed to decode
    /// is checked with its default in its place, and nothing more is said at its path.
    public static func load(contentsOf url: URL, checkingAgainst host: HostFacts) throws(ProfileProblems) -> Profile {
        let data = try read(url)
        let (decoded, problems) = decodeCollectingProblems(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
        guard let decoded else { throw ProfileProblems(source: url.path, problems: problems) }
        // A clean decode is checked against the host where it is planned (Machine.start,
        // `launch plan`), with the planner's own checks; here only to list it all at once.
        if problems.isEmpty { return decoded }
        let decodePaths = problems.map(\.path)
        let semantic = ProfileValidator.hostProblems(decoded, host: host).filter { problem in
            !decodePaths.contains { path in
                path == "$" || problem.path == path || problem.path.hasPrefix(path + ".") || problem.path.hasPrefix(path + "[")
            }
        }
        throw ProfileProblems(source: url.path, problems: problems + semantic)
    }

    /// Decodes what can be decoded: the profile with defaults where a value was bad
    /// (nil only when the bytes are not a JSON object), and every problem found.
    static func decodeCollectingProblems(_ data: Data, source: String, baseDirectory: URL?) -> (Profile?, [ProfileProblem]) {
        let collector = ProblemCollector()
        let decoder = JSONDecoder()
        decoder.userInfo[.profileProblems] = collector
        var profile: Profile?
        do {
            profile = try decoder.decode(Profile.self, from: data)
        } catch let problems as ProfileProblems {
            if collector.problems.isEmpty { collector.problems = problems.problems }
        } catch {
            collector.problems.append(ProfileProblem(
                path: "$", message: "not valid JSON: \(jsonSyntaxDetail(error))",
                fix: "check the file with `python3 -m json.tool \(source)`"))
        }
        if let baseDirectory { profile = profile?.resolvingPaths(against: baseDirectory) }
        return (profile, collector.problems)
    }

    private static func read(_ url: URL) throws(ProfileProblems) -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ProfileProblems(source: url.path, problems: [ProfileProblem(
                path: "$", message: "cannot read the profile: \(error.localizedDescription)",
                fix: "check that \(url.path) exists and is readable")])
        }
    }

    /// The same profile with every relative host path made absolute against `base`.
    public func resolvingPaths(against base: URL) -> Profile {
        func absolute(_ path: String) -> String {
            if path.hasPrefix("/") || path.isEmpty { return path }
            if path == "~" || path.hasPrefix("~/") {
                return NSString(string: path).expandingTildeInPath
            }
            return base.appendingPathComponent(path).standardizedFileURL.path
        }
        var copy = self
        if let kernel, kernel != "auto" { copy.kernel = absolute(kernel) }
        copy.initrd = initrd.map(absolute)
        copy.runtimeDir = runtimeDir.map(absolute)
        copy.guestKit.busybox = guestKit.busybox.map(absolute)
        copy.guestKit.modules = guestKit.modules.map(absolute)
        copy.shares = shares.map { var s = $0; s.path = absolute(s.path); return s }
        copy.disks = disks.map { var d = $0; d.path = absolute(d.path); return d }
        if case .folder(let path)? = rootfs?.source { copy.rootfs?.source = .folder(absolute(path)) }
        copy.rootfs?.rwdirs = rootfs?.rwdirs.map(absolute) ?? []
        // A binary without a slash is a name looked up on PATH, not a relative path.
        if let binary = qemu.binary, binary.contains("/") { copy.qemu.binary = absolute(binary) }
        if let binary = virtiofsd.binary, binary.contains("/") { copy.virtiofsd.binary = absolute(binary) }
        return copy
    }
}

private func jsonSyntaxDetail(_ error: any Error) -> String {
    if case DecodingError.dataCorrupted(let context) = error {
        if let underlying = context.underlyingError as NSError?,
           let detail = underlying.userInfo[NSDebugDescriptionErrorKey] as? String {
            return detail
        }
        return context.debugDescription
    }
    return "\(error)"
}
