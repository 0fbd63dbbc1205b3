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

    /// Reads a profile file for a launch, leaving its JSON's problems to the launch, so
    /// they are listed with every other problem at once. A value that failed to decode
    /// (an unknown key, a bad size, a wrong type) gets its default in its place, and the
    /// problem is kept in ``decodingProblems``; `Machine.prepare` (so `Machine.start`,
    /// `GuestKit.run` and `launch`) lists those with the problems it finds against the host
    /// and the QEMU binary, and refuses the profile. Nothing more is said at the path of a
    /// value that failed to decode.
    ///
    /// Throws only when there is nothing to go on: the file can't be read, or it is not a
    /// JSON object.
    public static func loadDeferringProblems(contentsOf url: URL) throws(ProfileProblems) -> Profile {
        let data = try read(url)
        let (decoded, problems) = decodeCollectingProblems(data, source: url.path, baseDirectory: url.deletingLastPathComponent())
        guard var decoded else { throw ProfileProblems(source: url.path, problems: problems) }
        decoded.decodingProblems = ProfileProblems(source: url.path, problems: problems)
        return decoded
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
        copy.ssh?.key = ssh?.key.map(absolute)
        // A binary without a slash is a name looked up on PATH, not a relative path.
        if let binary = qemu.binary, binary.contains("/") { copy.qemu.binary = absolute(binary) }
        if let binary = virtiofsd.binary, binary.contains("/") { copy.virtiofsd.binary = absolute(binary) }
        return copy
    }
}

extension [ProfileProblem] {
    /// These problems, then those of `later` that say something new: not one of these
    /// again, and not at (or inside) the path of one of these. A value with a problem is
    /// checked no further: a stand-in default is in its place (`$` holds every path).
    package func followed(by later: [ProfileProblem]) -> [ProfileProblem] {
        var all = self
        for problem in later where !all.contains(problem) && !contains(where: { problem.isWithin($0.path) }) {
            all.append(problem)
        }
        return all
    }
}

extension ProfileProblem {
    /// Whether this problem is at `path` or inside it: `shares[1]` holds `shares[1].tag`.
    func isWithin(_ path: String) -> Bool {
        path == "$" || self.path == path || self.path.hasPrefix(path + ".") || self.path.hasPrefix(path + "[")
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
