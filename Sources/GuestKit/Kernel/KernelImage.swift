import Foundation

/// What a kernel file is: its format, the CPU architecture it runs on, and its
/// release where the format carries one.
///
/// `inspect(_:)` reads headers only (and, for uncompressed kernels, scans for the
/// `Linux version` banner); it never runs a tool. `extractVmlinux(fromBzImage:to:)`
/// turns an x86 `bzImage` into the ELF `vmlinux` inside it, which boots much faster
/// under TCG through its PVH entry point.
package struct KernelImage: Sendable, Hashable {
    package enum Format: Sendable, Hashable, CustomStringConvertible {
        /// An x86 boot image: real-mode setup, then a compressed kernel.
        case bzImage(payloadCompression: Compression?, bootProtocol: UInt16)
        /// An ELF kernel (`vmlinux`). `hasPVHNote`: it has a `Xen` note of type 18
        /// (XEN_ELFNOTE_PHYS32_ENTRY), the entry QEMU uses to boot an ELF on x86.
        case elf(machine: ELFMachine, hasPVHNote: Bool)
        /// An uncompressed arm64 `Image` (magic `ARM\x64` at offset 56).
        case arm64Image
        /// An EFI zboot image: a PE stub with a compressed `Image` (`MZ` and `zimg`).
        case efiZboot(compression: Compression?)
        case unknown

        package var description: String {
            switch self {
            case .bzImage(let compression, let version):
                "bzImage (boot protocol \(version >> 8).\(version & 0xFF), payload \(compression?.rawValue ?? "unrecognised"))"
            case .elf(let machine, let pvh):
                "ELF \(machine) kernel \(pvh ? "with" : "without") a PVH entry note"
            case .arm64Image: "arm64 Image"
            case .efiZboot(let compression): "EFI zboot image (payload \(compression?.rawValue ?? "unrecognised"))"
            case .unknown: "unrecognised file"
            }
        }
    }

    /// The architectures the launcher runs; raw values match `Profile.Arch`.
    package enum Arch: String, Sendable, Hashable, CaseIterable {
        case x86_64, aarch64
    }

    /// An ELF `e_machine` value.
    package struct ELFMachine: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        package var rawValue: UInt16
        package init(rawValue: UInt16) { self.rawValue = rawValue }

        package static let i386 = ELFMachine(rawValue: 3)
        package static let x86_64 = ELFMachine(rawValue: 62)
        package static let aarch64 = ELFMachine(rawValue: 183)
        package static let riscv = ELFMachine(rawValue: 243)

        /// The architecture, when it is one the launcher runs.
        package var arch: Arch? {
            switch self {
            case .x86_64: .x86_64
            case .aarch64: .aarch64
            default: nil
            }
        }

        package var description: String {
            switch self {
            case .i386: "i386"
            case .x86_64: "x86_64"
            case .aarch64: "aarch64"
            case .riscv: "riscv"
            default: "e_machine \(rawValue)"
            }
        }
    }

    /// The inspected file.
    package var url: URL
    package var format: Format
    /// nil when the format doesn't say or the architecture is not x86_64 or aarch64
    /// (a 32-bit bzImage, a RISC-V kernel).
    package var arch: Arch?
    /// The kernel release, like `6.1.0-56-amd64`: the first word of `version`.
    package var release: String?
    /// The full version string, like `6.1.0-56-amd64 (debian-kernel@lists.debian.org)
    /// #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)`: the bzImage header's
    /// `kernel_version`, or what follows `Linux version ` in an uncompressed kernel.
    package var version: String?

    package init(url: URL, format: Format, arch: Arch?, release: String?, version: String?) {
        self.url = url
        self.format = format
        self.arch = arch
        self.release = release
        self.version = version
    }

    /// True for an ELF kernel QEMU can boot through its PVH entry.
    package var hasPVHEntry: Bool {
        if case .elf(_, true) = format { return true }
        return false
    }

    // MARK: Inspecting

    /// Reads the file's headers and says what it is. A file that is none of the known
    /// formats is `.unknown`; a known format cut short is `Error.truncated`.
    package static func inspect(_ url: URL) throws(Error) -> KernelImage {
        let data = try read(url)
        return try inspect(data, url: url)
    }

    static func read(_ url: URL) throws(Error) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw .fileMissing(url)
        }
        guard !isDirectory.boolValue else { throw .unreadable(url, reason: "it is a directory") }
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw .unreadable(url, reason: error.localizedDescription)
        }
    }

    static func inspect(_ data: Data, url: URL) throws(Error) -> KernelImage {
        guard !data.isEmpty else { throw .emptyFile(url) }
        let result = data.withUnsafeBytes { buffer in
            Result { () throws(Error) -> KernelImage in try inspect(ByteView(buffer), url: url) }
        }
        return try result.get()
    }

    static func inspect(_ bytes: ByteView, url: URL) throws(Error) -> KernelImage {
        if bytes.matches(ELFFile.magic, at: 0) {
            let elf = try ELFFile(bytes, url: url)
            let version = LinuxBanner.version(in: bytes)
            return KernelImage(
                url: url, format: .elf(machine: elf.machine, hasPVHNote: elf.hasPVHNote),
                arch: elf.machine.arch, release: version.flatMap(LinuxBanner.release), version: version)
        }
        if bytes.matches(BzImageHeader.magic, at: BzImageHeader.magicOffset) {
            let header = try BzImageHeader(bytes, url: url)
            let compression = header.payload.map(\.compression) ?? header.scanForPayloads(bytes).first?.compression
            return KernelImage(
                url: url, format: .bzImage(payloadCompression: compression, bootProtocol: header.bootProtocol),
                arch: header.arch, release: header.version.flatMap(LinuxBanner.release), version: header.version)
        }
        if bytes.matches(arm64Magic, at: 56) {
            let version = LinuxBanner.version(in: bytes)
            return KernelImage(
                url: url, format: .arm64Image, arch: .aarch64,
                release: version.flatMap(LinuxBanner.release), version: version)
        }
        if bytes.matches(Array("MZ".utf8), at: 0), bytes.matches(Array("zimg".utf8), at: 4) {
            let zboot = try ZbootHeader(bytes, url: url)
            return KernelImage(
                url: url, format: .efiZboot(compression: zboot.compression), arch: zboot.arch,
                release: nil, version: nil)
        }
        return KernelImage(url: url, format: .unknown, arch: nil, release: nil, version: nil)
    }

    /// `ARM\x64`, little-endian 0x644d5241, at offset 56 of an arm64 Image header.
    static let arm64Magic: [UInt8] = [0x41, 0x52, 0x4D, 0x64]
}

/// Finds the `Linux version <release> ...` banner in an uncompressed kernel.
enum LinuxBanner {
    static let prefix = Array("Linux version ".utf8)

    /// What follows `Linux version ` up to the end of the line, for the first banner
    /// whose release starts with a digit (format strings like "Linux version %s" are
    /// skipped).
    static func version(in bytes: ByteView) -> String? {
        var from = 0
        while let start = bytes.firstIndex(of: prefix, from: from) {
            let textStart = start + prefix.count
            from = start + 1
            guard let first = bytes.u8(textStart), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                continue
            }
            return bytes.line(at: textStart, maxLength: 512)
        }
        return nil
    }

    static func release(_ version: String) -> String? {
        version.split(separator: " ", maxSplits: 1).first.map(String.init)
    }
}
