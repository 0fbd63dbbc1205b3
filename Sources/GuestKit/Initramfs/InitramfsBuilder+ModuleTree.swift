import Foundation
import LaunchSupport
import QEMULaunch

extension InitramfsBuilder {
    /// Modules for the guest's own `modprobe`: `/lib/modules/<release>/` in the
    /// initramfs, with a `modules.dep` (busybox's modprobe reads it), besides the flat
    /// `/lib/modules/NAME.ko` files the init loads at boot.
    package struct ModuleTree: Sendable, Hashable {
        /// The kernel's release: `uname -r` in the guest, the folder modprobe looks in.
        package var release: String
        /// Every module of the release folder (a kernel tree's), when they fit in
        /// `budgetBytes`; otherwise (and when false) only `extra` and what they need.
        package var everyModule: Bool
        /// The developer's own modules (`--module FILE`), as `extra/NAME.ko`.
        package var extra: [ModuleInfo]
        /// The most module bytes the whole set may take: the initramfs is unpacked into guest RAM.
        package var budgetBytes: UInt64

        package init(release: String, everyModule: Bool, extra: [ModuleInfo], budgetBytes: UInt64) {
            self.release = release
            self.everyModule = everyModule
            self.extra = extra
            self.budgetBytes = budgetBytes
        }
    }

    /// What goes under `/lib/modules/<release>/`: module files, index files, and a note
    /// when the whole set did not fit.
    struct ModuleTreeContents {
        var modules: [(guestPath: String, module: ResolvedModule)] = []
        var extra: [(guestPath: String, bytes: Data)] = []
        var indexFiles: [(name: String, contents: Data)] = []
        var note: String?
    }

    /// Picks the files and writes the `modules.dep` for `tree` from the release folder's index.
    static func moduleTreeContents(_ tree: ModuleTree, index: ModuleIndex?) throws(ModuleIndex.Error) -> ModuleTreeContents {
        var contents = ModuleTreeContents()
        /// The path in the guest: relative to the release folder, decompressed (`.ko`).
        func guestPath(_ relative: String) -> String {
            var path = relative.hasPrefix("/") ? "kernel/" + URL(fileURLWithPath: relative).lastPathComponent : relative
            for suffix in [".xz", ".zst", ".gz"] where path.hasSuffix(".ko" + suffix) { path = String(path.dropLast(suffix.count)) }
            return path
        }
        var selected: [String] = []
        if let index {
            let extraNames = Set(tree.extra.map(\.name))
            let needed = tree.extra.flatMap(\.dependencies).filter { !extraNames.contains($0) && !index.isBuiltin($0) }
            selected = try index.resolution(of: needed).modules.map(\.name)
            if tree.everyModule {
                let all = index.moduleNames
                let bytes = all.reduce(UInt64(0)) { sum, name in
                    let path = index.line(of: name).map { index.modulesDirectory.appendingPathComponent($0.path).path } ?? ""
                    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
                    // Compressed modules grow about 3x when unpacked into the initramfs.
                    return sum + (Compression.forModuleFileName(path) == nil ? size : size * 3)
                }
                if bytes <= tree.budgetBytes {
                    selected = all
                } else {
                    contents.note = "not every module of \(tree.release) is in the guest: they take \(byteCount(bytes)), more than a quarter of guest RAM (\(byteCount(tree.budgetBytes))); raise memory to have them all"
                }
            }
            for module in try index.resolution(of: selected).modules where index.line(of: module.name) != nil {
                contents.modules.append((guestPath(module.relativePath), module))
            }
        }
        var dep = ""
        for (_, module) in contents.modules {
            guard let line = index?.line(of: module.name) else { continue }
            dep += "\(guestPath(line.path)):" + line.dependencies.map { " " + guestPath($0) }.joined() + "\n"
        }
        for module in tree.extra {
            let path = "extra/\(module.name).ko"
            contents.extra.append((path, module.bytes))
            // Dependencies deepest last, as depmod writes them: modprobe loads from the end.
            var needs: [String] = []
            if let index, let resolved = try? index.resolution(of: module.dependencies.filter { index.contains($0) }) {
                needs = resolved.modules.reversed().compactMap { index.line(of: $0.name).map { guestPath($0.path) } }
            }
            needs += module.dependencies.filter { dependency in tree.extra.contains { $0.name == dependency } }.map { "extra/\($0).ko" }
            dep += "\(path):" + needs.map { " " + $0 }.joined() + "\n"
        }
        contents.indexFiles.append(("modules.dep", Data(dep.utf8)))
        // Aliases and exported symbols (modprobe by alias) hold only for the whole set.
        let copied = contents.note == nil && tree.everyModule ? ["modules.alias", "modules.symbols", "modules.builtin"] : ["modules.builtin"]
        for name in copied {
            if let folder = index?.modulesDirectory, let data = try? Data(contentsOf: folder.appendingPathComponent(name)) {
                contents.indexFiles.append((name, data))
            }
        }
        return contents
    }

    /// Adds `contents` to `archive` under `/lib/modules/<release>/`.
    static func add(_ contents: ModuleTreeContents, release: String, index: ModuleIndex?, to archive: inout CpioArchive) throws {
        let base = "/lib/modules/\(release)/"
        for (path, module) in contents.modules {
            try archive.addFile(base + path, contents: try index!.loadDecompressed(module), mode: 0o644)
        }
        for (path, bytes) in contents.extra { try archive.addFile(base + path, contents: bytes, mode: 0o644) }
        for (name, data) in contents.indexFiles { try archive.addFile(base + name, contents: data, mode: 0o644) }
    }
}
