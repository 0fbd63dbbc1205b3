import Foundation

/// Splits a byte stream into lines and prefixes each, keeping a partial last line until it ends.
final class LinePrefixer: @unchecked Sendable {
    // Guarded by `lock`: reader threads of several VMs call `feed` at once.
    private let lock = NSLock()
    private var pending: [String: Data] = [:]
    private let write: @Sendable (Data) -> Void

    init(write: @escaping @Sendable (Data) -> Void) { self.write = write }

    func feed(_ key: String, prefix: String, _ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        var buffer = (pending[key] ?? Data()) + data
        var out = Data()
        while let newline = buffer.firstIndex(of: 0x0a) {
            out += Data(prefix.utf8) + buffer[buffer.startIndex...newline]
            buffer = Data(buffer[(newline + 1)...])
        }
        pending[key] = buffer
        if !out.isEmpty { write(out) }
    }

    /// Writes every unterminated last line, with a newline.
    func flush(prefix: (String) -> String) {
        lock.lock()
        defer { lock.unlock() }
        for (key, data) in pending.sorted(by: { $0.key < $1.key }) where !data.isEmpty {
            write(Data(prefix(key).utf8) + data + Data("\n".utf8))
        }
        pending = [:]
    }
}
