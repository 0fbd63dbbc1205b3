import Foundation
import TestSupport
import Testing

@testable import GuestKit

// MARK: - Installed kernel

/// The newest /boot/vmlinuz-* of this machine, if any.
private let installedKernel: URL? = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? []
    return names.filter { $0.hasPrefix("vmlinuz-") }.sorted().last.map { URL(fileURLWithPath: "/boot/\($0)") }
}()

@Suite("kernel image of the installed kernel", .enabled(if: installedKernel != nil))
struct KernelImageInstalledTests {
    @Test("the installed vmlinuz is an x86_64 bzImage whose release names its modules folder")
    func inspectsBzImage() throws {
        let url = try #require(installedKernel)
        let image = try KernelImage.inspect(url)
        guard case .bzImage(let compression, let bootProtocol) = image.format else {
            Issue.record("expected a bzImage, got \(image.format)")
            return
        }
        #expect(compression != nil)
        #expect(bootProtocol >= 0x20C)
        #expect(image.arch == .x86_64)
        let release = try #require(image.release)
        #expect(url.lastPathComponent == "vmlinuz-\(release)")
        #expect(FileManager.default.fileExists(atPath: "/lib/modules/\(release)"))
        #expect(image.version?.hasPrefix("\(release) (") == true)
    }

    @Test("extracting the installed bzImage gives an x86_64 ELF vmlinux with the PVH note, atomically")
    func extractsVmlinux() throws {
        let url = try #require(installedKernel)
        let scratch = try KernelScratch()
        let destination = scratch.url.appendingPathComponent("cache/vmlinux")
        let clock = ContinuousClock()
        var image: KernelImage?
        let elapsed = try clock.measure {
            image = try KernelImage.extractVmlinux(fromBzImage: url, to: destination)
        }
        print("vmlinux extraction of \(url.lastPathComponent): \(elapsed)")
        let vmlinux = try #require(image)
        #expect(vmlinux.format == .elf(machine: .x86_64, hasPVHNote: true))
        #expect(vmlinux.arch == .x86_64)
        #expect(vmlinux.url == destination)
        #expect(vmlinux.release == (try KernelImage.inspect(url)).release)
        // Only the result is left in the folder: no temporary files.
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.deletingLastPathComponent().path) == ["vmlinux"])
        #expect(try KernelImage.inspect(destination) == vmlinux)
    }
}

// MARK: - Synthetic images

@Suite("kernel image formats from synthetic files")
struct KernelImageFormatTests {
    @Test(
        "an ELF kernel reports its machine, architecture, PVH note and banner release",
        arguments: [
            (ELFBuilder(machine: 62, pvh: true), KernelImage.Arch.x86_64 as KernelImage.Arch?),
            (ELFBuilder(machine: 62, pvh: false), .x86_64),
            (ELFBuilder(machine: 62, pvh: true, noteInSection: true), .x86_64),
            (ELFBuilder(machine: 62, pvh: false, noteInSection: true), .x86_64),
            (ELFBuilder(machine: 62, pvh: true, extraNotes: false), .x86_64),
            (ELFBuilder(machine: 183, pvh: false), .aarch64),
            (ELFBuilder(machine: 243, pvh: false), nil),
        ])
    func elf(builder: ELFBuilder, arch: KernelImage.Arch?) throws {
        let scratch = try KernelScratch()
        let image = try KernelImage.inspect(scratch.write("vmlinux", builder.build()))
        #expect(image.format == .elf(machine: .init(rawValue: builder.machine), hasPVHNote: builder.pvh))
        #expect(image.arch == arch)
        #expect(image.release == "6.1.0-synthetic")
        #expect(image.hasPVHEntry == builder.pvh)
    }

    @Test("an arm64 Image is recognised by its magic at offset 56, with the release from its banner")
    func arm64Image() throws {
        let scratch = try KernelScratch()
        var bytes = [UInt8](repeating: 0, count: 0x400)
        bytes.replaceSubrange(0..<4, with: Array("MZ@\u{7A}".utf8))
        bytes.replaceSubrange(56..<60, with: [0x41, 0x52, 0x4D, 0x64])
        let text = Array("Linux version %s (%s)\0Linux version 6.1.0-test-arm64 (builder@host) #1 SMP\n".utf8)
        bytes.replaceSubrange(0x100..<(0x100 + text.count), with: text)
        let image = try KernelImage.inspect(scratch.write("Image", Data(bytes)))
        #expect(image.format == .arm64Image)
        #expect(image.arch == .aarch64)
        #expect(image.release == "6.1.0-test-arm64")
        #expect(image.version == "6.1.0-test-arm64 (builder@host) #1 SMP")
    }

