/// A memory size written like "512M", "2G" or "1536" (MiB when no unit).
/// Units are binary: K = KiB, M = MiB, G = GiB, T = TiB.
public struct MemorySize: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The size in bytes.
    public var bytes: UInt64

    /// A size of exactly `bytes`; QEMU gets it rounded down to whole MiB (``qemuArgument``).
    public init(bytes: UInt64) { self.bytes = bytes }
    /// A size of `mib` MiB: `.mebibytes(512)`.
    public static func mebibytes(_ mib: UInt64) -> MemorySize { MemorySize(bytes: mib << 20) }

    /// The size in whole MiB, rounded down.
    public var mebibytes: UInt64 { bytes >> 20 }

    /// Parses "512M", "2G", "2GiB", "1024" (MiB). Returns nil for anything else.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = UInt64(digits) else { return nil }
        var unit = trimmed.dropFirst(digits.count).uppercased()
        if unit.count == 3 && unit.hasSuffix("IB") { unit.removeLast(2) } else if unit.count == 2 && unit.hasSuffix("B") { unit.removeLast() }
        let shift: UInt64
        switch unit {
        case "K": shift = 10
        case "", "M": shift = 20
        case "G": shift = 30
        case "T": shift = 40
        default: return nil
        }
        guard value <= (UInt64.max >> shift) else { return nil }
        bytes = value << shift
    }

    /// QEMU's `-m` syntax: a whole number of MiB with an `M`.
    public var qemuArgument: String { "\(mebibytes)M" }

    /// "2G", "512M" or "1536K": the largest unit that divides it, as profiles write it.
    public var description: String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        return "\(bytes >> 10)K"
    }

    /// Decodes a number (MiB) or a string like "512M"; anything else is an error naming the text.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let mib = try? container.decode(UInt64.self) {
            self = .mebibytes(mib)
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = MemorySize(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a size: \"\(text)\"")
        }
        self = parsed
    }

    /// Encodes it as its ``description`` string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A duration written like "30s", "500ms", "10m", "1h" (seconds when no unit).
public struct TimeLimit: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The limit as a `Duration` (millisecond precision when parsed from text).
    public var duration: Duration

    /// A limit of `duration`: `TimeLimit(.seconds(120))`.
    public init(_ duration: Duration) { self.duration = duration }

    /// Parses "30s", "500ms", "1.5s", "10m" (or "10min"), "1h", or a bare number of seconds;
    /// nil for anything else. Kept to millisecond precision.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let number = trimmed.prefix { ($0.isASCII && $0.isNumber) || $0 == "." }
        guard !number.isEmpty, let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let scale: Double
        switch trimmed.dropFirst(number.count) {
        case "ms": scale = 0.001
        case "", "s": scale = 1
        case "m", "min": scale = 60
        case "h": scale = 3600
        default: return nil
        }
        let seconds = value * scale
        guard seconds < 1e9 else { return nil }
        duration = .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The limit in seconds, with its fraction.
    public var seconds: Double {
        let c = duration.components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// "30s", "10m", "1h" or "500ms": the largest unit that divides it, as profiles write it.
    public var description: String {
        let ms = Int64((seconds * 1000).rounded())
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    /// Decodes a number of seconds or a string like "30s"; anything else is an error naming the text.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self), seconds >= 0, seconds < 1e9 {
            self.init(.milliseconds(Int64((seconds * 1000).rounded())))
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = TimeLimit(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a duration: \"\(text)\"")
        }
        self = parsed
    }

    /// Encodes it as its ``description`` string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

import Foundation
