import Foundation
import Testing

@testable import QEMULaunch

#if canImport(Glibc)
import Glibc
#endif

/// The fixed runtime dir every golden plan uses.
let goldenRuntimeDir = "/run/user/1000/launch-test0001"

/// Files at fixed paths under /tmp/qlt-golden, so golden argv can be written out
/// literally. Validation only checks that they exist (kernels are empty files).
enum GoldenFiles {
    static let root = "/tmp/qlt-golden"

    static let folders = ["src", "data", "a,readonly=off"]
    static let files = ["vmlinuz", "vmlinux", "Image", "initrd.img", "disk.img", "disk.qcow2", "d,readonly=off.img"]

    /// Creates the files once per process (idempotent, so concurrent runs are fine);
    /// true only when every one of them is there afterwards.
    static let ready: Bool = {
        let fm = FileManager.default
        for dir in folders {
            try? fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        for file in files where !fm.fileExists(atPath: "\(root)/\(file)") {
            _ = fm.createFile(atPath: "\(root)/\(file)", contents: Data())
        }
        var isFolder: ObjCBool = false
        return folders.allSatisfy { fm.fileExists(atPath: "\(root)/\($0)", isDirectory: &isFolder) && isFolder.boolValue }
            && files.allSatisfy { fm.fileExists(atPath: "\(root)/\($0)", isDirectory: &isFolder) && !isFolder.boolValue }
    }()
}

/// Host facts for the hosts the golden tests plan for.
/// Capabilities as QEMU 7.2 and 10.0 describe themselves, from the help outputs
/// recorded in Tests/QEMULaunchTests/Fixtures (see its README).
enum RecordedQEMU {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func text(_ version: String, _ file: String) -> String {
        (try? String(contentsOf: folder.appendingPathComponent("qemu-\(version)/\(file)"), encoding: .utf8)) ?? ""
    }

    /// `version` is "7.2" or "10.0"; `arch` "x86_64" or "aarch64".
    static func capabilities(_ version: String, _ arch: Profile.Arch) -> QEMUCapabilities {
        let a = arch.rawValue
        // "bios-microvm.bin: KIND (...)" and "qboot.rom: present|absent (...)".
        let firmwareLines = text(version, "\(a).microvm-firmware.txt").split(separator: "\n").map { $0.split(separator: " ") }
        let firmware = firmwareLines.first { $0.first == "bios-microvm.bin:" }.flatMap { $0.count > 1 ? QEMUCapabilities.MicrovmFirmware(rawValue: String($0[1])) : nil }
        let qboot = firmwareLines.contains { $0.first == "qboot.rom:" && $0.dropFirst().first == "present" }
        return QEMUCapabilities.parse(
            version: text(version, "\(a).version.txt"), machineHelp: text(version, "\(a).machine-help.txt"),
            deviceHelp: text(version, "\(a).device-help.txt"), accelHelp: text(version, "\(a).accel-help.txt"),
            microvmFirmware: firmware, hasQboot: qboot)
    }

    static let v7_2 = (x86: capabilities("7.2", .x86_64), arm: capabilities("7.2", .aarch64))
    static let v10_0 = (x86: capabilities("10.0", .x86_64), arm: capabilities("10.0", .aarch64))
}

enum Hosts {
    /// x86_64 Linux whose /dev/kvm works; Debian 12's QEMU 7.2 (recorded) with the legacy C virtiofsd.
    static let x86KVM = HostFacts(
        arch: .x86_64, os: .linux, kvm: .usable,
        hvf: .absent("Hypervisor.framework exists only on macOS"),
        qemu: [
            .x86_64: QEMUBinary(path: "/usr/bin/qemu-system-x86_64", capabilities: RecordedQEMU.v7_2.x86),
            .aarch64: QEMUBinary(path: "/usr/bin/qemu-system-aarch64", capabilities: RecordedQEMU.v7_2.arm),
        ],
        qemuImg: "/usr/bin/qemu-img",
        virtiofsd: VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC),
        tscKHz: 2_995_200, runtimeBase: "/run/user/1000")

    /// x86_64 Linux without KVM (a cloud VM without nesting); QEMU 10.0 (recorded) and the Rust virtiofsd.
    static let x86TCG = HostFacts(
        arch: .x86_64, os: .linux, kvm: .absent("/dev/kvm does not exist"),
        hvf: .absent("Hypervisor.framework exists only on macOS"),
        qemu: [
            .x86_64: QEMUBinary(path: "/usr/local/bin/qemu-system-x86_64", capabilities: RecordedQEMU.v10_0.x86),
            .aarch64: QEMUBinary(path: "/usr/local/bin/qemu-system-aarch64", capabilities: RecordedQEMU.v10_0.arm),
        ],
        qemuImg: "/usr/local/bin/qemu-img",
        virtiofsd: VirtiofsdBinary(path: "/usr/libexec/virtiofsd", flavor: .rust),
        tscKHz: 2_400_000, runtimeBase: "/tmp")

    /// aarch64 Linux (a Graviton or Ampere server) with KVM; the Rust virtiofsd.
    static let armKVM = HostFacts(
        arch: .aarch64, os: .linux, kvm: .usable,
        hvf: .absent("Hypervisor.framework exists only on macOS"),
        qemu: [.aarch64: QEMUBinary(path: "/usr/bin/qemu-system-aarch64")],
        qemuImg: "/usr/bin/qemu-img",
        virtiofsd: VirtiofsdBinary(path: "/usr/libexec/virtiofsd", flavor: .rust),
        tscKHz: nil, runtimeBase: "/run/user/1000")

    /// Apple silicon macOS with Homebrew's QEMU; no virtiofsd.
    static let macHVF = HostFacts(
        arch: .aarch64, os: .macOS, kvm: .absent("KVM exists only on Linux"), hvf: .usable,
        qemu: [.aarch64: QEMUBinary(path: "/opt/homebrew/bin/qemu-system-aarch64")],
        qemuImg: "/opt/homebrew/bin/qemu-img",
        virtiofsd: nil, tscKHz: nil, runtimeBase: "/var/folders/zz/T")
}

/// Decodes a profile written inline in a test, failing the test on problems.
func profile(_ json: String, base: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> Profile {
    do {
        return try Profile.decode(Data(json.utf8), source: "test", baseDirectory: base.map { URL(fileURLWithPath: $0) })
    } catch {
        Issue.record("the profile did not decode: \(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// The problems decoding `json` reports (empty when it decodes).
func decodeProblems(_ json: String) -> [ProfileProblem] {
    do {
        _ = try Profile.decode(Data(json.utf8), source: "test")
        return []
    } catch {
        return error.problems
    }
}

/// The problems `Planner.plan` reports (empty when it plans).
func planProblems(_ profile: Profile, host: HostFacts, runtimeDir: String = goldenRuntimeDir) -> [ProfileProblem] {
    do {
        _ = try Planner.plan(profile, host: host, options: PlanOptions(runtimeDir: runtimeDir))
        return []
    } catch {
        return error.problems
    }
}

/// A private temp folder, removed by `remove()`.
struct TempDir: Sendable {
    let path: String

    init(_ prefix: String = "qlt") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: errno \(errno)") }
        path = String(cString: made)
    }

    func file(_ name: String, contents: String = "") -> String {
        let full = "\(path)/\(name)"
        try? FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(contents.utf8))
        return full
    }

    func folder(_ name: String) -> String {
        let full = "\(path)/\(name)"
        try? FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The package's root folder (this file is Tests/QEMULaunchTests/Support/Fixtures.swift).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
