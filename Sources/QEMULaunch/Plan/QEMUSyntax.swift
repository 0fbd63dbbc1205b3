/// Quoting rules for the places a host string lands in a child's argv.
public enum QEMUSyntax {
    /// A value inside a QEMU option list (`-drive file=VALUE,...`): QEMU splits on
    /// commas and reads `,,` as one literal comma, so `/tmp/a,readonly=off` would
    /// otherwise inject an option.
    public static func optionValue(_ value: String) -> String {
        value.replacingOccurrences(of: ",", with: ",,")
    }

    /// A value inside a FUSE `-o` option (legacy C virtiofsd's `-o source=`):
    /// fuse_opt splits on commas and takes a backslash as the escape.
    public static func fuseOptionValue(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ",", with: "\\,")
    }

    /// POSIX shell quoting, for printing argv a person can paste.
    public static func shellQuote(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0)) }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// `argv` as one line a POSIX shell runs as is (each word quoted when it needs it).
    public static func shellLine(_ argv: [String]) -> String {
        argv.map(shellQuote).joined(separator: " ")
    }
}
