import Foundation
import Synchronization

/// Each job's stdout and stderr kept for the reports, the last `limit` bytes of each
/// (a chatty job must not fill memory or a report with megabytes nobody reads).
final class OutputCapture: Sendable {
    private struct Kept {
        var bytes = Data()
        var dropped = 0
    }

    private let limit: Int
    private let kept = Mutex<[String: Kept]>([:])

    init(limit: Int = 256 * 1024) { self.limit = limit }

    func append(_ key: String, _ data: Data) {
        kept.withLock { all in
            var entry = all[key] ?? Kept()
            entry.bytes += data
            if entry.bytes.count > limit {
                let excess = entry.bytes.count - limit
                entry.dropped += excess
                entry.bytes = Data(entry.bytes.dropFirst(excess))
            }
            all[key] = entry
        }
    }

    /// What `key` wrote, as text, led by a line saying how much was cut when it was.
    func text(_ key: String) -> String {
        guard let entry = kept.withLock({ $0[key] }) else { return "" }
        let text = String(decoding: entry.bytes, as: UTF8.self)
        return entry.dropped == 0 ? text : "[launch: the first \(entry.dropped) bytes are cut; the last \(limit) follow]\n" + text
    }
}
