import Foundation
import LaunchSupport
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Persistent disk overlays: `disk<N>.qcow2` in the state folder, backed by the
// user's image, made on the first run and reused after. A qcow2 overlay stores
// only the clusters the guest wrote; every other read goes to the base. If the
// base changes under it, the guest sees a mix of old writes and new base data:
// a corrupt disk. So the base's size and mtime are recorded when the overlay is
// made (`disk<N>.base.json`) and checked before every start.

extension VMStateFolder {
    /// The base image an overlay was made over, as it was then.
    package struct BaseRecord: Sendable, Hashable, Codable {
        package var path: String
        package var format: Profile.DiskFormat
        package var sizeBytes: UInt64
        package var modifiedSeconds: Int64
        package var modifiedNanoseconds: Int64

        package init(path: String, format: Profile.DiskFormat, sizeBytes: UInt64, modifiedSeconds: Int64, modifiedNanoseconds: Int64) {
            self.path = path
            self.format = format
            self.sizeBytes = sizeBytes
            self.modifiedSeconds = modifiedSeconds
            self.modifiedNanoseconds = modifiedNanoseconds
        }

        /// The image at `path` now; nil when it can't be stat'ed.
        package static func current(path: String, format: Profile.DiskFormat) -> BaseRecord? {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            #if canImport(Darwin)
            let modified = info.st_mtimespec
            #else
            let modified = info.st_mtim
            #endif
            return BaseRecord(path: path, format: format, sizeBytes: UInt64(info.st_size),
                              modifiedSeconds: Int64(modified.tv_sec), modifiedNanoseconds: Int64(modified.tv_nsec))
        }

        /// How `now` differs from this record, in words; empty when the base is unchanged.
        package func changes(to now: BaseRecord) -> [String] {
            var changes: [String] = []
            if now.sizeBytes != sizeBytes { changes.append("size \(sizeBytes) → \(now.sizeBytes) bytes") }
            if now.modifiedSeconds != modifiedSeconds || now.modifiedNanoseconds != modifiedNanoseconds {
                changes.append("modified \(timestamp) → \(now.timestamp)")
            }
            return changes
        }

        var timestamp: String {
            let date = Date(timeIntervalSince1970: Double(modifiedSeconds) + Double(modifiedNanoseconds) / 1e9)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: date)
        }
    }

    /// Why an existing overlay can't be used (what, why, fix).
    package struct OverlayProblem: Sendable, Hashable {
        package var message: String
        package var fix: String
    }

    /// The record next to `disks[index]`'s overlay, if readable.
    package func baseRecord(disk index: Int) -> BaseRecord? {
        guard let data = FileManager.default.contents(atPath: path + "/" + Self.baseRecordFile(disk: index)) else { return nil }
        return try? JSONDecoder().decode(BaseRecord.self, from: data)
    }

    /// Whether the existing overlay of `disks[index]` may be used over `base` (nil: the
    /// recorded base, for `launch state`); nil = yes.
    package func overlayProblem(disk index: Int, base: String?, format: Profile.DiskFormat?) -> OverlayProblem? {
        let overlay = path + "/" + Self.overlayFile(disk: index)
        let record = path + "/" + Self.baseRecordFile(disk: index)
        let discard = "or discard the guest's writes to this disk: rm \(QEMUSyntax.shellQuote(overlay)) \(QEMUSyntax.shellQuote(record)) (`launch state PROFILE --reset` deletes the whole state folder)"
        guard let recorded = baseRecord(disk: index) else {
            return OverlayProblem(message: "the persistent overlay \(overlay) has no readable record of its base image (\(record)), so a change to the base can't be ruled out",
                                  fix: "if the base is unchanged since the overlay was made, restore the record; " + discard)
        }
        let expected = base.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? recorded.path
        let expectedFormat = format ?? recorded.format
        if recorded.path != expected || recorded.format != expectedFormat {
            return OverlayProblem(message: "the persistent overlay \(overlay) was made over \(recorded.path) (\(recorded.format.rawValue)), and disks[\(index)] is now \(expected) (\(expectedFormat.rawValue))",
                                  fix: "point disks[\(index)] back at \(recorded.path), " + discard)
        }
        guard let now = BaseRecord.current(path: expected, format: expectedFormat) else {
            return OverlayProblem(message: "the base image \(expected) of the persistent overlay \(overlay) is gone",
                                  fix: "restore it, " + discard)
        }
        let changes = recorded.changes(to: now)
        if !changes.isEmpty {
            var restore = "restore the base image as it was, "
            if now.sizeBytes == recorded.sizeBytes {
                let time = "\(recorded.modifiedSeconds)." + String(format: "%09lld", recorded.modifiedNanoseconds)
                restore = "restore the base image as it was (if only its time changed and not its contents, set the time back: touch -d @\(time) \(QEMUSyntax.shellQuote(expected))), "
            }
            return OverlayProblem(message: "the base image \(expected) changed since its persistent overlay \(overlay) was made (\(changes.joined(separator: ", "))): the overlay holds the guest's writes as differences from the old contents, so over the new ones the guest would see a corrupt disk",
                                  fix: restore + discard)
        }
        return nil
    }

    /// Checks every existing overlay against its base, then makes the missing ones.
    /// Runs before QEMU starts; a problem leaves nothing new behind.
    func prepareOverlays(_ overlays: [Plan.PersistentOverlay], qemuImg: String, environment: [String: String], logger: Logger) async throws(LaunchError) {
        var missing: [Plan.PersistentOverlay] = []
        for overlay in overlays {
            if FileManager.default.fileExists(atPath: overlay.path) {
                if let problem = overlayProblem(disk: overlay.disk, base: overlay.base, format: overlay.baseFormat) {
                    throw LaunchError(.hostProblem, "disks[\(overlay.disk)]: " + problem.message, fix: problem.fix)
                }
                logger.info("disks[\(overlay.disk)]: persistent overlay \(overlay.path) (base \(overlay.base) unchanged since it was made)")
            } else {
                missing.append(overlay)
            }
        }
        for overlay in missing {
            try await makeOverlay(overlay, qemuImg: qemuImg, environment: environment)
            logger.info("disks[\(overlay.disk)]: new persistent overlay \(overlay.path) over \(overlay.base); the guest's writes are kept there")
        }
    }

    /// qemu-img writes to a temporary name, the record is written, then the overlay is
    /// renamed into place: an overlay file always has its record.
    private func makeOverlay(_ overlay: Plan.PersistentOverlay, qemuImg: String, environment: [String: String]) async throws(LaunchError) {
        try create()
        let temporary = AtomicFile.temporaryPath(for: overlay.path)
        unlink(temporary)
        defer { unlink(temporary) }
        try await runToCompletion(overlay.createCommand(qemuImg: qemuImg, output: temporary), environment: environment)
        guard let record = BaseRecord.current(path: overlay.absoluteBase, format: overlay.baseFormat) else {
            throw LaunchError(.hostProblem, "disks[\(overlay.disk)]: cannot stat the base image \(overlay.absoluteBase)", fix: "check that it exists")
        }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try AtomicFile.write(encoder.encode(record) + Data("\n".utf8), to: overlay.baseRecord)
        } catch {
            throw LaunchError(.hostProblem, "cannot write \(overlay.baseRecord)", fix: "check that \(path) is writable", cause: error)
        }
        if rename(temporary, overlay.path) != 0 {
            throw LaunchError(.hostProblem, "cannot move the new overlay into place at \(overlay.path): \(POSIX.describe(errno))",
                              fix: "check that \(path) is writable")
        }
    }
}
