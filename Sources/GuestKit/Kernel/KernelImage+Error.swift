import Foundation

extension KernelImage {
    /// Why a kernel file could not be inspected or its vmlinux extracted. Messages say
    /// what happened and how to fix it.
    package enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        case fileMissing(URL)
        case emptyFile(URL)
        case unreadable(URL, reason: String)
        /// The file starts like `format` but ends before the bytes its headers point at.
        case truncated(URL, format: String, neededBytes: UInt64, actualBytes: UInt64)
        /// The headers are inconsistent in a way a cut-short file doesn't explain.
        case malformed(URL, String)
        /// `extractVmlinux` was given something other than a bzImage.
        case notABzImage(URL, found: Format)
        /// No compression magic in the bzImage's protected-mode code.
        case payloadNotFound(URL)
        case decompressionFailed(URL, Compression, DecompressionError)
        /// The decompressed size differs from the size the image records.
        case decompressedSizeMismatch(URL, Compression, expected: UInt32, actual: UInt64)
        /// The payload decompressed to something that is not an ELF kernel.
        case payloadNotELF(URL, Compression, found: Format)
        /// The payload is an ELF for another machine than the bzImage.
        case archMismatch(URL, expected: Arch, found: ELFMachine)
        /// The payload is an ELF kernel without a PVH entry note (built without
        /// CONFIG_PVH=y), so QEMU can't boot it with `-kernel`.
        case noPVHNote(URL, release: String?)
        case writeFailed(URL, reason: String)

        package var description: String {
            switch self {
            case .fileMissing(let url):
                "kernel file \(url.path) does not exist: check the path (Debian installs kernels as /boot/vmlinuz-RELEASE)"
            case .emptyFile(let url):
                "kernel file \(url.path) is empty: rebuild or reinstall the kernel"
            case .unreadable(let url, let reason):
                "can't read kernel file \(url.path): \(reason)"
            case .truncated(let url, let format, let needed, let actual):
                "\(url.path) is cut short: its \(format) headers need \(needed) bytes and the file has \(actual); copy the kernel again or rebuild it"
            case .malformed(let url, let detail):
                "\(url.path) is not a usable kernel image: \(detail)"
            case .notABzImage(let url, let found):
                "\(url.path) is not an x86 bzImage (found: \(found)); vmlinux extraction needs a bzImage such as /boot/vmlinuz-RELEASE"
            case .payloadNotFound(let url):
                "no compressed kernel found in \(url.path): neither the setup header's payload fields nor a scan for xz, gzip, zstd, lz4, lzma, bzip2 or lzo magic found one; boot the bzImage directly"
            case .decompressionFailed(let url, let format, let error):
                "can't extract vmlinux from \(url.path) (\(format) payload): \(error)"
            case .decompressedSizeMismatch(let url, let format, let expected, let actual):
                "the \(format) payload of \(url.path) decompressed to \(actual) bytes but the image records \(expected): the bzImage may be corrupt; rebuild or reinstall it"
            case .payloadNotELF(let url, let format, let found):
                "the \(format) payload of \(url.path) is not an ELF kernel (found: \(found)): boot the bzImage directly"
            case .archMismatch(let url, let expected, let found):
                "the kernel inside \(url.path) is an ELF for \(found), not \(expected.rawValue): the image is inconsistent; boot the bzImage directly"
            case .noPVHNote(let url, let release):
                "the vmlinux inside \(url.path)\(release.map { " (\($0))" } ?? "") has no PVH entry note, so QEMU can't boot it as an ELF: rebuild the kernel with CONFIG_PVH=y, or boot the bzImage (slower under TCG, as the guest decompresses it)"
            case .writeFailed(let url, let reason):
                "can't write \(url.path): \(reason); check that its folder is writable and has room (a vmlinux is tens of MB)"
            }
        }
    }
}
