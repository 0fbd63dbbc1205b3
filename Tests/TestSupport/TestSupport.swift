import Foundation
import Synchronization

/// A tiny seeded generator (SplitMix64), so a failing property or mutation case
/// reproduces from its seed. The one every test target uses.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// How a helper program the tests ran ended, with everything it printed.
public struct ProcessOutcome: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// A helper program that failed; says which and what it printed on stderr.
public struct ProcessFailure: Error, CustomStringConvertible {
    public var description: String
}

/// The one way the tests run a helper program (a tool, /bin/sh, `launch`) to completion.
public enum TestProcess {
    /// Runs `argv` to its end. stdin is `input` bytes, or the file `inputFile`, or empty;
    /// stdout and stderr are read at the same time, so neither pipe can fill and stall it.
    public static func run(
        _ argv: [String], input: Data? = nil, inputFile: URL? = nil,
        environment: [String: String]? = nil, currentDirectory: URL? = nil
    ) throws -> ProcessOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if let environment { process.environment = environment }
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdinPipe = Pipe()
        if let inputFile {
            process.standardInput = try FileHandle(forReadingFrom: inputFile)
        } else {
            process.standardInput = stdinPipe
        }
        try process.run()
        if inputFile == nil {
            if let input { stdinPipe.fileHandleForWriting.write(input) }
            try stdinPipe.fileHandleForWriting.close()
        }
        let errData = Mutex<Data?>(nil)
        let reader = Thread {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            errData.withLock { $0 = data }
        }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errData.withLock({ $0 == nil }) { Thread.sleep(forTimeInterval: 0.005) }
        return ProcessOutcome(status: process.terminationStatus, stdout: outData, stderr: errData.withLock { $0 } ?? Data())
    }

    /// stdout of a run that must exit 0; otherwise a failure with its stderr.
    @discardableResult
    public static func capture(
        _ argv: [String], input: Data? = nil, inputFile: URL? = nil,
        environment: [String: String]? = nil, currentDirectory: URL? = nil
    ) throws -> String {
        let outcome = try run(argv, input: input, inputFile: inputFile, environment: environment, currentDirectory: currentDirectory)
        guard outcome.status == 0 else {
            throw ProcessFailure(description: "\(argv.joined(separator: " ")) exited with status \(outcome.status): \(outcome.stderrText)\(outcome.stdoutText.suffix(2000))")
        }
        return outcome.stdoutText
    }
}
