import ArgumentParser
import Foundation
import LaunchSupport
import QEMULaunch

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Show what a VM keeps between runs (its state folder), or delete it with --reset.",
        discussion: """
            A VM with "firmware": "uefi" or a disk with "overlay": "persistent" has a state \
            folder, $XDG_STATE_HOME/qemu-launch/NAME (default ~/.local/state/qemu-launch/NAME): \
            its machine identity (UUID and NIC MAC), UEFI variables and persistent disk overlays \
            with a record of each overlay's base image. --reset deletes all of it (the guest's \
            writes to persistent disks included); the next run starts from the base images \
            with a new identity. It refuses while the VM runs.
            """
    )

    @Argument(help: "The profile (a JSON file); its name picks the state folder.")
    var profile: String?

    @Option(help: "A VM name instead of a profile (when the profile file is gone).")
    var name: String?

    @Flag(help: "Delete the state folder, listing what was deleted.")
    var reset = false

    func validate() throws {
        if (profile == nil) == (name == nil) {
            throw ValidationError("give a profile or --name NAME (one of them)")
        }
    }

    func run() throws {
        let vmName = try name ?? loadProfile(profile!).name
        let folder: VMStateFolder
        do {
            folder = try VMStateFolder(vmName: vmName)
        } catch {
            throw fail(error)
        }
        guard folder.exists else {
            print("VM \(vmName) has no state folder (\(folder.path) does not exist); the first run of a profile with \"firmware\": \"uefi\" or a disk with \"overlay\": \"persistent\" makes it")
            return
        }
        if reset {
            let deleted: [VMStateFolder.File]
            do {
                deleted = try folder.reset()
            } catch {
                throw fail(error)
            }
            let list = deleted.map { "\($0.name) (\(byteCount($0.sizeBytes)))" }.joined(separator: ", ")
            print("deleted \(folder.path): \(list.isEmpty ? "(it was empty)" : list)")
            return
        }
        print("state folder: \(folder.path)")
        do {
            if let identity = try folder.storedIdentity() {
                print("identity: uuid \(identity.uuid), mac \(identity.mac)")
            } else {
                print("identity: none yet (the next run makes one)")
            }
        } catch {
            print("identity: \(error)")
        }
        let inUse = Set(folder.filesInUse())
        for file in folder.files() {
            var line = "  \(file.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(byteCount(file.sizeBytes).leftPadded(10))"
            if let disk = overlayIndex(file.name) {
                let base = folder.baseRecord(disk: disk).map { "over \($0.path)" } ?? "base unknown"
                let verdict = folder.overlayProblem(disk: disk, base: nil, format: nil).map { "UNUSABLE: \($0.message) (fix: \($0.fix))" }
                    ?? "base unchanged"
                line += "  persistent overlay of disks[\(disk)] \(base); \(verdict)"
            }
            if file.name == "crashes" {
                let captures = (try? FileManager.default.contentsOfDirectory(atPath: folder.path + "/crashes"))?.count ?? 0
                line += "  \(captures) crash capture\(captures == 1 ? "" : "s") (console logs and memory dumps of panics)"
            }
            if inUse.contains(file.name) { line += "  (in use by a running QEMU)" }
            print(line)
        }
    }

    /// N for `disk<N>.qcow2`.
    func overlayIndex(_ name: String) -> Int? {
        guard name.hasPrefix("disk"), name.hasSuffix(".qcow2") else { return nil }
        let index = Int(name.dropFirst(4).dropLast(6))
        return index.flatMap { VMStateFolder.overlayFile(disk: $0) == name ? $0 : nil }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
