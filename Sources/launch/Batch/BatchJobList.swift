import ArgumentParser
import Foundation
import GuestKit
import LaunchBatch
import QEMULaunch

/// The jobs `launch batch` was given, before sharding and filtering: a manifest's, or
/// every profile × every `-c` command.
struct BatchJobList {
    /// The suite's name in reports: the manifest's file name, or "batch".
    var suite: String
    var jobs: [JobManifest.Job]
    /// Profiles already loaded (the profile form loads them to name its jobs).
    var loaded: [String: Profile] = [:]

    /// A job manifest's jobs; prints every problem and exits 65 when it is invalid.
    static func manifest(_ path: String) throws -> BatchJobList {
        let url = URL(fileURLWithPath: absolutePath(path))
        do {
            let manifest = try JobManifest.load(contentsOf: url)
            return BatchJobList(suite: url.deletingPathExtension().lastPathComponent, jobs: manifest.allJobs)
        } catch {
            FileHandle.standardError.write(Data("launch: \(error)\n".utf8))
            throw ExitCode(LaunchError.Code.invalidProfile)
        }
    }

    /// Every profile with every command (or its own), labelled by the profile's name,
    /// `.N` when two profiles share a name, `#N` for the Nth of several commands.
    static func profiles(_ paths: [String], commands shell: [String], overrides: ProfileOverrides) async throws -> BatchJobList {
        var list = BatchJobList(suite: "batch", jobs: [])
        let commands: [[String]?] = !shell.isEmpty ? shell.map { ["sh", "-c", $0] } : [nil]
        let names = paths.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        for (profileIndex, path) in paths.enumerated() {
            let profile = try await overrides.loadProfile(path)
            list.loaded[absolutePath(path)] = profile
            for (index, command) in commands.enumerated() {
                guard command != nil || profile.command != nil else {
                    FileHandle.standardError.write(Data("launch: \(path) has no command; parallel jobs need one (in the profile or with -c)\n".utf8))
                    throw ExitCode(LaunchError.Code.invalidProfile)
                }
                var label = profile.name
                if names.filter({ $0 == names[profileIndex] }).count > 1 { label += ".\(profileIndex + 1)" }
                if commands.count > 1 { label += "#\(index + 1)" }
                list.jobs.append(JobManifest.Job(name: label, profile: absolutePath(path), command: command))
            }
        }
        return list
    }

    /// The guest-kit jobs for `selected`: each profile loaded once with the overrides,
    /// then the job's kernel (unless --kernel or --kernel-tree chose one) and command set.
    /// Every profile's problems are printed before it exits 65.
    func guestJobs(_ selected: [JobManifest.Job], overrides: ProfileOverrides) async throws -> [GuestKit.Job] {
        var profiles = loaded
        var failed = false
        for path in Set(selected.map(\.profile)).sorted() where profiles[path] == nil {
            do {
                profiles[path] = try await overrides.loadProfile(path)
            } catch let exit as ExitCode where exit.rawValue == LaunchExit.invalidProfile {
                failed = true
            }
        }
        var jobs: [GuestKit.Job] = []
        for job in selected {
            guard var profile = profiles[job.profile] else { continue }
            if let kernel = job.kernel, overrides.kernel == nil, overrides.kernelTree == nil { profile.kernel = kernel }
            if let command = job.command { profile.command = command }
            guard profile.command != nil else {
                FileHandle.standardError.write(Data("launch: job \(job.name): its profile \(job.profile) has no command; give the job a \"command\" (or the profile one)\n".utf8))
                failed = true
                continue
            }
            jobs.append(GuestKit.Job(label: job.name, profile: profile))
        }
        if failed { throw ExitCode(LaunchError.Code.invalidProfile) }
        return jobs
    }
}
