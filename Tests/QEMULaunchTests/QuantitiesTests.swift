import Foundation
import Testing

@testable import QEMULaunch

@Suite("MemorySize: sizes like \"512M\" with binary units, MiB when bare")
struct MemorySizeTests {
    @Test("parses sizes with and without units, in any case, with or without iB/B",
          arguments: [
            ("512M", UInt64(512) << 20), ("2G", 2 << 30), ("1024", 1024 << 20), ("2GiB", 2 << 30), ("2gb", 2 << 30),
            ("64k", 64 << 10), ("64KiB", 64 << 10), ("1T", 1 << 40), ("1536MiB", 1536 << 20), ("8MB", 8 << 20),
            (" 512M ", 512 << 20), ("0", 0), ("16777215T", 16_777_215 << 40),
          ] as [(String, UInt64)])
    func parses(_ text: String, _ bytes: UInt64) {
        #expect(MemorySize(parsing: text) == MemorySize(bytes: bytes))
    }

    @Test("refuses anything else: unknown units, fractions, signs, inner spaces, overflow",
          arguments: ["12X", "1.5G", "", "M", "-1M", "+1M", "512 M", "1BB", "1B", "0x10M", "1e3M", "G1",
                      "99999999999999999999", "16777216T", "18446744073709551615K"])
    func refuses(_ text: String) {
        #expect(MemorySize(parsing: text) == nil)
    }

    @Test("prints the largest whole unit and gives QEMU whole MiB",
          arguments: [
            (MemorySize.mebibytes(512), "512M", "512M"), (.mebibytes(2048), "2G", "2048M"),
            (.mebibytes(1536), "1536M", "1536M"),
            (MemorySize(bytes: 1 << 40), "1024G", "1048576M"),
          ] as [(MemorySize, String, String)])
    func prints(_ size: MemorySize, _ text: String, _ qemu: String) {
        #expect(size.description == text)
        #expect(size.qemuArgument == qemu)
    }

    @Test("decodes from a string or a number of MiB and encodes as text")
    func codable() throws {
        struct Box: Codable, Equatable { var m: MemorySize }
        #expect(try JSONDecoder().decode(Box.self, from: Data(#"{"m": 768}"#.utf8)).m == .mebibytes(768))
        #expect(try JSONDecoder().decode(Box.self, from: Data(#"{"m": "3G"}"#.utf8)).m == .mebibytes(3072))
        #expect(String(decoding: try JSONEncoder().encode(Box(m: .mebibytes(3072))), as: UTF8.self) == #"{"m":"3G"}"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"m": "12X"}"#.utf8)) }
    }

    @Test("a size below 1 MiB prints in KiB")
    func kibibytes() {
        #expect(MemorySize(bytes: 64 << 10).description == "64K")
    }

    @Test("mebibytes round-trips")
    func mebibytes() {
        #expect(MemorySize.mebibytes(100).bytes == 104_857_600)
        #expect(MemorySize(bytes: 104_857_600).mebibytes == 100)
    }
}

@Suite("TimeLimit: durations like \"30s\", \"500ms\", \"10m\", \"1h\", seconds when bare")
struct TimeLimitTests {
    @Test("parses durations with ms, s, m, min, h or no unit, fractions too",
          arguments: [
            ("30s", 30_000), ("500ms", 500), ("10m", 600_000), ("1h", 3_600_000), ("2min", 120_000), ("90", 90_000),
            ("1.5m", 90_000), (".5s", 500), ("1.s", 1_000), ("30S", 30_000), ("0", 0), (" 2s ", 2_000), ("0.1s", 100),
            ("1.5ms", 2),
          ] as [(String, Int64)])
    func parses(_ text: String, _ milliseconds: Int64) {
        #expect(TimeLimit(parsing: text)?.duration == .milliseconds(milliseconds))
    }

    @Test("refuses anything else: unknown units, signs, inner spaces, exponents, a billion seconds",
          arguments: ["10d", "-5s", "+5s", "", "s", "1.2.3s", "30 s", "1e3s", "ms5", "nan", "inf", "1000000000s", "1000000000"])
    func refuses(_ text: String) {
        #expect(TimeLimit(parsing: text) == nil)
    }

    @Test("prints the largest whole unit",
          arguments: [
            (Duration.seconds(30), "30s"), (.milliseconds(500), "500ms"), (.seconds(600), "10m"), (.seconds(3600), "1h"),
            (.seconds(90), "90s"), (.zero, "0s"), (.seconds(7200), "2h"), (.milliseconds(1500), "1500ms"),
          ] as [(Duration, String)])
    func prints(_ duration: Duration, _ text: String) {
        #expect(TimeLimit(duration).description == text)
        #expect(TimeLimit(parsing: text)?.duration == duration, "the printed form parses back")
    }

    @Test("decodes from a string or a number of seconds and encodes as text")
    func codable() throws {
        struct Box: Codable, Equatable { var t: TimeLimit }
        #expect(try JSONDecoder().decode(Box.self, from: Data(#"{"t": 2.5}"#.utf8)).t == TimeLimit(.milliseconds(2500)))
        #expect(try JSONDecoder().decode(Box.self, from: Data(#"{"t": "2m"}"#.utf8)).t == TimeLimit(.seconds(120)))
        #expect(String(decoding: try JSONEncoder().encode(Box(t: TimeLimit(.seconds(120)))), as: UTF8.self) == #"{"t":"2m"}"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"t": -1}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Box.self, from: Data(#"{"t": 1e9}"#.utf8)) }
    }

    @Test("seconds reads the duration as a Double")
    func seconds() {
        #expect(TimeLimit(.milliseconds(1500)).seconds == 1.5)
    }
}
