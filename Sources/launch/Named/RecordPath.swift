import Foundation

/// Where a named VM's record folder is (`record.json`, `lock`, `console.log`,
/// `console.sock`, `exec.sock`, `qmp.sock`): `$XDG_RUNTIME_DIR/qemu-launch/vms/NAME`, or
/// `/tmp/qemu-launch-UID/vms/NAME` when XDG_RUNTIME_DIR is unset. Both are this user's only
/// (the folders are made 0700 by `launch up`).
enum RecordPath {
    /// The record folder of the VM called `name`.
    static func folder(for name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        root(environment: environment) + "/vms/" + name
    }

    /// The folder every VM's record folder is in.
    static func root(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return runtime + "/qemu-launch"
        }
        return "/tmp/qemu-launch-\(getuid())"
    }

    /// Whether `name` can be a VM's name (what a profile's `name` allows: letters, digits,
    /// `.`, `_`, `-`; not `.` or `..`), so it can't point outside the records.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
    }
}
