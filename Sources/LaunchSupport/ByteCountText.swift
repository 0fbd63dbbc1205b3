import Foundation

/// How every message writes a size: 1536 → "1.5 KiB", 536870912 → "512 MiB".
package func byteCount(_ bytes: UInt64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    var value = Double(bytes)
    for unit in ["KiB", "MiB", "GiB", "TiB"] {
        value /= 1024
        if value < 1024 || unit == "TiB" { return String(format: value < 10 ? "%.1f" : "%.0f", value) + " " + unit }
    }
    return "\(bytes) B"
}
