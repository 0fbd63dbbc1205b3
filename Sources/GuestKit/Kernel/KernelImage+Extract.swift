import Foundation
import LaunchSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension KernelImage {
    /// Decompresses the kernel inside an x86 bzImage into an ELF `vmlinux` at
    /// `destination`, checks that it is an ELF for the same architecture with a PVH
    /// entry note, and returns its inspection.
    ///
    /// Why: under TCG the guest spends most of a bzImage boot decompressing itself;
    /// the ELF boots directly through its PVH entry (`-kernel vmlinux`).
    ///
    /// The payload is found through the setup header (`payload_offset` and
    /// `payload_length`, boot protocol 2.08+), or else by scanning for compression
    /// magics. The host's decompressor does the work (`xz`, `gzip`, `zstd`, `lz4`,
    /// `bzip2`, `lzop`); a missing one is an error naming its Debian package. The
    /// file appears at `destination` atomically (temporary file, then rename), and
    /// its folder is created if needed. Blocks the calling thread (about a second for
    /// Debian's 8 MB xz payload).
    package static func extractVmlinux(fromBzImage url: URL, to destination: URL) throws(Error) -> KernelImage {
        let data = try read(url)
        guard !data.isEmpty else { throw .emptyFile(url) }

        // What to try, read while the bytes are mapped.
        struct Attempt {
            var payload: BzImageHeader.Payload
            /// The bytes handed to the decompressor.
            var range: Range<Int>
            var expectedSize: UInt32?
        }
        let planned = data.withUnsafeBytes { buffer in
            Result { () throws(Error) -> (source: KernelImage, attempts: [Attempt]) in
                let bytes = ByteView(buffer)
                let source = try inspect(bytes, url: url)
                guard case .bzImage = source.format else { throw .notABzImage(url, found: source.format) }
                let header = try BzImageHeader(bytes, url: url)
                if let payload = header.payload, let length = payload.length, length > 4 {
                    let expected = bytes.u32(payload.offset + length - 4)
                    // Other formats carry the size as 4 extra bytes after the stream;
                    // gzip's own trailer ends with it, so gzip keeps them.
                    let streamLength = payload.compression == .gzip ? length : length - 4
                    let range = payload.offset..<(payload.offset + streamLength)
                    return (source, [Attempt(payload: payload, range: range, expectedSize: expected)])
                }
                // Found by scanning, a stream's end is unknown: hand over everything
                // after its start.
                let attempts = header.scanForPayloads(bytes).map {
                    Attempt(payload: $0, range: $0.offset..<bytes.count, expectedSize: nil)
                }
                return (source, attempts)
            }
        }
        let (source, attempts) = try planned.get()
        guard !attempts.isEmpty else { throw .payloadNotFound(url) }

        let folder = destination.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw .writeFailed(destination, reason: error.localizedDescription)
        }
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("guestkit-\(UUID().uuidString)", isDirectory: true)
        do {
            try FileManager.default.createDirectory(
                at: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .writeFailed(scratch, reason: error.localizedDescription)
        }
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Next to the destination, so the final rename stays on one file system.
        let temporary = URL(fileURLWithPath: AtomicFile.temporaryPath(for: destination.path))
        defer { try? FileManager.default.removeItem(at: temporary) }

        var lastError: Error?
        for attempt in attempts {
            let format = attempt.payload.compression
            let input = scratch.appendingPathComponent("payload")
            do {
                try data.subdata(in: attempt.range).write(to: input)
            } catch {
                throw .writeFailed(input, reason: error.localizedDescription)
            }
            let outcome: Decompressor.Outcome
            do {
                outcome = try Decompressor.run(format, input: input, output: temporary)
            } catch {
                throw .decompressionFailed(url, format, error)
            }
            do {
                let image = try verify(
                    temporary, source: source, format: format, expectedSize: attempt.expectedSize, bzImage: url)
                // A tool may complain about bytes after a complete stream (the scan
                // can't know where the stream ends); a verified complete ELF is the
                // real test of success.
                try install(temporary, at: destination)
                return KernelImage(
                    url: destination, format: image.format, arch: image.arch,
                    release: image.release ?? source.release, version: image.version ?? source.version)
            } catch {
                switch error {
                case .archMismatch, .noPVHNote, .writeFailed:
                    throw error  // the kernel was found; trying elsewhere won't change it
                default:
                    lastError = outcome.succeeded ? error : .decompressionFailed(url, format, outcome.error(format))
                }
            }
        }
        throw lastError ?? .payloadNotFound(url)
    }

    /// Checks that the decompressed file is a whole ELF kernel for the bzImage's
    /// architecture with a PVH entry note.
    private static func verify(
        _ file: URL, source: KernelImage, format: Compression, expectedSize: UInt32?, bzImage: URL
    ) throws(Error) -> KernelImage {
        let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.uint64Value ?? 0
        if let expectedSize, UInt32(truncatingIfNeeded: size) != expectedSize {
            throw .decompressedSizeMismatch(bzImage, format, expected: expectedSize, actual: size)
        }
        let image = try inspect(file)
        guard case .elf(let machine, let hasPVHNote) = image.format else {
            throw .payloadNotELF(bzImage, format, found: image.format)
        }
        if let expected = source.arch, machine.arch != expected {
            throw .archMismatch(bzImage, expected: expected, found: machine)
        }
        guard hasPVHNote else { throw .noPVHNote(bzImage, release: image.release ?? source.release) }
        return image
    }

    /// Moves `temporary` over `destination` in one step, so readers see the old file
    /// or the new one, never a partial one.
    private static func install(_ temporary: URL, at destination: URL) throws(Error) {
        guard chmod(temporary.path, 0o644) == 0, rename(temporary.path, destination.path) == 0 else {
            throw .writeFailed(destination, reason: POSIX.describe(errno))
        }
    }
}
