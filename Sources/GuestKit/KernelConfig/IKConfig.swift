import Foundation

/// The configuration a kernel built with `CONFIG_IKCONFIG` carries inside itself:
/// `kernel/configs.c` embeds the gzipped `.config` between the markers `IKCFG_ST` and
/// `IKCFG_ED`, in the uncompressed kernel (a `vmlinux`, an arm64 `Image`, or the
/// payload of a bzImage once decompressed).
enum IKConfig {
    static let start = Data("IKCFG_ST".utf8)
    static let end = Data("IKCFG_ED".utf8)

    /// The gzip stream between the markers in uncompressed kernel bytes, if any.
    static func gzipStream(in kernel: Data) -> Data? {
        guard let head = kernel.range(of: start) else { return nil }
        guard let tail = kernel.range(of: end, in: head.upperBound..<kernel.endIndex) else { return nil }
        let stream = kernel[head.upperBound..<tail.lowerBound]
        // The stream starts with gzip's magic; anything else is a stray marker (a string table).
        guard stream.starts(with: [0x1F, 0x8B]) else { return nil }
        return Data(stream)
    }

    /// The `.config` text embedded in the kernel file at `url`, decompressing a
    /// bzImage's payload with the host's tool when needed; nil when the kernel has none
    /// (or can't be read). Blocks while a decompressor runs.
    static func configText(ofKernel url: URL) -> String? {
        guard let data = try? Data(contentsOf: url, options: .mappedIfSafe) else { return nil }
        if let stream = gzipStream(in: data) { return gunzip(stream) }
        guard let uncompressed = decompressedPayload(of: data, url: url),
              let stream = gzipStream(in: uncompressed) else { return nil }
        return gunzip(stream)
    }

    /// The decompressed kernel inside a bzImage, or nil for anything else.
    private static func decompressedPayload(of data: Data, url: URL) -> Data? {
        let payloads: [BzImageHeader.Payload]? = data.withUnsafeBytes { buffer in
            let bytes = ByteView(buffer)
            guard bytes.matches(BzImageHeader.magic, at: BzImageHeader.magicOffset),
                  let header = try? BzImageHeader(bytes, url: url) else { return nil }
            if let payload = header.payload { return [payload] }
            return header.scanForPayloads(bytes)
        }
        for payload in payloads ?? [] {
            // The setup header's length counts a 4-byte size after the stream (gzip's own trailer ends with it).
            var end = payload.length.map { payload.offset + $0 } ?? data.count
            if payload.length != nil, payload.compression != .gzip { end -= 4 }
            guard payload.offset < end, end <= data.count else { continue }
            if let bytes = decompress(data.subdata(in: payload.offset..<end), payload.compression) { return bytes }
        }
        return nil
    }

    private static func gunzip(_ stream: Data) -> String? {
        decompress(stream, .gzip).flatMap { String(data: $0, encoding: .utf8) }
    }

    /// Decompresses through a scratch file with the host's tool; a complaint about bytes
    /// after a complete stream still yields the output.
    private static func decompress(_ bytes: Data, _ format: Compression) -> Data? {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("guestkit-\(UUID().uuidString)", isDirectory: true)
        guard (try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])) != nil else { return nil }
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("in"), output = folder.appendingPathComponent("out")
        guard (try? bytes.write(to: input)) != nil,
              (try? Decompressor.run(format, input: input, output: output)) != nil,
              let result = try? Data(contentsOf: output), !result.isEmpty else { return nil }
        return result
    }
}
