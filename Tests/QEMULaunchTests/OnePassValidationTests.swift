import Foundation
import QEMULaunch
import Testing

@Suite("A profile file's problems, all in one pass: the JSON's and the host's together")
struct OnePassValidationTests {
    init() { #expect(GoldenFiles.ready) }

    func load(_ json: String) throws -> [ProfileProblem] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onepass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("p.json")
        try Data(json.utf8).write(to: url)
        do {
            _ = try Profile.load(contentsOf: url, checkingAgainst: Hosts.x86KVM)
            return []
        } catch {
            #expect(error.source == url.path)
            return error.problems
        }
    }

    @Test("unknown keys and bad sizes are listed with the missing share folder and the duplicate tag")
    func decodeAndHostTogether() throws {
        let problems = try load("""
            {"name": "x", "kernel": "\(GoldenFiles.root)/vmlinuz", "memroy": "1G", "memory": "lots",
             "shares": [{"tag": "a", "path": "/no/such/folder"}, {"tag": "a", "path": "\(GoldenFiles.root)/src"}]}
            """)
        #expect(problems.map(\.path) == ["memroy", "memory", "shares[0].path", "shares[1].tag"], "\(problems)")
    }

    @Test("a value that failed to decode is checked no further: one problem at its path, not a second about its stand-in")
    func noEchoOfTheStandIn() throws {
        // No name decodes to "" (the stand-in), which the host check would call unusable.
        let problems = try load("""
            {"kernel": "\(GoldenFiles.root)/vmlinuz", "cpus": "two", "machine": "virt"}
            """)
        #expect(problems.map(\.path) == ["name", "cpus", "machine"], "\(problems)")
    }

    @Test("a profile that decodes cleanly is left to the planner's checks (which include the host's)")
    func cleanDecodeReturns() throws {
        let problems = try load("""
            {"name": "ok", "kernel": "\(GoldenFiles.root)/vmlinuz"}
            """)
        #expect(problems.isEmpty)
    }
}