    @Test(
        "an EFI zboot image reports its compression and the PE machine's architecture",
        arguments: [
            ("gzip", UInt16(0xAA64), Compression.gzip as Compression?, KernelImage.Arch.aarch64 as KernelImage.Arch?),
            ("zstd22", 0xAA64, .zstd, .aarch64),
            ("xzkern", 0xAA64, .xz, .aarch64),
            ("lz4", 0x5064, .lz4, nil),
            ("mystery", 0xAA64, .zstd, .aarch64),  // unknown name: the payload's magic says
        ])
    func zboot(name: String, machine: UInt16, compression: Compression?, arch: KernelImage.Arch?) throws {
        let scratch = try KernelScratch()
        let image = try KernelImage.inspect(scratch.write("vmlinuz.efi", ZbootBuilder(compressionName: name, machine: machine).build()))
        #expect(image.format == .efiZboot(compression: compression))
        #expect(image.arch == arch)
        #expect(image.release == nil)
    }

    @Test("a synthetic bzImage reports payload compression, boot protocol, architecture and release")
    func bzImage() throws {
        let scratch = try KernelScratch()
        let payload = try BzImageBuilder.compress(ELFBuilder().build(), with: .gzip)
        let url = try scratch.write("bzImage", BzImageBuilder(payload: payload).build())
        let image = try KernelImage.inspect(url)
        #expect(image.format == .bzImage(payloadCompression: .gzip, bootProtocol: 0x20F))
        #expect(image.arch == .x86_64)
        #expect(image.release == "6.1.0-synthetic")
        #expect(image.version == "6.1.0-synthetic (test@host) #1 SMP")

        // A 32-bit image (no XLF_KERNEL_64) has no architecture the launcher runs.
        let old = try KernelImage.inspect(scratch.write("bzImage32", BzImageBuilder(payload: payload, xloadflags: 0).build()))
        #expect(old.arch == nil)
        // Without payload fields (protocol 2.07) the compression comes from a scan.
        let scanned = try KernelImage.inspect(scratch.write("bzImage207", BzImageBuilder(payload: payload, bootProtocol: 0x207).build()))
        #expect(scanned.format == .bzImage(payloadCompression: .gzip, bootProtocol: 0x207))
    }

    @Test("unrecognised bytes are .unknown, not an error", arguments: [
        Data("garbage!".utf8) + Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }),
        Data("#!/bin/sh\necho not a kernel\n".utf8),
        Data([0x7F]),
        Data("MZ".utf8),  // too short for either MZ-based header
    ])
    func unknown(bytes: Data) throws {
        let scratch = try KernelScratch()
        let image = try KernelImage.inspect(scratch.write("blob", bytes))
        #expect(image.format == .unknown)
        #expect(image.arch == nil && image.release == nil)
    }

    @Test("a cut-short kernel is a typed truncation error, not a crash", arguments: TruncationCase.all)
    func truncated(example: TruncationCase) throws {
        let scratch = try KernelScratch()
        let url = try scratch.write("cut", example.bytes())
        #expect {
            try KernelImage.inspect(url)
        } throws: { error in
            guard case .truncated(_, let format, let needed, let actual) = error as? KernelImage.Error else { return false }
            return format == example.format && needed > actual
        }
    }

    @Test("an empty or missing file is a typed error")
    func emptyOrMissing() throws {
        let scratch = try KernelScratch()
        let empty = try scratch.write("empty", Data())
        #expect(throws: KernelImage.Error.emptyFile(empty)) { try KernelImage.inspect(empty) }
        let missing = scratch.url.appendingPathComponent("absent")
        #expect(throws: KernelImage.Error.fileMissing(missing)) { try KernelImage.inspect(missing) }
        #expect(throws: KernelImage.Error.self) { try KernelImage.inspect(scratch.url) }
    }
}

