import Foundation
import QEMULaunch
import Testing

@Suite("A profile file's problems, all in one pass: the JSON's, the host's, the planner's and the QEMU binary's together")
struct OnePassValidationTests {
    init() { #expect(GoldenFiles.ready) }

    /// Writes `json` to a file and reads it as a launch does (problems deferred).
    func load(_ json: String) throws -> Profile {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onepass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("p.json")
        try Data(json.utf8).write(to: url)
        let profile = try Profile.loadDeferringProblems(contentsOf: url)
        #expect(profile.decodingProblems?.source == url.path)
        return profile
    }

    /// The problems preparing `profile` on `host` lists, merged as `Machine.prepare` merges
    /// them (its host probe and kernel resolution aside): the JSON's, then the plan's, with
    /// the capabilities of the host's QEMU.
    func problems(_ profile: Profile, host: HostFacts = Hosts.x86KVM) -> [ProfileProblem] {
        let decoding = profile.decodingProblems?.problems ?? []
        do {
            let facts = LaunchFacts(profile: profile, host: host, files: HostFiles.read(for: profile),
                                    capabilities: host.qemu[profile.arch ?? host.arch]?.capabilities)
            _ = try Planner.plan(facts, options: PlanOptions(runtimeDir: goldenRuntimeDir))
            return decoding
        } catch {
            return decoding.followed(by: error.problems)
        }
    }

    @Test("reading for a launch keeps the JSON's problems and returns the profile with stand-ins for the bad values")
    func standIns() throws {
        let profile = try load("""
            {"name": "x", "kernel": "\(GoldenFiles.root)/vmlinuz", "memroy": "1G", "memory": "lots", "cpus": 2}
            """)
        #expect(profile.decodingProblems?.problems.map(\.path) == ["memroy", "memory"])
        #expect(profile.memory == .mebibytes(512))
        #expect(profile.cpus == 2)
        // Not part of the value: the same profile made in code is equal.
        var made = Profile(name: "x")
        made.kernel = "\(GoldenFiles.root)/vmlinuz"
        made.cpus = 2
        #expect(profile == made)
    }

    @Test("a file that is not a JSON object still throws: there is nothing to plan")
    func notAnObject() throws {
        #expect(throws: ProfileProblems.self) { _ = try load("[1, 2]") }
        #expect(throws: ProfileProblems.self) { _ = try load("{\"name\": ") }
    }

    @Test("unknown keys and bad sizes are listed with the missing share folder, the duplicate tag and the refused accelerator")
    func decodeHostAndPlannerTogether() throws {
        let profile = try load("""
            {"name": "x", "kernel": "\(GoldenFiles.root)/vmlinuz", "memroy": "1G", "memory": "lots", "accel": "hvf",
             "shares": [{"tag": "a", "path": "/no/such/folder", "transport": "9p"}, {"tag": "a", "path": "\(GoldenFiles.root)/src", "transport": "9p"}]}
            """)
        #expect(problems(profile).map(\.path) == ["memroy", "memory", "shares[0].path", "shares[1].tag", "accel"], "\(problems(profile))")
    }

    @Test("what the QEMU binary lacks is listed with the other problems, not only once they are fixed")
    func capabilitiesWithTheRest() throws {
        var host = Hosts.x86KVM
        host.qemu[.x86_64]?.capabilities?.devices.remove("virtio-9p-device")
        let profile = try load("""
            {"name": "x", "kernel": "\(GoldenFiles.root)/vmlinuz", "cpus": "two", "accel": "hvf",
             "shares": [{"tag": "a", "path": "\(GoldenFiles.root)/src", "transport": "9p"}]}
            """)
        let listed = problems(profile, host: host)
        #expect(listed.map(\.path) == ["cpus", "accel", "shares"], "\(listed)")
        #expect(listed.last?.message.contains("has no device virtio-9p-device") == true)
    }

    @Test("a value that failed to decode is checked no further: one problem at its path, not a second about its stand-in")
    func noEchoOfTheStandIn() throws {
        // No name decodes to "" (the stand-in), which the host check would call unusable;
        // "machine" fails to decode and its stand-in is never called wrong.
        let profile = try load("""
            {"kernel": "\(GoldenFiles.root)/vmlinuz", "cpus": "two", "machine": "vert"}
            """)
        #expect(problems(profile).map(\.path) == ["name", "machine", "cpus"], "\(problems(profile))")
    }

    @Test("a later problem at (or inside) a path with a problem already, or said twice, is left out")
    func followedBy() {
        let first = [ProfileProblem(path: "shares[1]", message: "expected a share"), ProfileProblem(path: "accel", message: "no hvf")]
        let later = [
            ProfileProblem(path: "shares[1].tag", message: "empty tag"),
            ProfileProblem(path: "shares[10].tag", message: "another share"),
            ProfileProblem(path: "accel", message: "no such accelerator"),
            ProfileProblem(path: "memory", message: "too little"),
            ProfileProblem(path: "memory", message: "too little"),
        ]
        #expect(first.followed(by: later).map(\.message) == ["expected a share", "no hvf", "another share", "too little"])
        #expect([ProfileProblem(path: "$", message: "not JSON")].followed(by: later).count == 1)
    }

    @Test("a profile that decodes cleanly has no decoding problems, and plans as before")
    func cleanDecode() throws {
        let profile = try load("""
            {"name": "ok", "kernel": "\(GoldenFiles.root)/vmlinuz"}
            """)
        #expect(profile.decodingProblems?.problems == [])
        #expect(problems(profile).isEmpty)
    }
}
