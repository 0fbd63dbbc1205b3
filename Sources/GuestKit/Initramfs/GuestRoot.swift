import Foundation
import QEMULaunch

/// The guest's root filesystem (`"rootfs"`), guest side: pure functions that produce the
/// busybox `sh` the guest kit's init runs. The init stays in the initramfs and in charge;
/// the root is mounted at `/launch/root` and every command enters it with `chroot`.
///
/// The init's contract (the current one-command init and the session init alike):
///
/// 1. After the modules are loaded (`modules` below among them) and before the first
///    command, with `launch_fail MESSAGE` defined (report and power off), evaluate
///    `functions` then `bootLines` once. They mount the root, its scratch tmpfs and
///    overlays, rwdirs and shares, and `/proc`, `/sys`, `/dev` inside it.
/// 2. Run each command as `in_root CWD NAME=VALUE... -- ARGV...` (`command(...)` quotes
///    one), with the command's stdin/stdout/stderr already redirected. `in_root` never
///    returns: it `exec`s `env -i chroot /launch/root SH -c ...`, which cds to CWD, exports
///    exactly the given variables and `exec`s ARGV, so the pid the init recorded is the
///    command's and its exit code is the command's own (127 when ARGV is not found, 2 from
///    the root's sh when CWD can't be entered).
///
/// Layout in the initramfs: `/launch/root` (the root the command sees), `/launch/lower`
/// (the root as served, with nothing mounted over it: where a working directory hidden by
/// a scratch tmpfs is bound from), `/launch/rw` (one tmpfs holding every overlay's upper
/// and work folders). Nothing here writes the served root: a host or folder root is
/// mounted `ro` and is read-only on the host as well (see `Plan.ReadOnlyView`).
package struct GuestRoot: Sendable, Hashable {
    package enum Source: Sendable, Hashable {
        /// A host folder (or `/`) served read-only under the mount tag `tag`.
        case share(tag: String, transport: Profile.ShareTransport)
        /// A disk partition found by its filesystem's UUID (`findfs`), mounted `ro` when `readOnly`.
        case partition(uuid: String, filesystem: String, readOnly: Bool)
    }

    /// A folder mounted into the root at `path` from a share (rwdirs, the profile's shares).
    package struct Mount: Sendable, Hashable {
        package var tag: String
        package var path: String
        package var readOnly: Bool
        package var transport: Profile.ShareTransport
    }

    package var source: Source
    /// A tmpfs overlay over the whole root: everything writable, nothing kept.
    package var overlayAll: Bool
    /// Empty tmpfs where programs expect scratch space (only those the root has).
    package var scratch: [String] = ["/tmp", "/run", "/var/tmp"]
    /// tmpfs overlays where programs write over existing files (only those the root has;
    /// none when `overlayAll` or a writable disk root makes the whole root writable).
    package var overlays: [String] = ["/etc", "/var/lib", "/var/cache", "/var/log", "/root"]
    /// rwdirs then the profile's shares, mounted over everything else, in order.
    package var mounts: [Mount] = []
    /// The first command's working directory: exposed (`root_expose`) at boot, before the
    /// mounts, so an rwdir or share below it lands on the host's folder, not on a scratch tmpfs.
    package var workingDirectory: String?

    package init(source: Source, overlayAll: Bool = false, scratch: [String]? = nil, overlays: [String]? = nil, mounts: [Mount] = []) {
        self.source = source
        self.overlayAll = overlayAll
        if let scratch { self.scratch = scratch }
        if let overlays { self.overlays = overlays }
        self.mounts = mounts
    }

    package static let root = "/launch/root"
    package static let lower = "/launch/lower"
    package static let rw = "/launch/rw"
    /// The mount tag of a host or folder root, and of the rwdirs (`launch.rw0`, ...).
    package static let rootTag = "launch.root"
    package static func rwdirTag(_ index: Int) -> String { "launch.rw\(index)" }

    /// The kernel modules these lines need besides the share transport's.
    package var modules: [String] {
        var modules: [String] = []
        let needsOverlay: Bool
        switch source {
        case .share: needsOverlay = true
        case .partition(_, let filesystem, let readOnly):
            // ext4, jbd2 and btrfs checksum with crc32c through the crypto API: a soft dependency
            // (modules.softdep), not in modules.dep ("EXT4-fs: Cannot load crc32c driver").
            if filesystem == "ext4" || filesystem == "btrfs" { modules.append("crc32c_generic") }
            modules.append(filesystem)
            needsOverlay = overlayAll || readOnly
        }
        if needsOverlay { modules.append("overlay") }
        return modules
    }

    /// Shell functions `bootLines` and each command use: define once, before both.
    package static let functions = #"""
# in_root CWD NAME=VALUE... -- ARGV...: run ARGV in the guest's root (never returns).
# A working directory the root hides under a scratch tmpfs (a host cwd under /tmp) is
# bound from the served root first, read-only like it.
in_root() {
  _cwd=$1
  shift
  root_expose "$_cwd"
  # env -i: only the variables given; the root's own sh does the cd, the exports and the exec.
  # setsid: the command leads its own session, so a signal to its group reaches its children.
  exec setsid env -i chroot /launch/root "$launch_root_sh" -c 'cd "$1" || exit 2; shift; while [ $# -gt 0 ] && [ "$1" != -- ]; do export "$1"; shift; done; shift; exec "$@"' launch "$_cwd" "$@"
}
# root_expose DIR: a folder of the served root that the root hides under a scratch tmpfs (a
# host cwd under /tmp) is bound in from /launch/lower, read-only like the rest. Not the scratch
# folders themselves (mount points), and nothing already bound or mounted.
root_expose() {
  [ -d "/launch/lower$1" ] || return 0
  if [ -d "/launch/root$1" ]; then
    [ "$(stat -f -c %T "/launch/root$1" 2>/dev/null)" = tmpfs ] || return 0
    mountpoint -q "/launch/root$1" && return 0
  fi
  mkdir -p "/launch/root$1" 2>/dev/null && mount --bind "/launch/lower$1" "/launch/root$1"
}
# root_mount_over DIR [overlay|tmpfs MODE]: a tmpfs, or a tmpfs-backed overlay, over DIR of the root.
launch_root_n=0
root_mount_over() {
  [ -d "/launch/root$1" ] || return 0
  if [ "$2" = tmpfs ]; then
    mount -t tmpfs -o "mode=$3" tmpfs "/launch/root$1" || launch_fail "mounting a tmpfs on $1 in the root failed"
  else
    launch_root_n=$((launch_root_n+1))
    mkdir -p "/launch/rw/$launch_root_n/upper" "/launch/rw/$launch_root_n/work"
    # Best effort: a folder the server can't read (9p as a user: /root) stays as it is, read-only.
    mount -t overlay overlay -o "lowerdir=/launch/root$1,upperdir=/launch/rw/$launch_root_n/upper,workdir=/launch/rw/$launch_root_n/work" "/launch/root$1" 2>/dev/null || { echo "launch-init: rootfs: no overlay on $1 (not readable by the file server?): it stays read-only" > /dev/console; return 1; }
  fi
}
# root_make_dir DIR: DIR in the root, made if missing. In a read-only part of the root, the
# nearest folder that exists (not / itself) gets a tmpfs overlay first (a share's guestPath
# like /mnt/shared that the host's /mnt lacks).
root_make_dir() {
  [ -d "/launch/root$1" ] && return 0
  mkdir -p "/launch/root$1" 2>/dev/null && return 0
  _a=${1%/*}
  while [ -n "$_a" ] && [ ! -d "/launch/root$_a" ]; do _a=${_a%/*}; done
  [ -n "$_a" ] && root_mount_over "$_a" overlay && mkdir -p "/launch/root$1"
}
"""#

    /// The lines to run once at boot: mount the root and everything in it.
    package var bootLines: [String] {
        let q = QEMUSyntax.shellQuote
        var lines = ["mkdir -p /launch/root /launch/lower /launch/rw",
                     // One tmpfs for every overlay's upper and work folders (an overlay's upper
                     // and work must be on the same filesystem).
                     "mount -t tmpfs -o mode=0755 tmpfs /launch/rw"]
        // Where the root as served goes: straight to /launch/root, or under a whole-root overlay.
        let target = overlayAll ? Self.lower : Self.root
        var rootWritable = overlayAll
        switch source {
        case .share(let tag, let transport):
            let failure = q("mounting the root filesystem (\(transport.rawValue) tag \(tag)) failed")
            switch transport {
            case .virtiofs:
                lines.append("mount -t virtiofs -o ro \(q(tag)) \(target) || launch_fail \(failure)")
            case .ninep, .auto:
                // (`auto` never gets here: prepare resolved it.)
                // cache=loose: a read-only root changes under the guest only when the host's
                // own files change; without a cache every exec and stat is a round trip.
                lines.append("mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro \(q(tag)) \(target) || launch_fail \(failure)")
            }
        case .partition(let uuid, let filesystem, let readOnly):
            rootWritable = rootWritable || !readOnly
            // The partition's node appears once virtio_blk has probed and read the table.
            lines.append("i=0; while ! dev=$(findfs UUID=\(q(uuid)) 2>/dev/null) && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done")
            lines.append("[ -n \"$dev\" ] || launch_fail \(q("no partition with filesystem UUID \(uuid) appeared (is virtio_blk loaded?)"))")
            // Under a whole-root overlay the partition itself is only read. noload: an ext4 on a
            // read-only disk can't replay its journal (the mount would fail); read as it is.
            let mode = readOnly || overlayAll ? (filesystem == "ext4" ? "ro,noload" : "ro") : "rw"
            lines.append("mount -t \(q(filesystem)) -o \(mode) \"$dev\" \(target) || launch_fail \(q("mounting the root partition (\(filesystem)) failed"))")
        }
        if overlayAll {
            lines.append("mkdir -p /launch/rw/root/upper /launch/rw/root/work")
            lines.append("mount -t overlay overlay -o lowerdir=/launch/lower,upperdir=/launch/rw/root/upper,workdir=/launch/rw/root/work /launch/root || launch_fail \(q("mounting the overlay over the root failed (is the overlay module loaded?)"))")
        } else {
            // The root as served, with nothing over it, for in_root's hidden working directories.
            lines.append("mount --bind /launch/root /launch/lower")
        }
        // What the root's programs expect: its own /proc, /sys and /dev (the init's devtmpfs,
        // its devpts and the virtio-ports links, recursively).
        lines.append("[ -d /launch/root/proc ] && mount -t proc proc /launch/root/proc")
        lines.append("[ -d /launch/root/sys ] && mount -t sysfs sysfs /launch/root/sys")
        lines.append("[ -d /launch/root/dev ] && mount --rbind /dev /launch/root/dev && [ -d /launch/root/dev/shm ] && mount -t tmpfs -o mode=1777 tmpfs /launch/root/dev/shm")
        for dir in scratch {
            lines.append("root_mount_over \(q(dir)) tmpfs \(dir.hasSuffix("tmp") ? "1777" : "0755")")
        }
        if !rootWritable {
            for dir in overlays where !dir.contains(",") && !dir.contains(":") {
                // overlayfs splits lowerdir on ':' and its options on ','.
                lines.append("root_mount_over \(q(dir)) overlay")
            }
        }
        if let cwd = workingDirectory { lines.append("root_expose \(q(cwd))") }
        for mount in mounts {
            let dir = Self.root + mount.path
            let options: String
            switch mount.transport {
            case .virtiofs: options = "-t virtiofs" + (mount.readOnly ? " -o ro" : "")
            case .ninep, .auto: options = "-t 9p -o trans=virtio,version=9p2000.L,msize=262144" + (mount.readOnly ? ",ro" : "")
            }
            let failure = "mounting \(mount.tag) at \(mount.path) in the root failed (a top-level folder the read-only root lacks can't be made: pick a path under an existing folder, or use the root overlay)"
            lines.append("root_make_dir \(q(mount.path)) && mount \(options) \(q(mount.tag)) \(q(dir)) || launch_fail \(q(failure))")
        }
        // The shell in_root starts the command with: the root's own, or the initramfs's
        // busybox bound into the root's /run for a root without one (a bare container image).
        lines.append("launch_root_sh=/bin/sh")
        lines.append("if [ ! -x /launch/root/bin/sh ]; then if [ -d /launch/root/run ] && touch /launch/root/run/.launch-sh && mount --bind /bin/busybox /launch/root/run/.launch-sh; then launch_root_sh=/run/.launch-sh; else launch_fail \(q("the root has no /bin/sh (and no /run to put one in)")); fi; fi")
        return lines
    }

    /// `in_root CWD NAME=VALUE... -- ARGV...`, quoted for the init's shell.
    package static func command(workingDirectory: String, environment: [(String, String)], argv: [String]) -> String {
        let q = QEMUSyntax.shellQuote
        var words = ["in_root", q(workingDirectory)]
        words += environment.map { q("\($0.0)=\($0.1)") }
        words.append("--")
        words += argv.map(q)
        return words.joined(separator: " ")
    }

    /// The host variables a host-root command gets (as virtme-ng passes the user's): the
    /// user's PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, every LC_*, TERM, COLORTERM
    /// and TZ, when set. Names that aren't shell identifiers are left out.
    package static func hostEnvironment(_ environment: [String: String]) -> [(String, String)] {
        let names = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "COLORTERM", "TZ"]
        return environment.filter { names.contains($0.key) || $0.key.hasPrefix("LC_") }
            .filter { isIdentifier($0.key) }
            .sorted { $0.key < $1.key }
            .map { ($0.key, $0.value) }
    }

    /// A foreign root's (folder, disk) environment: its own conventional PATH, not the host's.
    package static func foreignEnvironment(_ environment: [String: String]) -> [(String, String)] {
        var env = hostEnvironment(environment).filter { !["PATH", "HOME", "SHELL", "USER", "LOGNAME"].contains($0.0) }
        env.append(("HOME", "/root"))
        env.append(("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        return env.sorted { $0.0 < $1.0 }
    }

    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}