@Suite("vmlinux extraction from synthetic bzImages")
struct KernelImageExtractTests {
    static let available = [Compression.gzip, .xz, .zstd, .lz4, .lzma, .bzip2].filter(KernelScratch.hasTool)

    @Test("the payload found through the setup header decompresses to the exact ELF", arguments: available)
    func viaHeader(format: Compression) throws {
        let scratch = try KernelScratch()
        let elf = ELFBuilder().build()
        let bzImage = try scratch.write("bzImage", BzImageBuilder(payload: try BzImageBuilder.compress(elf, with: format)).build())
        let destination = scratch.url.appendingPathComponent("out/vmlinux")
        let image = try KernelImage.extractVmlinux(fromBzImage: bzImage, to: destination)
        #expect(image.format == .elf(machine: .x86_64, hasPVHNote: true))
        #expect(image.arch == .x86_64 && image.release == "6.1.0-synthetic")
        #expect(try Data(contentsOf: destination) == elf)
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.deletingLastPathComponent().path) == ["vmlinux"])
        let mode = try FileManager.default.attributesOfItem(atPath: destination.path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o644)
    }

    @Test(
        "without payload fields in the header the payload is found by its magic",
        arguments: available)
    func viaScan(format: Compression) throws {
        let scratch = try KernelScratch()
        let elf = ELFBuilder().build()
        // A chance gzip magic before the payload is tried and skipped.
        var builder = BzImageBuilder(payload: try BzImageBuilder.compress(elf, with: format), bootProtocol: 0x207)
        builder.decoy = Data(Compression.gzip.magic) + Data("not gzip at all".utf8)
        let bzImage = try scratch.write("bzImage", builder.build())
        let destination = scratch.url.appendingPathComponent("vmlinux")
        let image = try KernelImage.extractVmlinux(fromBzImage: bzImage, to: destination)
        #expect(image.format == .elf(machine: .x86_64, hasPVHNote: true))
        #expect(try Data(contentsOf: destination).prefix(elf.count) == elf)
    }

    @Test("extracting over an existing file replaces it")
    func replaces() throws {
        let scratch = try KernelScratch()
        let bzImage = try scratch.write(
            "bzImage", BzImageBuilder(payload: try BzImageBuilder.compress(ELFBuilder().build(), with: .gzip)).build())
        let destination = try scratch.write("vmlinux", Data("stale".utf8))
        _ = try KernelImage.extractVmlinux(fromBzImage: bzImage, to: destination)
        #expect(try Data(contentsOf: destination) == ELFBuilder().build())
    }

    @Test("a kernel without the PVH note is refused and nothing is written")
    func noPVH() throws {
        let scratch = try KernelScratch()
        let payload = try BzImageBuilder.compress(ELFBuilder(pvh: false).build(), with: .gzip)
        let bzImage = try scratch.write("bzImage", BzImageBuilder(payload: payload).build())
        let out = scratch.url.appendingPathComponent("out")
        #expect(throws: KernelImage.Error.noPVHNote(bzImage, release: "6.1.0-synthetic")) {
            try KernelImage.extractVmlinux(fromBzImage: bzImage, to: out.appendingPathComponent("vmlinux"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
        #expect(KernelImage.Error.noPVHNote(bzImage, release: nil).description.contains("CONFIG_PVH=y"))
    }

    @Test("an ELF for another machine inside a bzImage is an architecture mismatch")
    func archMismatch() throws {
        let scratch = try KernelScratch()
        let payload = try BzImageBuilder.compress(ELFBuilder(machine: 183).build(), with: .gzip)
        let bzImage = try scratch.write("bzImage", BzImageBuilder(payload: payload).build())
        #expect(throws: KernelImage.Error.archMismatch(bzImage, expected: .x86_64, found: .aarch64)) {
            try KernelImage.extractVmlinux(fromBzImage: bzImage, to: scratch.url.appendingPathComponent("vmlinux"))
        }
    }

    @Test("a corrupt payload is a decompression error carrying the tool's complaint")
    func corrupt() throws {
        let scratch = try KernelScratch()
        let junk = Data(Compression.xz.magic) + Data((0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let bzImage = try scratch.write("bzImage", BzImageBuilder(payload: junk).build())
        #expect {
            try KernelImage.extractVmlinux(fromBzImage: bzImage, to: scratch.url.appendingPathComponent("vmlinux"))
        } throws: { error in
            guard case .decompressionFailed(_, .xz, .toolFailed(_, _, _, _, let stderr)) = error as? KernelImage.Error
            else { return false }
            return !stderr.isEmpty
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.url.appendingPathComponent("vmlinux").path))
    }

    @Test("a payload whose tool is not installed names the Debian package", .enabled(if: !KernelScratch.hasTool(.lzo)))
    func missingTool() throws {
        let scratch = try KernelScratch()
        let bzImage = try scratch.write(
            "bzImage", BzImageBuilder(payload: Data(Compression.lzo.magic) + Data(count: 64)).build())
        #expect {
            try KernelImage.extractVmlinux(fromBzImage: bzImage, to: scratch.url.appendingPathComponent("vmlinux"))
        } throws: { error in
            guard case .decompressionFailed(_, .lzo, .toolMissing(.lzo)) = error as? KernelImage.Error else { return false }
            return "\(error)".contains("install the package that ships it (Debian and Ubuntu: lzop)")
        }
    }

    @Test("extraction refuses a file that is not a bzImage")
    func notBzImage() throws {
        let scratch = try KernelScratch()
        let elf = try scratch.write("vmlinux", ELFBuilder().build())
        #expect(throws: KernelImage.Error.notABzImage(elf, found: .elf(machine: .x86_64, hasPVHNote: true))) {
            try KernelImage.extractVmlinux(fromBzImage: elf, to: scratch.url.appendingPathComponent("out"))
        }
    }
}

