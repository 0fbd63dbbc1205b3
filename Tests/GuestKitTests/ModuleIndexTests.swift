import Foundation
import TestSupport
import Testing

@testable import GuestKit

/// The release folder of the running kernel, or else of the one kernel installed
/// (containers report the host's `uname -r`).
private let installedModules: URL? = {
    let root = URL(fileURLWithPath: "/lib/modules")
    var names: [String] = []
    var info = utsname()
    if uname(&info) == 0 {
        names.append(withUnsafeBytes(of: &info.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }
    names += ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
    return names.map { root.appendingPathComponent($0) }
        .first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("modules.dep").path) }
}()

@Suite("kernel modules from the installed kernel's modules.dep", .enabled(if: installedModules != nil))
struct ModuleIndexInstalledTests {
    static let wanted = ["virtio_mmio", "virtiofs", "9pnet_virtio", "9p", "virtio_console", "virtio_blk"]

    @Test("the modules a guest kit needs resolve with dependencies before dependents, each once")
    func guestKitModules() throws {
        let index = try ModuleIndex(modulesDirectory: try #require(installedModules))
        let resolution = try index.resolution(of: Self.wanted)
        let names = resolution.modules.map(\.name)
        #expect(Set(names).count == names.count)
        for name in Self.wanted {
            #expect(names.contains(name) || resolution.builtin.contains(name), "\(name)")
        }
        func before(_ first: String, _ second: String) {
            guard let a = names.firstIndex(of: first), let b = names.firstIndex(of: second) else { return }
            #expect(a < b, "\(first) should load before \(second): \(names)")
        }
        before("fuse", "virtiofs")
        before("9pnet", "9pnet_virtio")
        before("9pnet", "9p")
        before("netfs", "fscache")
        before("fscache", "9p")
        before("virtio_ring", "virtio")
        for dependent in ["virtio_mmio", "virtiofs", "9pnet_virtio", "virtio_console", "virtio_blk"] {
            before("virtio", dependent)
            before("virtio_ring", dependent)
        }
        for module in resolution.modules {
            #expect(module.path.path.hasPrefix("/"))
            #expect(FileManager.default.fileExists(atPath: module.path.path))
        }
    }

    @Test("a module resolves to its dependencies followed by itself", arguments: wanted)
    func endsWithItself(name: String) throws {
        let index = try ModuleIndex(modulesDirectory: try #require(installedModules))
        guard !index.isBuiltin(name) else { return }
        let modules = try index.resolve([name])
        #expect(modules.last?.name == name)
    }

    @Test("'-' and '_' in module names are the same", arguments: [
        ("virtio-mmio", "virtio_mmio"), ("9pnet-virtio", "9pnet_virtio"), ("virtio-blk.ko", "virtio_blk"),
    ])
    func dashUnderscore(spelled: String, canonical: String) throws {
        let index = try ModuleIndex(modulesDirectory: try #require(installedModules))
        #expect(try index.resolve([spelled]) == index.resolve([canonical]))
        #expect(try index.resolve([spelled, canonical]).filter { $0.name == canonical }.count == 1)
    }

    @Test("a module file loads as ELF bytes")
    func loadsModule() throws {
        let index = try ModuleIndex(modulesDirectory: try #require(installedModules))
        let module = try #require(try index.resolve(["virtio_mmio"]).last)
        let bytes = try index.loadDecompressed(module)
        #expect(bytes.prefix(4) == Data([0x7F, 0x45, 0x4C, 0x46]))
    }

    @Test("a misspelt module is an error naming it, the release folder and a likely name")
    func misspelt() throws {
        let folder = try #require(installedModules)
        let index = try ModuleIndex(modulesDirectory: folder)
        #expect {
            try index.resolve(["virtio_fs"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("\"virtio_fs\"") && text.contains(folder.path) && text.contains("\"virtiofs\"")
                && text.contains(folder.lastPathComponent)
        }
    }
}

@Suite("kernel modules from a synthetic modules folder")
struct ModuleIndexSyntheticTests {
    /// A release folder with a handwritten index and real compressed module files.
    final class Fixture {
        let root: URL
        let folder: URL
        static let release = "9.9.9-test"
        static let payload: [String: Data] = [
            "alpha": Data("\u{7F}ELF alpha module".utf8),
            "beta_mod": Data("\u{7F}ELF beta module, gzip".utf8),
            "gamma": Data("\u{7F}ELF gamma, plain".utf8),
            "delta": Data("\u{7F}ELF delta, zstd".utf8),
        ]

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("gk-modules-\(UUID().uuidString)")
            folder = root.appendingPathComponent(Self.release)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try """
            kernel/a/alpha.ko.xz: kernel/b/beta-mod.ko.gz kernel/c/gamma.ko
            kernel/b/beta-mod.ko.gz: kernel/c/gamma.ko
            kernel/c/gamma.ko:
            kernel/d/delta.ko.zst: kernel/c/gamma.ko
            kernel/cycle/one.ko: kernel/cycle/two.ko
            kernel/cycle/two.ko: kernel/cycle/three.ko
            kernel/cycle/three.ko: kernel/cycle/one.ko
            kernel/e/ghost.ko:
            kernel/f/uses-cycle.ko: kernel/cycle/one.ko

            """.write(to: folder.appendingPathComponent("modules.dep"), atomically: true, encoding: .utf8)
            try """
            kernel/fs/ext4/ext4.ko
            kernel/drivers/virtio/virtio-pci.ko

            """.write(to: folder.appendingPathComponent("modules.builtin"), atomically: true, encoding: .utf8)
            try write("kernel/a/alpha.ko.xz", Self.payload["alpha"]!, compressedWith: "xz")
            try write("kernel/b/beta-mod.ko.gz", Self.payload["beta_mod"]!, compressedWith: "gzip")
            try write("kernel/c/gamma.ko", Self.payload["gamma"]!, compressedWith: nil)
            try write("kernel/d/delta.ko.zst", Self.payload["delta"]!, compressedWith: "zstd")
            for name in ["one", "two", "three"] {
                try write("kernel/cycle/\(name).ko", Data(), compressedWith: nil)
            }
            try write("kernel/f/uses-cycle.ko", Data(), compressedWith: nil)
            // ghost.ko is listed but never written.
        }

        deinit { try? FileManager.default.removeItem(at: root) }

        private func write(_ path: String, _ contents: Data, compressedWith tool: String?) throws {
            let url = folder.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard let tool else { return try contents.write(to: url) }
            let plain = url.deletingPathExtension()
            try contents.write(to: plain)
            try TestProcess.capture(["/usr/bin/\(tool)"] + (tool == "zstd" ? ["-q", "--rm", "-f", plain.path] : ["-f", plain.path]))
        }
    }

    @Test("compressed and plain dependencies resolve dependencies first, with their compression")
    func chain() throws {
        let fixture = try Fixture()
        let modules = try ModuleIndex(modulesDirectory: fixture.folder).resolve(["alpha"])
        #expect(modules.map(\.name) == ["gamma", "beta_mod", "alpha"])
        #expect(modules.map(\.compression) == [nil, .gzip, .xz])
        #expect(modules.map(\.relativePath) == ["kernel/c/gamma.ko", "kernel/b/beta-mod.ko.gz", "kernel/a/alpha.ko.xz"])
        for module in modules {
            #expect(module.path == fixture.folder.appendingPathComponent(module.relativePath).standardizedFileURL)
        }
    }

    @Test("shared dependencies appear once, in the order names were asked for")
    func shared() throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        #expect(try index.resolve(["delta", "alpha", "gamma", "beta-mod"]).map(\.name) == ["gamma", "delta", "beta_mod", "alpha"])
    }

    @Test("a compressed module decompresses to its original bytes", arguments: ["alpha", "beta_mod", "gamma", "delta"])
    func decompresses(name: String) throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        let module = try #require(try index.resolve([name]).last)
        #expect(try index.loadDecompressed(module) == Fixture.payload[name])
    }

    @Test("built-in modules need no file and are listed apart")
    func builtin() throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        let resolution = try index.resolution(of: ["ext4", "gamma", "virtio_pci", "ext4"])
        #expect(resolution.builtin == ["ext4", "virtio_pci"])
        #expect(resolution.modules.map(\.name) == ["gamma"])
        #expect(try index.resolve(["virtio-pci"]).isEmpty)
        #expect(index.isBuiltin("virtio-pci") && !index.contains("virtio_pci"))
    }

    @Test("a missing module is an error naming it, the release folder and the fix")
    func missing() throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        #expect(throws: ModuleIndex.Error.moduleNotFound(
            "nosuch", release: Fixture.release, directory: fixture.folder.standardizedFileURL, similar: []))
        {
            try index.resolve(["gamma", "nosuch"])
        }
        let message = ModuleIndex.Error.moduleNotFound(
            "nosuch", release: Fixture.release, directory: fixture.folder, similar: []).description
        #expect(message.contains("\"nosuch\"") && message.contains(Fixture.release) && message.contains(fixture.folder.path))
        #expect(message.contains("linux-image-\(Fixture.release)"))
    }

    @Test("a module listed in modules.dep whose file is gone is an error with its path")
    func fileGone() throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        #expect(throws: ModuleIndex.Error.moduleFileMissing(
            "ghost", path: fixture.folder.standardizedFileURL.appendingPathComponent("kernel/e/ghost.ko"),
            release: Fixture.release))
        {
            try index.resolve(["ghost"])
        }
    }

    @Test("a dependency cycle is an error naming the ring, not an endless loop", arguments: ["one", "uses-cycle"])
    func cycle(name: String) throws {
        let fixture = try Fixture()
        let index = try ModuleIndex(modulesDirectory: fixture.folder)
        #expect(throws: ModuleIndex.Error.dependencyCycle(["one", "two", "three", "one"], release: Fixture.release)) {
            try index.resolve([name])
        }
    }

    @Test("a missing release folder, a missing modules.dep and a malformed line are typed errors")
    func brokenFolders() throws {
        let fixture = try Fixture()
        let absent = fixture.root.appendingPathComponent("0.0.0-absent")
        #expect(throws: ModuleIndex.Error.modulesDirectoryMissing(absent.standardizedFileURL)) {
            try ModuleIndex(modulesDirectory: absent)
        }
        let bare = fixture.root.appendingPathComponent("1.0.0-bare")
        try FileManager.default.createDirectory(at: bare, withIntermediateDirectories: true)
        #expect(throws: ModuleIndex.Error.indexMissing(bare.standardizedFileURL.appendingPathComponent("modules.dep"))) {
            try ModuleIndex(kernelRelease: "1.0.0-bare", modulesRoot: fixture.root)
        }
        try "kernel/ok.ko:\nthis line has no colon\n".write(
            to: bare.appendingPathComponent("modules.dep"), atomically: true, encoding: .utf8)
        #expect(throws: ModuleIndex.Error.self) { try ModuleIndex(modulesDirectory: bare) }
        #expect {
            try ModuleIndex(modulesDirectory: bare)
        } throws: { error in
            guard case .malformedIndex(_, let line, _) = error as? ModuleIndex.Error else { return false }
            return line == 2
        }
    }

    @Test("a missing decompressor is reported with its Debian package", arguments: Compression.allCases)
    func missingTool(format: Compression) {
        let message = DecompressionError.toolMissing(format).description
        #expect(message.contains("`\(format.tool)`") && message.contains("install the package that ships it (Debian and Ubuntu: \(format.debianPackage))"))
    }

    @Test("canonical names drop folders and module suffixes and use underscores", arguments: [
        ("kernel/net/9p/9pnet_virtio.ko.zst", "9pnet_virtio"), ("virtio-mmio", "virtio_mmio"),
        ("amd-uncore.ko", "amd_uncore"), ("fuse.ko.xz", "fuse"), ("x.ko.gz", "x"),
    ])
    func canonical(input: String, expected: String) {
        #expect(ModuleIndex.canonicalName(input) == expected)
    }
}
