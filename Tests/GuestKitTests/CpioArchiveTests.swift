import Foundation
import TestSupport
import Testing

@testable import GuestKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("cpio newc archive")
struct CpioArchiveTests {
    /// Regular files of awkward sizes: empty, 1..5 bytes around the 4-byte boundary,
    /// and one larger than a page.
    static let files: [(path: String, contents: Data, mode: UInt32)] = [
        ("/init", Data("#!/bin/sh\necho hello\n".utf8), 0o755),
        ("/etc/empty", Data(), 0o644),
        ("/etc/one", Data([0x41]), 0o600),
        ("/etc/three", Data("abc".utf8), 0o644),
        ("/etc/four", Data("abcd".utf8), 0o644),
        ("/etc/five", Data("abcde".utf8), 0o640),
        ("/usr/share/big", Data((0..<5001).map { UInt8(truncatingIfNeeded: $0 &* 31) }), 0o644),
    ]

    static func sampleArchive(withDevice: Bool = true) throws -> CpioArchive {
        var archive = CpioArchive()
        try archive.addDirectory("/proc", mode: 0o555)
        try archive.addDirectory("/tmp", mode: 0o1777)
        for file in files { try archive.addFile(file.path, contents: file.contents, mode: file.mode) }
        try archive.addFile("/bin/busybox", contents: Data("not really busybox".utf8), mode: 0o755)
        try archive.addSymlink("/bin/sh", target: "busybox")
        try archive.addSymlink("/lib64", target: "../usr/lib")
        if withDevice { try archive.addCharacterDevice("/dev/console", major: 5, minor: 1, mode: 0o600) }
        return archive
    }

    static let expectedNames = [
        "proc", "tmp", "init", "etc", "etc/empty", "etc/one", "etc/three", "etc/four", "etc/five",
        "usr", "usr/share", "usr/share/big", "bin", "bin/busybox", "bin/sh", "lib64", "dev", "dev/console",
    ]