// MARK: - Builders

/// Little-endian field writes into a byte array that grows as needed.
struct LittleEndianBytes {
    var bytes: [UInt8]

    init(count: Int) { bytes = [UInt8](repeating: 0, count: count) }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let size = MemoryLayout<T>.size
        if bytes.count < offset + size { bytes += [UInt8](repeating: 0, count: offset + size - bytes.count) }
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    mutating func put(_ raw: [UInt8], at offset: Int) {
        if bytes.count < offset + raw.count { bytes += [UInt8](repeating: 0, count: offset + raw.count - bytes.count) }
        bytes.replaceSubrange(offset..<(offset + raw.count), with: raw)
    }
}

/// A minimal ELF64 little-endian kernel: one PT_LOAD holding a `Linux version`
/// banner, and notes (GNU build id, then optionally Xen PVH) in a PT_NOTE segment or
/// only in a SHT_NOTE section.
struct ELFBuilder: Sendable, CustomTestStringConvertible {
    var machine: UInt16 = 62
    var pvh = true
    var noteInSection = false
    var extraNotes = true

    var testDescription: String {
        "machine \(machine)\(pvh ? " +PVH" : "")\(noteInSection ? " in section" : "")\(extraNotes ? "" : " only note")"
    }

    static let notesOffset = 0x100
    static let loadOffset = 0x200
    static let sectionsOffset = 0x300

