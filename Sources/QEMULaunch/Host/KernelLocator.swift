import Foundation
import Logging

/// Finds the kernel `"kernel": "auto"` means.
public enum KernelLocator {
    /// How to get a kernel for `"kernel": "auto"`: the package each distribution family names.
    package static let installFix = "install a kernel package (Debian: linux-image-amd64 or linux-image-arm64; Ubuntu: linux-image-generic; Fedora: kernel)"

    /// The newest `vmlinuz-*` in `folder` by version order, with its release.
    public static func newest(in folder: String = "/boot") -> (path: String, release: String)? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let releases = names.filter { $0.hasPrefix("vmlinuz-") }.map { String($0.dropFirst("vmlinuz-".count)) }
        guard let best = releases.max(by: { compareVersions($0, $1) < 0 }) else { return nil }
        return ("\(folder)/vmlinuz-\(best)", best)
    }

    /// Compares "6.1.0-56-amd64" and "6.10.2-1" piecewise, numbers as numbers.
    static func compareVersions(_ a: String, _ b: String) -> Int {
        func pieces(_ s: String) -> [String] {
            s.split(whereSeparator: { ".-_+~".contains($0) }).map(String.init)
        }
        let pa = pieces(a), pb = pieces(b)
        for (x, y) in zip(pa, pb) where x != y {
            if let nx = Int(x), let ny = Int(y) { return nx < ny ? -1 : 1 }
            return x < y ? -1 : 1
        }
        return pa.count == pb.count ? 0 : (pa.count < pb.count ? -1 : 1)
    }
}

extension Profile {
    /// The same profile with `"kernel": "auto"` resolved to the newest /boot/vmlinuz-*.
    package func resolvingAutoKernel(logger: Logger) throws(LaunchError) -> Profile {
        guard kernel == "auto" else { return self }
        guard let newest = KernelLocator.newest() else {
            throw LaunchError(.hostProblem, "\"kernel\": \"auto\" found no /boot/vmlinuz-*",
                              fix: KernelLocator.installFix + " or give a kernel path")
        }
        logger.info("kernel: \(newest.path) (auto: newest in /boot)")
        var copy = self
        copy.kernel = newest.path
        return copy
    }
}
