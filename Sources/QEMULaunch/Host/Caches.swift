import Foundation
import LaunchSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where the launcher keeps what it can rebuild: guest-kit images, extracted
/// kernels, the KVM verdict, QEMU capabilities.
/// `$LAUNCH_CACHE_DIR`, else `$XDG_CACHE_HOME/qemu-launch`, else `~/.cache/qemu-launch`.
package enum CacheDirectory {
    package static var root: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["LAUNCH_CACHE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("qemu-launch") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/qemu-launch")
    }
}

/// A small JSON dictionary kept in one cache file. Unreadable or stale content
/// reads as empty (the caller probes again); writes go through a temporary file
/// and a rename, so concurrent launchers never read half a file.
struct JSONFileCache<Value: Codable> {
    let file: URL

    init(named name: String) {
        file = CacheDirectory.root.appendingPathComponent(name)
    }

    func read() -> [String: Value] {
        guard let data = try? Data(contentsOf: file) else { return [:] }
        return (try? JSONDecoder().decode([String: Value].self, from: data)) ?? [:]
    }

    func store(_ value: Value, forKey key: String) {
        var all = read()
        all[key] = value
        guard let data = try? JSONEncoder().encode(all) else { return }
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? AtomicFile.write(data, to: file.path)
    }
}