    func notes() -> [UInt8] {
        var notes = LittleEndianBytes(count: 0)
        var cursor = 0
        func note(_ name: String, type: UInt32, desc: [UInt8]) {
            let nameBytes = Array(name.utf8) + [0]
            notes.put(UInt32(nameBytes.count), at: cursor)
            notes.put(UInt32(desc.count), at: cursor + 4)
            notes.put(type, at: cursor + 8)
            notes.put(nameBytes, at: cursor + 12)
            let descStart = cursor + 12 + (nameBytes.count + 3) / 4 * 4
            notes.put(desc, at: descStart)
            cursor = descStart + (desc.count + 3) / 4 * 4
            notes.put([UInt8](repeating: 0, count: cursor - notes.bytes.count), at: notes.bytes.count)
        }
        if extraNotes {
            note("GNU", type: 3, desc: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            note("Xen", type: 6, desc: Array("linux".utf8))  // XEN_ELFNOTE_GUEST_OS: not the entry
        }
        if pvh { note("Xen", type: 18, desc: [0x00, 0x10, 0x00, 0x01]) }
        if notes.bytes.isEmpty { note("GNU", type: 3, desc: [0, 0, 0, 0]) }
        return notes.bytes
    }

    func build() -> Data {
        var elf = LittleEndianBytes(count: 64)
        elf.put([0x7F, 0x45, 0x4C, 0x46, 2, 1, 1], at: 0)
        elf.put(UInt16(2), at: 16)  // ET_EXEC
        elf.put(machine, at: 18)
        elf.put(UInt32(1), at: 20)
        elf.put(UInt64(0x100_0000), at: 24)
        elf.put(UInt64(64), at: 32)  // e_phoff
        elf.put(UInt16(64), at: 52)
        elf.put(UInt16(56), at: 54)
        elf.put(UInt16(noteInSection ? 1 : 2), at: 56)
        elf.put(UInt16(64), at: 58)

        let notes = notes()
        let banner = Array("Linux version 6.1.0-synthetic (test@host) #1 SMP\n\0".utf8)
        // PT_LOAD
        elf.put(UInt32(1), at: 64)
        elf.put(UInt32(5), at: 68)
        elf.put(UInt64(Self.loadOffset), at: 72)
        elf.put(UInt64(0x100_0000), at: 80)
        elf.put(UInt64(0x100_0000), at: 88)
        elf.put(UInt64(0x100), at: 96)
        elf.put(UInt64(0x100), at: 104)
        elf.put(UInt64(0x1000), at: 112)
        if !noteInSection {
            elf.put(UInt32(4), at: 120)  // PT_NOTE
            elf.put(UInt32(4), at: 124)
            elf.put(UInt64(Self.notesOffset), at: 128)
            elf.put(UInt64(notes.count), at: 152)
            elf.put(UInt64(notes.count), at: 160)
            elf.put(UInt64(4), at: 168)
        }
        elf.put(notes, at: Self.notesOffset)
        elf.put(banner, at: Self.loadOffset)
        elf.put([UInt8](repeating: 0, count: 0x100 - banner.count), at: Self.loadOffset + banner.count)
        if noteInSection {
            elf.put(UInt64(Self.sectionsOffset), at: 40)  // e_shoff
            elf.put(UInt16(2), at: 60)  // e_shnum: the null section and .notes
            let section = Self.sectionsOffset + 64
            elf.put(UInt32(7), at: section + 4)  // SHT_NOTE
            elf.put(UInt64(Self.notesOffset), at: section + 24)
            elf.put(UInt64(notes.count), at: section + 32)
            elf.put(UInt64(4), at: section + 48)
            elf.put([UInt8](repeating: 0, count: 64), at: Self.sectionsOffset)
            elf.put(UInt64(0), at: section + 56)  // the table ends with the section's last field
        }
        return Data(elf.bytes)
    }
}

/// A bzImage with 3 setup sectors, a version string, and a compressed payload in
/// the protected-mode code, between filler bytes.
struct BzImageBuilder {
    var payload: Data
    var bootProtocol: UInt16 = 0x20F
    var xloadflags: UInt16 = 1
    var version = "6.1.0-synthetic (test@host) #1 SMP"
    /// Bytes put in the filler before the payload.
    var decoy = Data()

    static let setupSectors = 3
    static let protectedModeStart = (setupSectors + 1) * 512
    static let payloadOffset = 0x40

    func build() -> Data {
        var image = LittleEndianBytes(count: Self.protectedModeStart)
        image.put(UInt8(Self.setupSectors), at: 0x1F1)
        image.put(UInt16(0xAA55), at: 0x1FE)
        image.put(Array("HdrS".utf8), at: 0x202)
        image.put(bootProtocol, at: 0x206)
        image.put(UInt16(0x400 - 0x200), at: 0x20E)
        image.put(Array(version.utf8) + [0], at: 0x400)
        image.put(xloadflags, at: 0x236)
        if bootProtocol >= 0x208 {
            image.put(UInt32(Self.payloadOffset), at: 0x248)
            image.put(UInt32(payload.count), at: 0x24C)
        }
        image.put([UInt8](repeating: 0xCC, count: Self.payloadOffset), at: Self.protectedModeStart)
        image.put([UInt8](decoy), at: Self.protectedModeStart + 0x10)
        image.put([UInt8](payload), at: Self.protectedModeStart + Self.payloadOffset)
        image.bytes += [UInt8](repeating: 0x90, count: 0x100)
        return Data(image.bytes)
    }

