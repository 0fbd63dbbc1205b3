import ArgumentParser
import Foundation
import LaunchSupport
import QEMULaunch
import QMP

/// `launch list [--json]`: every named VM of this user.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List this user's named VMs: name, state, pids, uptime, memory, forwards, state folder.",
        discussion: """
            States: starting, running, stopping, stopped, crashed, and stale (the record says \
            it runs but its supervisor is gone; no QEMU is left: launch down NAME removes the record).
            """
    )

    @Flag(help: "Print JSON: one object per VM.")
    var json = false

    func run() throws {
        let vms = VMRegistry().all()
        let now = Date()
        if json {
            print(QMP.JSONValue.array(vms.map { $0.listEntry(now: now) }).jsonText)
            return
        }
        guard !vms.isEmpty else {
            print("no named VMs (start one with launch up PROFILE)")
            return
        }
        var rows = [["NAME", "STATE", "SUPERVISOR", "QEMU", "UPTIME", "MEMORY", "FORWARDS", "STATE FOLDER"]]
        for vm in vms {
            let r = vm.record
            let live = vm.status == .running || vm.status == .starting || vm.status == .stopping
            rows.append([
                vm.name, vm.status.rawValue,
                // A finished or stale VM's pids are gone (and may be reused): not shown.
                live ? r.map { String($0.supervisorPid) } ?? "-" : "-",
                live ? r?.qemuPid.map(String.init) ?? "-" : "-",
                live ? r.map { formatUptime(now.timeIntervalSince($0.startedAt)) } ?? "-" : "-",
                r.map { "\($0.memoryMiB)M" } ?? "-",
                r.map { $0.forwards.isEmpty ? "-" : $0.forwards.map { "\($0.host)->\($0.guest)" }.joined(separator: ",") } ?? "-",
                r?.stateFolder ?? "-",
            ])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces))
        }
    }
}

/// "2h05m", "3m12s", "42s".
func formatUptime(_ seconds: TimeInterval) -> String {
    let s = max(0, Int(seconds))
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

extension NamedVM {
    /// This VM as `list --json` prints it.
    func listEntry(now: Date) -> QMP.JSONValue {
        var entry: [String: QMP.JSONValue] = [
            "name": .string(name), "state": .string(status.rawValue), "folder": .string(folder),
            "supervisorAlive": .bool(supervisorIsAlive),
        ]
        if let r = record {
            entry["supervisorPid"] = .int(Int(r.supervisorPid))
            entry["qemuPid"] = r.qemuPid.map { .int(Int($0)) } ?? .null
            entry["startedAt"] = .string(ISO8601DateFormatter().string(from: r.startedAt))
            entry["uptimeSeconds"] = .int(Int(now.timeIntervalSince(r.startedAt)))
            entry["memoryMiB"] = .int(Int(r.memoryMiB))
            entry["forwards"] = .array(r.forwards.map { .object(["address": .string($0.address), "host": .int($0.host), "guest": .int($0.guest), "proto": .string($0.proto)]) })
            entry["stateFolder"] = r.stateFolder.map { .string($0) } ?? .null
            entry["profile"] = .string(r.profile)
            entry["end"] = r.end.map { .string($0) } ?? .null
            entry["shutdownStep"] = r.shutdownStep.map { .string($0) } ?? .null
        }
        return .object(entry)
    }
}
