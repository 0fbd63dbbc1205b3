import Foundation
import QEMULaunch

/// A kernel's configuration, as in a `.config`, `/boot/config-<release>` or the
/// IKCONFIG copy inside an image: every `CONFIG_NAME=value` line, and the
/// `# CONFIG_NAME is not set` ones.
public struct KernelConfig: Sendable, Hashable {
    /// One option's value.
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case yes
        case module
        /// A number or a string, as written (strings keep their quotes).
        case text(String)

        /// The value as `.config` writes it: `y`, `m`, or the text.
        public var description: String {
            switch self {
            case .yes: "y"
            case .module: "m"
            case .text(let text): text
            }
        }
    }

    /// Where it was read from: a path, or "IKCONFIG in PATH".
    public var source: String
    /// Set options by name without `CONFIG_`; an option that is off is absent.
    public var values: [String: Value]
    /// The architecture line of the header (`# Linux/x86 6.1.192 Kernel Configuration`): `x86`, `arm64`.
    public var headerArch: String?

    /// A configuration from its values, read from `source`.
    public init(source: String, values: [String: Value], headerArch: String? = nil) {
        self.source = source
        self.values = values
        self.headerArch = headerArch
    }

    /// Parses `.config` text. Lines that are neither `CONFIG_X=V` nor comments are
    /// skipped (a `.config` has nothing else).
    public init(parsing text: String, source: String) {
        var values: [String: Value] = [:]
        var headerArch: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# Linux/"), headerArch == nil {
                // "# Linux/x86 6.1.192 Kernel Configuration"
                headerArch = line.dropFirst("# Linux/".count).split(separator: " ").first.map(String.init)
                continue
            }
            guard line.hasPrefix("CONFIG_"), let equals = line.firstIndex(of: "=") else { continue }
            let name = String(line[line.index(line.startIndex, offsetBy: 7)..<equals])
            let raw = String(line[line.index(after: equals)...])
            switch raw {
            case "y": values[name] = .yes
            case "m": values[name] = .module
            case "n": values[name] = nil
            default: values[name] = .text(raw)
            }
        }
        self.init(source: source, values: values, headerArch: headerArch)
    }

    /// The value of option `name` (without `CONFIG_`); nil when it is off.
    public subscript(name: String) -> Value? { values[name] }

    /// The guest architecture this configuration builds, when it is one the launcher
    /// runs; nil for a 32-bit x86 kernel (see ``isX86Without64Bit``).
    public var arch: Profile.Arch? {
        if values["ARM64"] == .yes || headerArch == "arm64" { return .aarch64 }
        if values["X86_64"] == .yes || (values["X86"] == .yes && values["64BIT"] == .yes) { return .x86_64 }
        return nil
    }

    /// The kernel's architecture family as its build calls it (`x86`, `arm64`, ...).
    public var kernelArch: String? {
        if let headerArch { return headerArch }
        if values["ARM64"] == .yes { return "arm64" }
        if values["X86"] == .yes { return "x86" }
        return nil
    }

    /// True for an x86 configuration without CONFIG_64BIT (a 32-bit i386 kernel).
    public var isX86Without64Bit: Bool {
        kernelArch == "x86" && values["64BIT"] != .yes
    }
}

extension KernelRequirements {
    /// The options as a fragment for `scripts/kconfig/merge_config.sh`: each `CONFIG_X=y`
    /// after a comment that says why (and which module can stand in).
    public static func fragment(_ options: [KernelOption], header: [String] = []) -> String {
        var lines = header.map { "# \($0)" }
        if !lines.isEmpty { lines.append("") }
        for option in options {
            var comment = "# \(option.why)"
            if option.need != .required { comment += " (\(option.need.rawValue))" }
            if let module = option.module { comment += " [=m works: the guest kit loads \(module) from --modules]" }
            lines.append(comment)
            lines.append("\(option.symbol)=y")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
