import Foundation
import PropertyBased
import TestSupport
import Testing

@testable import QEMULaunch

/// Characters that mean something to QEMU's option parser, FUSE's, or a shell.
private let alphabet: [Character] = [
    "a", "b", "/", ",", "=", "\\", "'", "\"", " ", "$", "`", "\n", "\t", "é", "*", "~", "-", "!", ";", "0",
]

private func word(_ indices: [Int]) -> String { String(indices.map { alphabet[$0] }) }

private let words = Gen.int(in: 0...(alphabet.count - 1)).array(of: 0...24)

/// QEMU's option-list splitting (util/qemu-option.c, get_opt_value): a comma ends a
/// value unless doubled, and ",," is one literal comma.
func splitQEMUOptions(_ text: String) -> [String] {
    var parts: [String] = [""]
    var chars = Array(text)[...]
    while let c = chars.popFirst() {
        if c == "," {
            if chars.first == "," {
                chars.removeFirst()
                parts[parts.count - 1].append(",")
            } else {
                parts.append("")
            }
        } else {
            parts[parts.count - 1].append(c)
        }
    }
    return parts
}

/// FUSE's `-o` splitting (fuse_opt.c, process_real_option_group): a backslash takes
/// the next character literally, and a bare comma separates options.
func splitFUSEOptions(_ text: String) -> [String] {
    var parts: [String] = [""]
    var chars = Array(text)[...]
    while let c = chars.popFirst() {
        if c == "\\", let next = chars.popFirst() {
            parts[parts.count - 1].append(next)
        } else if c == "," {
            parts.append("")
        } else {
            parts[parts.count - 1].append(c)
        }
    }
    return parts
}

@Suite("Properties: quoting keeps any host string one value")
struct QuotingPropertyTests {
    @Test("any path escaped with optionValue is one option to QEMU's parser, however many commas it has")
    func qemuOptionValue() async {
        await propertyCheck(count: 500, input: words) { indices in
            let path = word(indices)
            let option = "file=" + QEMUSyntax.optionValue(path) + ",if=none,readonly=on"
            #expect(splitQEMUOptions(option) == ["file=" + path, "if=none", "readonly=on"])
        }
    }

    @Test("any path escaped with fuseOptionValue is one option to FUSE's parser, backslashes included")
    func fuseOptionValue() async {
        await propertyCheck(count: 500, input: words) { indices in
            let path = word(indices)
            let option = "source=" + QEMUSyntax.fuseOptionValue(path) + ",cache=auto"
            #expect(splitFUSEOptions(option) == ["source=" + path, "cache=auto"])
        }
    }

    @Test("any argv printed with shellLine reads back the same through /bin/sh")
    func shellLine() async {
        await propertyCheck(count: 40, input: words.array(of: 1...6)) { argv in
            let expected = argv.map(word)
            let data = try TestProcess.run(["/bin/sh", "-c", "printf '%s\\0' " + QEMUSyntax.shellLine(expected)],
                                           environment: ["PATH": "/usr/bin:/bin"]).stdout
            let words = data.split(separator: 0, omittingEmptySubsequences: false).dropLast()
                .map { String(decoding: $0, as: UTF8.self) }
            #expect(words == expected, "\(QEMUSyntax.shellLine(expected))")
        }
    }
}
