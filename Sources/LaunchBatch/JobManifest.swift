import Foundation

/// A suite of guest jobs in one file under version control: explicit jobs, a matrix
/// (profiles × kernels × commands), or both. `launch batch jobs.json` runs it.
///
/// Every job has a key, its name, unique in the manifest: it names the job in `--list`,
/// in reports, in `--filter` and in the shard assignment.
public struct JobManifest: Sendable, Equatable {
    /// One guest run: a profile, optionally with its kernel and command replaced.
    public struct Job: Sendable, Equatable {
        /// The job's key: unique in the manifest, no whitespace or control characters.
        public var name: String
        /// The profile's path, absolute (relative paths in the file resolve against its folder).
        public var profile: String
        /// The command to run in the guest; nil runs the profile's own `command`.
        public var command: [String]?
        /// A kernel image path (absolute) or `auto`; nil keeps the profile's.
        public var kernel: String?

        /// A job named `name` booting `profile`, with an optional command and kernel.
        public init(name: String, profile: String, command: [String]? = nil, kernel: String? = nil) {
            self.name = name
            self.profile = profile
            self.command = command
            self.kernel = kernel
        }
    }

    /// Every combination of its axes is a job named `profile/kernel/command`
    /// (the kernel part only when there is a kernels axis; the command part only
    /// when there is a commands axis).
    public struct Matrix: Sendable, Equatable {
        /// One named value of an axis.
        public struct Entry<Value: Sendable & Equatable>: Sendable, Equatable {
            /// Its part of the job names.
            public var name: String
            /// A profile path, a kernel path or a command.
            public var value: Value
            /// An axis entry `name` with `value`.
            public init(name: String, value: Value) {
                self.name = name
                self.value = value
            }
        }

        /// Profile paths (absolute), by name.
        public var profiles: [Entry<String>]
        /// Kernel paths (absolute) or `auto`, by name; empty keeps each profile's kernel.
        public var kernels: [Entry<String>]
        /// Commands, by name; empty runs each profile's own command.
        public var commands: [Entry<[String]>]

        /// A matrix of these axes; each axis in the order given.
        public init(profiles: [Entry<String>], kernels: [Entry<String>] = [], commands: [Entry<[String]>] = []) {
            self.profiles = profiles
            self.kernels = kernels
            self.commands = commands
        }

        /// The jobs of every combination: profiles outermost, commands innermost.
        public var jobs: [Job] {
            let kernelAxis: [Entry<String>?] = kernels.isEmpty ? [nil] : kernels.map { $0 }
            let commandAxis: [Entry<[String]>?] = commands.isEmpty ? [nil] : commands.map { $0 }
            return profiles.flatMap { profile in
                kernelAxis.flatMap { kernel in
                    commandAxis.map { command in
                        let name = ([profile.name, kernel?.name, command?.name] as [String?]).compactMap { $0 }.joined(separator: "/")
                        return Job(name: name, profile: profile.value, command: command?.value, kernel: kernel?.value)
                    }
                }
            }
        }
    }

    /// The jobs listed one by one.
    public var jobs: [Job]
    /// The matrix, when the manifest has one.
    public var matrix: Matrix?

    /// A manifest of `jobs` and an optional `matrix`.
    public init(jobs: [Job] = [], matrix: Matrix? = nil) {
        self.jobs = jobs
        self.matrix = matrix
    }

    /// Every job: the listed ones, then the matrix's.
    public var allJobs: [Job] { jobs + (matrix?.jobs ?? []) }
}

extension JobManifest.Job {
    /// Whether `name` can be a job's key: not empty, no whitespace or control characters
    /// (keys are one column of `--list` and a testcase name in reports).
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
    }
}