    @Test("the real cpio tool lists exactly the entries, parents first, with their types and modes")
    func cpioToolListsEntries() throws {
        let folder = try CpioScratch()
        let archiveURL = folder.url.appendingPathComponent("initramfs.cpio")
        try Self.sampleArchive().write(to: archiveURL)

        let names = try CpioScratch.run("/usr/bin/cpio", ["-it", "--quiet"], stdin: archiveURL)
        #expect(names.split(separator: "\n").map(String.init) == Self.expectedNames)

        let listing = try CpioScratch.run("/usr/bin/cpio", ["-itv", "--quiet"], stdin: archiveURL)
        let lines = listing.split(separator: "\n").map(String.init)
        #expect(lines.count == Self.expectedNames.count)
        func line(_ name: String) -> String {
            lines.first { $0.hasSuffix(" \(name)") || $0.contains(" \(name) -> ") } ?? "<missing \(name)>"
        }
        #expect(line("proc").hasPrefix("dr-xr-xr-x"))
        #expect(line("tmp").hasPrefix("drwxrwxrwt"))
        #expect(line("etc").hasPrefix("drwxr-xr-x"))  // created implicitly
        #expect(line("init").hasPrefix("-rwxr-xr-x"))
        #expect(line("etc/five").hasPrefix("-rw-r-----"))
        #expect(line("bin/sh").hasPrefix("lrwxrwxrwx"))
        #expect(line("bin/sh").hasSuffix("bin/sh -> busybox"))
        #expect(line("lib64").hasSuffix("lib64 -> ../usr/lib"))
        #expect(line("dev/console").hasPrefix("crw-------"))
        #expect(line("dev/console").contains("5,   1"))
        for entry in lines { #expect(entry.contains(" root ") && entry.contains("1970")) }
    }

    @Test("extracting with cpio -idm gives the same file contents, modes and symlink targets")
    func cpioToolExtracts() throws {
        // mknod needs root; elsewhere the archive is checked without its device node.
        let asRoot = getuid() == 0
        let folder = try CpioScratch()
        let archiveURL = folder.url.appendingPathComponent("initramfs.cpio")
        try Self.sampleArchive(withDevice: asRoot).write(to: archiveURL)
        let root = folder.url.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)

        _ = try CpioScratch.run("/usr/bin/cpio", ["-idm", "--quiet"], stdin: archiveURL, in: root)

        for file in Self.files {
            let extracted = root.appendingPathComponent(String(file.path.dropFirst()))
            #expect(try Data(contentsOf: extracted) == file.contents, "\(file.path)")
            if asRoot {
                let mode = try #require(
                    try FileManager.default.attributesOfItem(atPath: extracted.path)[.posixPermissions] as? NSNumber)
                #expect(mode.uint32Value == file.mode, "\(file.path)")
            }
        }
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: root.appendingPathComponent("bin/sh").path) == "busybox")
        #expect(try fm.destinationOfSymbolicLink(atPath: root.appendingPathComponent("lib64").path) == "../usr/lib")
        if asRoot {
            var info = stat()
            #expect(lstat(root.appendingPathComponent("dev/console").path, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFCHR)
            // glibc's dev_t encoding for small numbers: major << 8 | minor.
            #expect(info.st_rdev == (5 << 8) | 1)
        }
    }

    @Test("identical input gives byte-identical archives")
    func deterministic() throws {
        let first = try Self.sampleArchive().finish()
        let second = try Self.sampleArchive().finish()
        #expect(first == second)
        // finish() does not consume: calling it again gives the same bytes.
        let archive = try Self.sampleArchive()
        #expect(archive.finish() == archive.finish())
        #expect(archive.finish() == first)
    }

    @Test("every header and every data block starts 4-byte aligned, padded with zeros, ending in the trailer")
    func alignment() throws {
        let bytes = try Self.sampleArchive().finish()
        let members = try NewcReader.read(bytes)
        #expect(bytes.count % 4 == 0)
        #expect(members.map(\.name) == Self.expectedNames + ["TRAILER!!!"])
        for member in members {
            #expect(member.headerOffset % 4 == 0, "\(member.name)")
            #expect(member.dataOffset % 4 == 0, "\(member.name)")
            #expect(member.padding.allSatisfy { $0 == 0 }, "\(member.name)")
            #expect(member.uid == 0 && member.gid == 0 && member.mtime == 0, "\(member.name)")
        }
        // Inodes count up in entry order; the trailer has 0.
        #expect(members.map(\.inode) == Array(1...UInt32(Self.expectedNames.count)) + [0])
        let console = try #require(members.first { $0.name == "dev/console" })
        #expect(console.mode == 0o020600 && console.rdevMajor == 5 && console.rdevMinor == 1)
        let five = try #require(members.first { $0.name == "etc/five" })
        #expect(five.data == Data("abcde".utf8) && five.mode == 0o100640)
        let link = try #require(members.first { $0.name == "bin/sh" })
        #expect(link.data == Data("busybox".utf8) && link.mode == 0o120777)
    }

    @Test("an empty archive is just the trailer, 4-byte aligned")
    func emptyArchive() throws {
        let bytes = CpioArchive().finish()
        #expect(bytes.count == 124)  // 110-byte header + 11-byte name, padded to 124
        #expect(try NewcReader.read(bytes).map(\.name) == ["TRAILER!!!"])
    }

    @Test(
        "paths with NUL, '..' components or naming the root are rejected",
        arguments: ["/a/../b", "..", "../etc/passwd", "a/b/..", "bad\0name", "/", "", "./.", "//"])
    func rejectedPaths(path: String) {
        var archive = CpioArchive()
        #expect {
            try archive.addFile(path, contents: Data("x".utf8))
        } throws: { error in
            guard case .invalidPath = error as? CpioArchive.Error else { return false }
            return true
        }
        #expect(archive.entries.isEmpty)
    }

    @Test("paths are normalised: leading slash, repeated slashes and '.' components are dropped")
    func normalisedPaths() throws {
        var archive = CpioArchive()
        try archive.addFile("//usr/./bin//tool", contents: Data())
        try archive.addFile("usr/bin/other", contents: Data())
        #expect(archive.entries.map(\.path) == ["usr", "usr/bin", "usr/bin/tool", "usr/bin/other"])
        #expect(archive.entry(at: "/usr/bin/tool") != nil)
    }

    @Test("missing parents are created once each, and an explicit directory keeps its place and takes the new mode")
    func parentsOnce() throws {
        var archive = CpioArchive()
        try archive.addFile("/lib/modules/a.ko", contents: Data("a".utf8))
        try archive.addFile("/lib/modules/b.ko", contents: Data("b".utf8))
        try archive.addDirectory("/lib", mode: 0o700)
        #expect(archive.entries.map(\.path) == ["lib", "lib/modules", "lib/modules/a.ko", "lib/modules/b.ko"])
        #expect(archive.entry(at: "lib")?.permissions == 0o700)
        #expect(archive.entry(at: "lib/modules")?.permissions == CpioArchive.implicitDirectoryMode)
    }

    @Test("adding a file again replaces its contents in place")
    func replaceFile() throws {
        var archive = CpioArchive()
        try archive.addFile("/init", contents: Data("old".utf8))
        try archive.addFile("/etc/x", contents: Data())
        try archive.addFile("/init", contents: Data("new".utf8), mode: 0o755)
        #expect(archive.entries.map(\.path) == ["init", "etc", "etc/x"])
        #expect(archive.entry(at: "init") == .init(path: "init", kind: .file(Data("new".utf8)), permissions: 0o755))
    }

    @Test("conflicting or impossible entries give typed errors")
    func conflicts() throws {
        var archive = CpioArchive()
        try archive.addFile("/bin/busybox", contents: Data())
        try archive.addSymlink("/sbin", target: "bin")

        #expect(throws: CpioArchive.Error.conflictingEntry(path: "bin", existing: "directory", new: "regular file")) {
            try archive.addFile("/bin", contents: Data())
        }
        #expect(throws: CpioArchive.Error.conflictingEntry(path: "bin/busybox", existing: "regular file", new: "directory")) {
            try archive.addDirectory("/bin/busybox")
        }
        #expect(throws: CpioArchive.Error.parentNotADirectory(path: "sbin/init", parent: "sbin")) {
            try archive.addFile("/sbin/init", contents: Data())
        }
        #expect(throws: CpioArchive.Error.invalidMode(path: "/x", mode: 0o100644)) {
            try archive.addFile("/x", contents: Data(), mode: 0o100644)
        }
        #expect(throws: CpioArchive.Error.invalidSymlinkTarget(path: "/y", target: "")) {
            try archive.addSymlink("/y", target: "")
        }
        #expect(throws: CpioArchive.Error.self) {
            try archive.addFile("/" + String(repeating: "a", count: 4096), contents: Data())
        }
        #expect(archive.entries.map(\.path) == ["bin", "bin/busybox", "sbin"])
    }

    @Test("error messages say what was wrong and how to fix it")
    func messages() {
        let message = CpioArchive.Error.invalidPath("a/../b", reason: "it has a '..' component").description
        #expect(message.contains("\"a/../b\"") && message.contains("'..'"))
        let nul = CpioArchive.Error.invalidPath("a\0b", reason: "it contains a NUL byte").description
        #expect(nul.contains("a\\0b"))
    }
}

