import Foundation
import LaunchSupport
import Logging
import QEMULaunch

/// Under TCG, most of a bzImage boot is the guest decompressing its own kernel
/// (about 6 of 10 s measured with Debian's 6.1 kernel on QEMU 7.2). The ELF
/// inside boots directly through its PVH entry. This extracts it once per
/// kernel file and caches it.
enum FastBoot {
    /// The cached vmlinux for `kernel`, extracting it on first use; nil (with the
    /// reason logged) when the kernel can't boot that way.
    static func vmlinux(for kernel: String, logger: Logger) -> URL? {
        var fingerprint = Fingerprint()
        fingerprint.add("vmlinux-1")
        fingerprint.add(file: kernel)
        let cached = CacheDirectory.root.appendingPathComponent("vmlinux/\(fingerprint.hex)/vmlinux")
        if FileManager.default.fileExists(atPath: cached.path) { return cached }
        let started = ContinuousClock.now
        do {
            let image = try KernelImage.extractVmlinux(fromBzImage: URL(fileURLWithPath: kernel), to: cached)
            let took = formatDuration(started.duration(to: .now))
            logger.info("fast boot: extracted the PVH vmlinux from \(kernel) in \(took) (cached at \(cached.path))",
                        metadata: ["kernel.format": .string(image.format.description)])
            return cached
        } catch {
            logger.info("fast boot: not used: \(error)")
            return nil
        }
    }
}
