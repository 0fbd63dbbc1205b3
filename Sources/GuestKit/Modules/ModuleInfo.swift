import Foundation
import QEMULaunch

/// What a kernel module file says about itself in its `.modinfo` section: its name,
/// the kernel it was built for (`vermagic`) and the modules it needs (`depends`).
///
/// Read from the file's ELF section table; `.ko.xz`/`.ko.zst`/`.ko.gz` are decompressed
/// first. Only 64-bit little-endian modules (x86_64, aarch64) are read.
package struct ModuleInfo: Sendable, Hashable {
    /// The file as given.
    package var path: URL
    /// The kernel's name for it (`name=`, else the file name), with underscores.
    package var name: String
    /// `vermagic=`: the kernel release first, then build options (`SMP preempt mod_unload ...`).
    package var vermagic: String
    /// `depends=`: the modules it needs loaded first.
    package var dependencies: [String]
    /// The plain `.ko` bytes.
    package var bytes: Data

    /// `vermagic` without kbuild's trailing space, for messages.
    var shownVermagic: String { vermagic.trimmingCharacters(in: .whitespaces) }

    /// The release `vermagic` starts with.
    package var release: String { String(vermagic.split(separator: " ").first ?? "") }

    /// Reads `file`; throws `LaunchError` (`.invalidProfile`) saying what is wrong with it.
    package static func read(_ file: URL) throws(LaunchError) -> ModuleInfo {
        func bad(_ why: String) -> LaunchError {
            LaunchError(.invalidProfile, "--module \(file.path): \(why)",
                        fix: "give a kernel module (.ko) built for this kernel: make -C KERNEL_TREE M=$PWD modules")
        }
        guard FileManager.default.fileExists(atPath: file.path) else { throw bad("no such file") }
        let bytes: Data
        do {
            bytes = try ModuleIndex.loadDecompressed(ResolvedModule(
                name: ModuleIndex.canonicalName(file.lastPathComponent), path: file, relativePath: file.lastPathComponent,
                compression: Compression.forModuleFileName(file.lastPathComponent)))
        } catch {
            throw bad("\(error)")
        }
        guard let fields = modinfo(bytes) else { throw bad("not a 64-bit little-endian ELF kernel module with a .modinfo section") }
        guard let vermagic = fields["vermagic"] else { throw bad("it has no vermagic: not a module built by kbuild") }
        let name = fields["name"].map(ModuleIndex.canonicalName) ?? ModuleIndex.canonicalName(file.lastPathComponent)
        let dependencies = (fields["depends"] ?? "").split(separator: ",").map { ModuleIndex.canonicalName(String($0)) }
        return ModuleInfo(path: file, name: name, vermagic: vermagic, dependencies: dependencies, bytes: bytes)
    }

    /// Refuses a module built for another kernel, before anything boots: the guest's
    /// insmod would fail with "Invalid module format", seen only on the console.
    ///
    /// - Parameters:
    ///   - release: the kernel's release (`uname -r` in the guest).
    ///   - reference: the vermagic of a module of the kernel's own build, when one is at
    ///     hand: then the build options (SMP, preempt, mod_unload, modversions) must match too.
    package func checkBuilt(for release: String, kernel: String, reference: String?) throws(LaunchError) {
        if self.release != release {
            throw LaunchError(.invalidProfile,
                              "--module \(path.path) was built for kernel \(self.release) (vermagic \"\(shownVermagic)\"), but the kernel \(kernel) is \(release): the guest would refuse to load it",
                              fix: "rebuild the module against the tree of the kernel you boot: make -C KERNEL_TREE M=$PWD modules")
        }
        if let reference, reference != vermagic {
            throw LaunchError(.invalidProfile,
                              "--module \(path.path) has vermagic \"\(shownVermagic)\", but this kernel's own modules have \"\(reference.trimmingCharacters(in: .whitespaces))\": the guest would refuse to load it",
                              fix: "rebuild the module against the tree of the kernel you boot, with its .config: make -C KERNEL_TREE M=$PWD modules")
        }
    }

    /// The `key=value` strings of the `.modinfo` section; nil when `bytes` is not a
    /// 64-bit little-endian ELF file with one.
    static func modinfo(_ bytes: Data) -> [String: String]? {
        let b = [UInt8](bytes)
        guard b.count >= 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[4] == 2, b[5] == 1 else { return nil }
        func u16(_ o: Int) -> Int? { o + 2 <= b.count ? Int(b[o]) | Int(b[o + 1]) << 8 : nil }
        func u32(_ o: Int) -> Int? { o + 4 <= b.count ? (0..<4).reduce(0) { $0 | Int(b[o + $1]) << (8 * $1) } : nil }
        func u64(_ o: Int) -> Int? {
            guard o + 8 <= b.count else { return nil }
            let value = (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
            return value > UInt64(Int.max) ? nil : Int(value)
        }
        guard let shoff = u64(0x28), let shentsize = u16(0x3a), let shnum = u16(0x3c), let shstrndx = u16(0x3e),
              shentsize >= 64, shstrndx < shnum else { return nil }
        func section(_ index: Int) -> (name: Int, offset: Int, size: Int)? {
            let base = shoff + index * shentsize
            guard let name = u32(base), let offset = u64(base + 0x18), let size = u64(base + 0x20),
                  offset <= b.count, size <= b.count - offset else { return nil }
            return (name, offset, size)
        }
        guard let names = section(shstrndx) else { return nil }
        func name(at offset: Int) -> String? {
            let start = names.offset + offset
            guard offset < names.size, start < b.count else { return nil }
            let end = b[start..<(names.offset + names.size)].firstIndex(of: 0) ?? (names.offset + names.size)
            return String(decoding: b[start..<end], as: UTF8.self)
        }
        for index in 0..<shnum {
            guard let s = section(index), name(at: s.name) == ".modinfo" else { continue }
            var fields: [String: String] = [:]
            for entry in b[s.offset..<(s.offset + s.size)].split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                guard let equals = text.firstIndex(of: "=") else { continue }
                let key = String(text[..<equals])
                // The first wins: a module has one name, vermagic and depends.
                if fields[key] == nil { fields[key] = String(text[text.index(after: equals)...]) }
            }
            return fields
        }
        return nil
    }
}
