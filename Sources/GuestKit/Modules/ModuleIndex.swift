import Foundation

/// A loadable kernel module found in `modules.dep`.
package struct ResolvedModule: Sendable, Hashable {
    /// The kernel's name for it, with underscores (`9pnet_virtio`).
    package var name: String
    /// Absolute path of the module file on the host.
    package var path: URL
    /// The path as `modules.dep` writes it, usually relative to the release folder
    /// (`kernel/fs/fuse/fuse.ko`).
    package var relativePath: String
    /// How the file is compressed; nil for a plain `.ko`.
    package var compression: Compression?

    package init(name: String, path: URL, relativePath: String, compression: Compression?) {
        self.name = name
        self.path = path
        self.relativePath = relativePath
        self.compression = compression
    }
}

/// The modules needed for a set of names, in load order.
package struct ModuleResolution: Sendable, Hashable {
    /// Files to load, dependencies first, each once.
    package var modules: [ResolvedModule]
    /// Requested names that are built into the kernel (in `modules.builtin`): they
    /// need no file and no loading.
    package var builtin: [String]
}

/// The module index (`modules.dep`, `modules.builtin`) of one exact kernel release,
/// as in `/lib/modules/6.1.0-56-amd64`.
///
/// Module names treat `-` and `_` as the same character, as the kernel does. Aliases
/// (`fs-virtiofs`, `modules.alias`) are not looked up: give module names.
package struct ModuleIndex: Sendable {
    /// The release folder, like `/lib/modules/6.1.0-56-amd64`.
    package let modulesDirectory: URL

    /// The kernel release the folder is named after.
    package var kernelRelease: String { modulesDirectory.lastPathComponent }

    struct Entry: Sendable {
        var relativePath: String
        /// Relative paths, as written on the module's `modules.dep` line.
        var dependencies: [String]
    }

    private var entries: [String: Entry] = [:]
    private var builtinNames: Set<String> = []

    /// Reads `modules.dep` (required) and `modules.builtin` (optional) of a release
    /// folder.
    package init(modulesDirectory: URL) throws(Error) {
        self.modulesDirectory = modulesDirectory.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: self.modulesDirectory.path, isDirectory: &isDirectory),
            isDirectory.boolValue
        else { throw .modulesDirectoryMissing(self.modulesDirectory) }

        let depFile = self.modulesDirectory.appendingPathComponent("modules.dep")
        guard FileManager.default.fileExists(atPath: depFile.path) else {
            // Modules built but not installed: depmod can't help there, installing can.
            if Self.isBuildTree(self.modulesDirectory) { throw .buildTree(self.modulesDirectory) }
            throw .indexMissing(depFile)
        }
        for (number, line) in try Self.lines(of: depFile) {
            guard let colon = line.firstIndex(of: ":") else {
                throw .malformedIndex(depFile, line: number, text: String(line.prefix(200)))
            }
            let path = line[..<colon].trimmingCharacters(in: .whitespaces)
            guard !path.isEmpty else { throw .malformedIndex(depFile, line: number, text: String(line.prefix(200))) }
            let dependencies = line[line.index(after: colon)...]
                .split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let name = Self.moduleName(fromPath: path)
            // depmod writes one line per name; should a name repeat, the first wins,
            // as modprobe's lookup would.
            if entries[name] == nil { entries[name] = Entry(relativePath: path, dependencies: dependencies) }
        }

        let builtinFile = self.modulesDirectory.appendingPathComponent("modules.builtin")
        if FileManager.default.fileExists(atPath: builtinFile.path) {
            for (_, line) in try Self.lines(of: builtinFile) {
                builtinNames.insert(Self.moduleName(fromPath: line.trimmingCharacters(in: .whitespaces)))
            }
        }
    }

    /// Reads the index of `release` under `modulesRoot` (`/lib/modules` by default).
    package init(kernelRelease: String, modulesRoot: URL = URL(fileURLWithPath: "/lib/modules")) throws(Error) {
        try self.init(modulesDirectory: modulesRoot.appendingPathComponent(kernelRelease, isDirectory: true))
    }

    /// A kernel build tree (where `make` ran): its `modules.order`, or its top-level
    /// `Kbuild` and `Kconfig`.
    package static func isBuildTree(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent("modules.order").path)
            || (fm.fileExists(atPath: folder.appendingPathComponent("Kconfig").path)
                && fm.fileExists(atPath: folder.appendingPathComponent("Kbuild").path))
    }

    // MARK: Queries

    /// The kernel's spelling of a module name: no directory, no `.ko[.xz|.zst|.gz]`,
    /// `-` written as `_`.
    package static func canonicalName(_ name: String) -> String {
        var base = Substring(name.split(separator: "/").last ?? Substring(name))
        for suffix in [".ko.xz", ".ko.zst", ".ko.gz", ".ko"] where base.hasSuffix(suffix) {
            base = base.dropLast(suffix.count)
            break
        }
        return base.replacingOccurrences(of: "-", with: "_")
    }

    static func moduleName(fromPath path: String) -> String { canonicalName(path) }

    /// True when `name` is a loadable module of this release.
    package func contains(_ name: String) -> Bool { entries[Self.canonicalName(name)] != nil }

    /// True when `name` is built into the kernel (listed in `modules.builtin`).
    package func isBuiltin(_ name: String) -> Bool { builtinNames.contains(Self.canonicalName(name)) }

    /// Every loadable module's name, sorted.
    package var moduleNames: [String] { entries.keys.sorted() }

    /// `modules.dep`'s line for `name`: its path and its dependencies' paths, as written.
    package func line(of name: String) -> (path: String, dependencies: [String])? {
        entries[Self.canonicalName(name)].map { ($0.relativePath, $0.dependencies) }
    }

    /// The module files for `names` and everything they depend on, dependencies
    /// first, each once. Built-in names are skipped; see `resolution(of:)` to list them.
    package func resolve(_ names: [String]) throws(Error) -> [ResolvedModule] {
        try resolution(of: names).modules
    }

    /// Like `resolve(_:)`, and also says which requested names are built in.
    package func resolution(of names: [String]) throws(Error) -> ModuleResolution {
        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var order: [ResolvedModule] = []
        var builtin: [String] = []

        for requested in names {
            let root = Self.canonicalName(requested)
            guard entries[root] != nil else {
                if builtinNames.contains(root) {
                    if !builtin.contains(root) { builtin.append(root) }
                    continue
                }
                throw .moduleNotFound(
                    requested, release: kernelRelease, directory: modulesDirectory,
                    similar: similarNames(to: root))
            }
            guard marks[root] == nil else { continue }

            // Depth-first, post-order, with an explicit stack: a hostile index can't
            // overflow the call stack, and a cycle is found instead of followed.
            var stack: [(name: String, next: Int)] = [(root, 0)]
            marks[root] = .visiting
            while let top = stack.last {
                let dependencies = entries[top.name]?.dependencies ?? []
                if top.next < dependencies.count {
                    stack[stack.count - 1].next += 1
                    let dependency = Self.moduleName(fromPath: dependencies[top.next])
                    switch marks[dependency] {
                    case .done: continue
                    case .visiting:
                        let start = stack.firstIndex { $0.name == dependency } ?? 0
                        throw .dependencyCycle(stack[start...].map(\.name) + [dependency], release: kernelRelease)
                    case nil:
                        marks[dependency] = .visiting
                        stack.append((dependency, 0))
                    }
                } else {
                    stack.removeLast()
                    marks[top.name] = .done
                    order.append(try resolvedModule(top.name, reachedFrom: stack.last?.name))
                }
            }
        }
        return ModuleResolution(modules: order, builtin: builtin)
    }

    private func resolvedModule(_ name: String, reachedFrom parent: String?) throws(Error) -> ResolvedModule {
        let relativePath: String
        if let entry = entries[name] {
            relativePath = entry.relativePath
        } else if let parent, let path = entries[parent]?.dependencies.first(where: {
            Self.moduleName(fromPath: $0) == name
        }) {
            // A dependency without a line of its own: trust the path its dependent gave.
            relativePath = path
        } else {
            throw .moduleNotFound(name, release: kernelRelease, directory: modulesDirectory, similar: [])
        }
        let path =
            relativePath.hasPrefix("/")
            ? URL(fileURLWithPath: relativePath) : modulesDirectory.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw .moduleFileMissing(name, path: path, release: kernelRelease)
        }
        return ResolvedModule(
            name: name, path: path, relativePath: relativePath,
            compression: Compression.forModuleFileName(path.lastPathComponent))
    }

    /// Up to three loadable names that look like `name` (same letters without
    /// underscores, or one containing the other), for "did you mean".
    private func similarNames(to name: String) -> [String] {
        let squashed = name.replacingOccurrences(of: "_", with: "")
        guard squashed.count >= 2 else { return [] }
        let exact = entries.keys.filter { $0.replacingOccurrences(of: "_", with: "") == squashed }
        if !exact.isEmpty { return Array(exact.sorted().prefix(3)) }
        return Array(entries.keys.filter { $0.contains(name) }.sorted().prefix(3))
    }

    // MARK: Reading module files

    /// The plain `.ko` bytes of a module, decompressing `.ko.xz`, `.ko.zst` and `.ko.gz`
    /// with the host's xz, zstd or gzip. Blocks until the tool exits.
    package func loadDecompressed(_ module: ResolvedModule) throws(Error) -> Data {
        try Self.loadDecompressed(module)
    }

    /// See `loadDecompressed(_:)`; needs no index.
    package static func loadDecompressed(_ module: ResolvedModule) throws(Error) -> Data {
        guard let compression = module.compression else {
            do {
                return try Data(contentsOf: module.path)
            } catch {
                throw .unreadableModule(module.path, reason: error.localizedDescription)
            }
        }
        do {
            return try Decompressor.decompress(compression, file: module.path)
        } catch {
            throw .decompressionFailed(module.name, path: module.path, error)
        }
    }

    // MARK: Parsing

    private static func lines(of file: URL) throws(Error) -> [(Int, Substring)] {
        let text: String
        do {
            text = try String(contentsOf: file, encoding: .utf8)
        } catch {
            throw .unreadableIndex(file, reason: error.localizedDescription)
        }
        var out: [(Int, Substring)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            out.append((index + 1, line))
        }
        return out
    }
}
