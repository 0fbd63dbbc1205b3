import Foundation
import LaunchSupport
import QEMULaunch
#if canImport(Glibc)
import Glibc
#endif

/// Why a host decompression tool could not do its job.
package enum DecompressionError: Swift.Error, Sendable, Hashable, CustomStringConvertible {
    /// The tool is not on PATH (nor in the usual bin folders).
    case toolMissing(Compression)
    /// The tool could not be started.
    case launchFailed(Compression, tool: String, reason: String)
    /// The tool exited unsuccessfully or was killed; `stderr` is the tail of its output.
    case toolFailed(Compression, tool: String, status: Int32, signalled: Bool, stderr: String)
    /// Reading the input or writing the output failed.
    case io(String)

    package var description: String {
        switch self {
        case .toolMissing(let format):
            "can't decompress \(format) data: `\(format.tool)` is not installed; " + LaunchError.installFix("Debian and Ubuntu: \(format.debianPackage)")
        case .launchFailed(let format, let tool, let reason):
            "can't start \(tool) to decompress \(format) data: \(reason); check that \(tool) runs, or reinstall \(format.debianPackage)"
        case .toolFailed(let format, let tool, let status, let signalled, let stderr):
            "\(tool) failed to decompress \(format) data (\(signalled ? "killed by signal" : "exit status") \(status))"
                + (stderr.isEmpty ? "" : ": \(stderr)")
                + "; the data may be corrupt or truncated"
        case .io(let message):
            message
        }
    }
}

/// Runs host decompression tools. Everything here blocks the calling thread until the
/// tool exits: call it from a thread that may block, not from the cooperative pool.
enum Decompressor {
    /// How a run ended. The caller decides whether a non-zero status is fatal: a tool
    /// can complain about trailing bytes after a complete stream.
    struct Outcome {
        var status: Int32
        var signalled: Bool
        var stderr: String
        var succeeded: Bool { !signalled && status == 0 }

        func error(_ format: Compression) -> DecompressionError {
            .toolFailed(format, tool: format.tool, status: status, signalled: signalled, stderr: stderr)
        }
    }

    /// Folders searched after PATH, for hosts whose PATH is minimal (launchd, sudo).
    static let fallbackFolders = ["/usr/bin", "/bin", "/usr/local/bin", "/opt/homebrew/bin", "/usr/sbin", "/sbin"]

    static func toolURL(for format: Compression) throws(DecompressionError) -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + fallbackFolders
        for folder in folders where !folder.isEmpty {
            let candidate = URL(fileURLWithPath: folder).appendingPathComponent(format.tool)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw .toolMissing(format)
    }

    /// Decompresses the file at `input` into the file at `output` (created or
    /// truncated). The tool is spawned through the shim like every child, so it dies
    /// with the launcher; its stderr is read while it runs (a pipe nobody reads would
    /// stall a chatty tool).
    static func run(_ format: Compression, input: URL, output: URL) throws(DecompressionError) -> Outcome {
        let tool = try toolURL(for: format)
        let inputFd = open(input.path, O_RDONLY | O_CLOEXEC)
        guard inputFd >= 0 else {
            throw .io("can't open \(input.path) for decompression: \(POSIX.describe(errno)); check that it exists and is readable")
        }
        defer { close(inputFd) }
        let outputFd = open(output.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard outputFd >= 0 else {
            throw .io("can't create \(output.path): \(POSIX.describe(errno)); check that its folder exists and is writable")
        }
        defer { close(outputFd) }
        let result: (status: ExitStatus, output: String, timedOut: Bool)
        do {
            result = try ChildProcess.run(name: format.tool, argv: [tool.path] + format.decompressArguments,
                                          stdin: inputFd, stdout: outputFd, outputLimit: 64 << 10)
        } catch {
            throw .launchFailed(format, tool: tool.path, reason: error.message)
        }
        let tail = result.output.split(separator: "\n").suffix(5).joined(separator: " / ")
        let (status, signalled): (Int32, Bool) = switch result.status {
        case .exited(let code): (code, false)
        case .signalled(let sig): (sig, true)
        }
        return Outcome(status: status, signalled: signalled, stderr: String(tail.prefix(1000)))
    }

    /// Decompresses a whole file into memory; any non-zero exit is an error.
    static func decompress(_ format: Compression, file input: URL) throws(DecompressionError) -> Data {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("guestkit-\(UUID().uuidString)", isDirectory: true)
        do {
            try FileManager.default.createDirectory(
                at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .io("can't create a temporary folder in \(FileManager.default.temporaryDirectory.path): \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out")
        let outcome = try run(format, input: input, output: output)
        guard outcome.succeeded else { throw outcome.error(format) }
        do {
            return try Data(contentsOf: output)
        } catch {
            throw .io("can't read the decompressed \(input.lastPathComponent): \(error.localizedDescription)")
        }
    }
}
