import Foundation
import Testing

@testable import LaunchBatch

/// Jobs/ at the package root: the schema and the bundled manifests.
private let jobsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Jobs")

@Suite("Jobs/jobs.schema.json and the bundled manifests agree with the decoder")
struct ManifestSchemaTests {
    static func schema() throws -> [String: Any] {
        let data = try Data(contentsOf: jobsFolder.appendingPathComponent("jobs.schema.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func keys(_ object: Any?) -> Set<String> {
        Set(((object as? [String: Any])?["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
    }

    @Test("the schema declares exactly the keys the decoder accepts, at the top, in a job and in the matrix, and forbids others")
    func sameKeys() throws {
        let schema = try Self.schema()
        let properties = try #require(schema["properties"] as? [String: Any])
        #expect(Self.keys(schema) == ManifestKeys.top)
        #expect(Self.keys((properties["jobs"] as? [String: Any])?["items"]) == ManifestKeys.job)
        #expect(Self.keys(properties["matrix"]) == ManifestKeys.matrix)
        #expect(schema["additionalProperties"] as? Bool == false)
        #expect((properties["matrix"] as? [String: Any])?["additionalProperties"] as? Bool == false)
        #expect(((properties["jobs"] as? [String: Any])?["items"] as? [String: Any])?["additionalProperties"] as? Bool == false)
    }

    @Test("every bundled manifest in Jobs/ decodes, and its profiles exist")
    func bundledManifests() throws {
        let files = try FileManager.default.contentsOfDirectory(at: jobsFolder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" && !$0.lastPathComponent.hasSuffix(".schema.json") }
        #expect(!files.isEmpty)
        for file in files {
            let manifest = try JobManifest.load(contentsOf: file)
            for job in manifest.allJobs {
                #expect(FileManager.default.fileExists(atPath: job.profile), "\(file.lastPathComponent): \(job.name): no \(job.profile)")
            }
        }
    }
}