    /// Compresses as the kernel build does: the host tool's stream, then (except for
    /// gzip, whose trailer has it) the uncompressed size as 4 little-endian bytes.
    static func compress(_ data: Data, with format: Compression) throws -> Data {
        let arguments: [String] =
            switch format {
            case .gzip: ["-9", "-c"]
            case .xz: ["--check=crc32", "-c"]
            case .lzma: ["--format=lzma", "-c"]
            case .zstd: ["-q", "-19", "-c"]
            case .lz4: ["-l", "-9", "-c"]  // legacy frames, as the kernel uses
            case .bzip2: ["-9", "-c"]
            case .lzo: ["-9", "-c"]
            }
        let scratch = try KernelScratch()
        let input = try scratch.write("in", data)
        let run = try TestProcess.run(["/usr/bin/\(format.tool)"] + arguments, inputFile: input)
        guard run.status == 0 else { throw CpioScratch.Failed(description: "\(format.tool) failed: \(run.stderrText)") }
        var compressed = run.stdout
        if format != .gzip {
            var size = LittleEndianBytes(count: 0)
            size.put(UInt32(data.count), at: 0)
            compressed += size.bytes
        }
        return compressed
    }
}

/// An EFI zboot header with a PE header at 0x80 and a zstd-looking payload.
struct ZbootBuilder {
    var compressionName: String
    var machine: UInt16

    func build() -> Data {
        var image = LittleEndianBytes(count: 0x200)
        image.put(Array("MZ".utf8) + [0, 0] + Array("zimg".utf8), at: 0)
        image.put(UInt32(0x100), at: 8)
        image.put(UInt32(0x40), at: 12)
        image.put(Array(compressionName.utf8) + [0], at: 24)
        image.put(UInt32(0x80), at: 0x3C)
        image.put(Array("PE".utf8) + [0, 0], at: 0x80)
        image.put(machine, at: 0x84)
        image.put(Compression.zstd.magic, at: 0x100)
        return Data(image.bytes)
    }
}

/// A known format cut short, with the format name the error should carry.
struct TruncationCase: Sendable, CustomTestStringConvertible {
    var name: String
    var format: String
    var bytes: @Sendable () -> Data

    var testDescription: String { name }

    static let all: [TruncationCase] = [
        .init(name: "bzImage cut inside the setup sectors", format: "bzImage") {
            BzImageBuilder(payload: Data(repeating: 1, count: 100)).build().prefix(1000)
        },
        .init(name: "bzImage cut inside the payload", format: "bzImage") {
            BzImageBuilder(payload: Data(Compression.gzip.magic) + Data(repeating: 1, count: 500)).build()
                .prefix(BzImageBuilder.protectedModeStart + BzImageBuilder.payloadOffset + 100)
        },
        .init(name: "bzImage cut right after its magic", format: "bzImage") {
            BzImageBuilder(payload: Data()).build().prefix(0x206)
        },
        .init(name: "ELF cut inside its header", format: "ELF") { ELFBuilder().build().prefix(40) },
        .init(name: "ELF cut before its loadable segment", format: "ELF") { ELFBuilder().build().prefix(0x180) },
        .init(name: "ELF cut before its section table", format: "ELF") {
            ELFBuilder(noteInSection: true).build().prefix(0x310)
        },
        .init(name: "EFI zboot cut inside its header", format: "EFI zboot") {
            ZbootBuilder(compressionName: "gzip", machine: 0xAA64).build().prefix(0x20)
        },
        .init(name: "EFI zboot cut inside its payload", format: "EFI zboot") {
            ZbootBuilder(compressionName: "gzip", machine: 0xAA64).build().prefix(0x120)
        },
    ]
}

/// A temporary folder removed when the value is deinitialised.
final class KernelScratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gk-kernel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ name: String, _ data: Data) throws -> URL {
        let file = url.appendingPathComponent(name)
        try data.write(to: file)
        return file
    }

    static func hasTool(_ format: Compression) -> Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/\(format.tool)")
    }
}
