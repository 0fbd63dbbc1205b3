import Foundation

extension ModuleIndex {
    /// Why modules could not be resolved or read. Messages say how to fix it.
    package enum Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        /// The release folder does not exist.
        case modulesDirectoryMissing(URL)
        /// The release folder has no `modules.dep`.
        case indexMissing(URL)
        /// The folder is a kernel build tree: modules built there are not installed.
        case buildTree(URL)
        case unreadableIndex(URL, reason: String)
        /// A `modules.dep` line without `path:`.
        case malformedIndex(URL, line: Int, text: String)
        /// The name is neither in `modules.dep` nor in `modules.builtin`.
        case moduleNotFound(String, release: String, directory: URL, similar: [String])
        /// `modules.dep` lists the module but its file is gone.
        case moduleFileMissing(String, path: URL, release: String)
        /// Modules that depend on each other in a ring, first one repeated at the end.
        case dependencyCycle([String], release: String)
        case unreadableModule(URL, reason: String)
        case decompressionFailed(String, path: URL, DecompressionError)

        package var description: String {
            switch self {
            case .modulesDirectoryMissing(let folder):
                "no kernel modules folder at \(folder.path): install the modules of kernel \(folder.lastPathComponent) (on Debian, package linux-image-\(folder.lastPathComponent)), or point at the release folder of the kernel you boot"
            case .indexMissing(let file):
                "\(file.path) is missing: run `depmod \(file.deletingLastPathComponent().lastPathComponent)` (or `depmod -b ROOT RELEASE` for a staged tree) to create the module index"
            case .buildTree(let folder):
                "\(folder.path) is a kernel build tree, not installed modules: that's a build tree: use --kernel-tree \(folder.path) (it installs the tree's modules for the guest), or make -C \(folder.path) modules_install INSTALL_MOD_PATH=DIR and pass --modules DIR"
            case .unreadableIndex(let file, let reason):
                "can't read \(file.path): \(reason)"
            case .malformedIndex(let file, let line, let text):
                "\(file.path) line \(line) is not `path: dependencies` (\(displayQuoted(text))): regenerate it with `depmod \(file.deletingLastPathComponent().lastPathComponent)`"
            case .moduleNotFound(let name, let release, let folder, let similar):
                "kernel module \(displayQuoted(name)) is neither in modules.dep nor in modules.builtin of kernel \(release) (\(folder.path))"
                    + (similar.isEmpty ? "" : "; did you mean \(similar.map { displayQuoted($0) }.joined(separator: " or "))?")
                    + " Check the module name (modules, not aliases), and that the modules installed match this exact kernel (on Debian, package linux-image-\(release))"
            case .moduleFileMissing(let name, let path, let release):
                "kernel module \(displayQuoted(name)) is listed in modules.dep of \(release) but \(path.path) does not exist: reinstall the modules of \(release) (on Debian, package linux-image-\(release)) or run `depmod \(release)`"
            case .dependencyCycle(let names, let release):
                "kernel modules of \(release) depend on each other in a cycle (\(names.joined(separator: " -> "))): the kernel can't load them; regenerate modules.dep with `depmod \(release)` and check these modules"
            case .unreadableModule(let url, let reason):
                "can't read kernel module \(url.path): \(reason)"
            case .decompressionFailed(let name, let path, let error):
                "can't decompress kernel module \(displayQuoted(name)) (\(path.path)): \(error)"
            }
        }
    }
}