// MARK: - Helpers

/// A parsed newc member, with the offsets needed to check alignment.
struct NewcMember {
    var name: String
    var headerOffset: Int
    var dataOffset: Int
    var inode, mode, uid, gid, mtime, rdevMajor, rdevMinor: UInt32
    var data: Data
    /// The bytes added after the name and after the data to reach 4-byte alignment.
    var padding: [UInt8]
}

enum NewcReader {
    struct Malformed: Error, CustomStringConvertible { var description: String }

    static func read(_ bytes: Data) throws -> [NewcMember] {
        let raw = [UInt8](bytes)
        var offset = 0
        var members: [NewcMember] = []
        func field(_ index: Int, at header: Int) throws -> UInt32 {
            let start = header + 6 + index * 8
            guard start + 8 <= raw.count,
                let value = UInt32(String(decoding: raw[start..<(start + 8)], as: UTF8.self), radix: 16)
            else { throw Malformed(description: "bad field \(index) at \(header)") }
            return value
        }
        while true {
            guard offset + 110 <= raw.count, Array(raw[offset..<(offset + 6)]) == Array("070701".utf8) else {
                throw Malformed(description: "no newc magic at \(offset)")
            }
            let nameSize = Int(try field(11, at: offset))
            let fileSize = Int(try field(6, at: offset))
            let nameStart = offset + 110
            guard nameSize >= 1, nameStart + nameSize <= raw.count, raw[nameStart + nameSize - 1] == 0 else {
                throw Malformed(description: "bad name at \(offset)")
            }
            let name = String(decoding: raw[nameStart..<(nameStart + nameSize - 1)], as: UTF8.self)
            let dataOffset = (nameStart + nameSize + 3) & ~3
            let next = (dataOffset + fileSize + 3) & ~3
            guard next <= raw.count else { throw Malformed(description: "data of \(name) runs past the end") }
            let padding = Array(raw[(nameStart + nameSize)..<dataOffset]) + Array(raw[(dataOffset + fileSize)..<next])
            members.append(
                NewcMember(
                    name: name, headerOffset: offset, dataOffset: dataOffset,
                    inode: try field(0, at: offset), mode: try field(1, at: offset),
                    uid: try field(2, at: offset), gid: try field(3, at: offset), mtime: try field(5, at: offset),
                    rdevMajor: try field(9, at: offset), rdevMinor: try field(10, at: offset),
                    data: Data(raw[dataOffset..<(dataOffset + fileSize)]), padding: padding))
            offset = next
            if name == "TRAILER!!!" { break }
        }
        guard offset == raw.count else { throw Malformed(description: "\(raw.count - offset) bytes after the trailer") }
        return members
    }
}

/// A temporary folder removed when the value is deinitialised.
final class CpioScratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gk-cpio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    struct Failed: Error, CustomStringConvertible { var description: String }

    /// Runs a tool with stdin from a file; returns stdout; throws on a non-zero exit.
    static func run(_ tool: String, _ arguments: [String], stdin: URL, in folder: URL? = nil) throws -> String {
        try TestProcess.capture([tool] + arguments, inputFile: stdin, currentDirectory: folder)
    }
}
