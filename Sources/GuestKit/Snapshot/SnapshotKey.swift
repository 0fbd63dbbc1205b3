import Foundation
import QEMULaunch

/// Everything that shapes a saved guest, as text: a snapshot is used only by a run whose key
/// is the same, character for character. Made from the plan (QEMU's argv: machine, devices,
/// memory, cpus, accelerator, kernel command line), with the run's own paths normalised, and
/// the identity (path, size, mtime, inode) of the QEMU binary, the kernel and the initramfs.
struct SnapshotKey: Sendable, Hashable {
    /// The key's lines.
    var text: String
    /// The profile's name, for `launch doctor` and to replace its older snapshots.
    var profileName: String

    /// Bumped when the guest kit's park protocol or the save format changes.
    static let formatVersion = "guestkit-snapshot-1"

    /// A file name for this key: 32 hex digits.
    var hex: String {
        var fingerprint = Fingerprint()
        fingerprint.add(text)
        return fingerprint.hex
    }

    /// The key of `plan` as QEMU runs it (before `-incoming` is added). `version` is the
    /// QEMU version the binary reported.
    static func of(_ plan: Plan, profileName: String, qemuVersion: String?) -> SnapshotKey {
        var lines = [formatVersion]
        lines.append("qemu-version " + (qemuVersion ?? "unknown"))
        // Per-run paths (the runtime dir holds every socket) would make every key new.
        let argv = plan.qemu.map { $0.replacingOccurrences(of: plan.runtimeDir, with: "RUNTIME") }
        lines.append("argv " + QEMUSyntax.shellLine(argv))
        var files = [plan.qemu[0]]
        if let index = plan.qemu.firstIndex(of: "-kernel"), index + 1 < plan.qemu.count { files.append(plan.qemu[index + 1]) }
        if let index = plan.qemu.firstIndex(of: "-initrd"), index + 1 < plan.qemu.count { files.append(plan.qemu[index + 1]) }
        for file in files {
            var fingerprint = Fingerprint()
            fingerprint.add(file: file)
            lines.append("file \(file) \(fingerprint.hex)")
        }
        return SnapshotKey(text: lines.joined(separator: "\n") + "\n", profileName: profileName)
    }
}
