@testable import QEMULaunch
import Testing

@Suite("Console scroll-back")
struct ConsoleScrollBackTests {
    @Test("the last N lines of a log, bytes as they are; a partial last line counts as one",
          arguments: [
              ("a\nb\nc\n", 2, "b\nc\n"),
              ("a\nb\nc", 2, "b\nc"),
              ("a\nb\n", 5, "a\nb\n"),
              ("a\r\nb\r\n", 1, "b\r\n"),
              ("a\nb\n", 0, ""),
              ("", 3, ""),
          ])
    func lastLines(log: String, count: Int, expected: String) {
        #expect(ConsoleHub.lastLines(Array(log.utf8), count: count) == Array(expected.utf8))
    }

    @Test("busybox's cursor-position query is dropped from the scroll-back, the rest kept")
    func terminalQueries() {
        let prompt = Array("/ # \u{1b}[6necho hi\r\nhi\r\n/ # \u{1b}[6n\u{1b}[1m".utf8)
        #expect(ConsoleHub.withoutTerminalQueries(prompt) == Array("/ # echo hi\r\nhi\r\n/ # \u{1b}[1m".utf8))
    }
}
