import Foundation
import Testing
@testable import GuestKit
import QEMULaunch

@Suite("GuestRoot: the shell that mounts a root filesystem and runs commands in it")
struct GuestRootTests {
    @Test("a command is in_root CWD NAME=VALUE... -- ARGV, each word quoted")
    func commandQuoting() {
        let line = GuestRoot.command(workingDirectory: "/home/me/my proj", environment: [("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8")],
                                     argv: ["./t", "it's", "$HOME"])
        #expect(line == #"in_root '/home/me/my proj' PATH=/usr/bin:/bin LANG=C.UTF-8 -- ./t 'it'\''s' '$HOME'"#)
    }

    @Test("the host environment passed in is the documented list, LC_* included, nothing else")
    func hostEnvironment() {
        let env = GuestRoot.hostEnvironment(["PATH": "/bin", "HOME": "/root", "LC_TIME": "C", "SECRET_TOKEN": "x", "LANG": "C", "BAD-NAME": "y", "TERM": "xterm"])
        #expect(env.map(\.0) == ["HOME", "LANG", "LC_TIME", "PATH", "TERM"])
        let foreign = GuestRoot.foreignEnvironment(["PATH": "/home/me/bin", "HOME": "/home/me", "LANG": "C"])
        #expect(foreign.map(\.0) == ["HOME", "LANG", "PATH"])
        #expect(foreign.first { $0.0 == "HOME" }?.1 == "/root")
    }

    @Test("a host root is mounted read-only, with scratch tmpfs, overlays, the cwd exposed before the mounts, then shares")
    func hostBootLines() {
        var root = GuestRoot(source: .share(tag: GuestRoot.rootTag, transport: .virtiofs),
                             mounts: [GuestRoot.Mount(tag: "launch.rw0", path: "/tmp/w/out", readOnly: false, transport: .virtiofs)])
        root.workingDirectory = "/tmp/w"
        let lines = root.bootLines
        #expect(lines.contains("mount -t virtiofs -o ro launch.root /launch/root || launch_fail 'mounting the root filesystem (virtiofs tag launch.root) failed'"))
        #expect(lines.contains("root_mount_over /tmp tmpfs 1777"))
        #expect(lines.contains("root_mount_over /etc overlay"))
        let expose = lines.firstIndex(of: "root_expose /tmp/w")
        let mount = lines.firstIndex { $0.contains("launch.rw0") }
        #expect(expose != nil && mount != nil && expose! < mount!)
        #expect(root.modules == ["overlay"])
    }

    @Test("a whole-root overlay puts the served root under /launch/lower and needs no per-folder overlays")
    func overlayAll() {
        let lines = GuestRoot(source: .share(tag: "launch.root", transport: .ninep), overlayAll: true).bootLines
        #expect(lines.contains { $0.hasPrefix("mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro launch.root /launch/lower") })
        #expect(lines.contains { $0.hasPrefix("mount -t overlay overlay -o lowerdir=/launch/lower,") })
        #expect(!lines.contains { $0.hasSuffix(" overlay") && $0.hasPrefix("root_mount_over") })
    }

    @Test("a disk root is found by filesystem UUID and loads its filesystem's modules (crc32c first for ext4)")
    func diskRoot() {
        let root = GuestRoot(source: .partition(uuid: "0123", filesystem: "ext4", readOnly: false))
        #expect(root.modules == ["crc32c_generic", "ext4"])
        #expect(root.bootLines.contains { $0.contains("findfs UUID=0123") })
        #expect(root.bootLines.contains { $0.hasPrefix("mount -t ext4 -o rw ") })
        let readOnly = GuestRoot(source: .partition(uuid: "0123", filesystem: "ext4", readOnly: true))
        #expect(readOnly.modules == ["crc32c_generic", "ext4", "overlay"])
        #expect(readOnly.bootLines.contains { $0.hasPrefix("mount -t ext4 -o ro,noload ") })
    }

    @Test("a host root goes over 9p, said in the rootfs line's words, where virtiofs can't serve: no virtiofsd, or the C one without root")
    func transportFallback() throws {
        var host = HostProbe.current()
        for (virtiofsd, isRoot, expected) in [(VirtiofsdBinary?.none, true, Profile.ShareTransport.ninep),
                                             (VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC), false, .ninep),
                                             (VirtiofsdBinary(path: "/usr/lib/qemu/virtiofsd", flavor: .legacyC), true, .virtiofs)] {
            host.virtiofsd = virtiofsd
            host.isRoot = isRoot
            var profile = Profile(name: "r")
            profile.command = ["true"]
            let made = try GuestKit.rootSetup(&profile, Profile.RootFS(.host, rwdirs: ["/tmp"]), arch: .x86_64, host: host, options: GuestKit.Options())
            #expect(profile.shares.map(\.transport) == [expected, expected])
            #expect(made.guestRoot.source == .share(tag: GuestRoot.rootTag, transport: expected))
            // An explicit transport is kept as asked.
            var explicit = Profile(name: "r")
            explicit.command = ["true"]
            _ = try GuestKit.rootSetup(&explicit, Profile.RootFS(.host, transport: .virtiofs), arch: .x86_64, host: host, options: GuestKit.Options())
            #expect(explicit.shares.map(\.transport) == [.virtiofs])
        }
    }

    @Test("the boot setup with a root defines launch_fail (an \"error -\" report) and the functions, and runs no command")
    func setupScript() {
        var profile = Profile(name: "r")
        profile.command = ["./t"]
        let root = GuestKit.GuestRootCommand(root: GuestRoot(source: .share(tag: "launch.root", transport: .virtiofs)),
                                             workingDirectory: "/w", environment: [("PATH", "/bin")])
        let script = GuestKit.setupScript(profile: profile, laterModules: ["overlay"], root: root)
        #expect(script.contains("launch_fail() { echo \"error - $*\" >&5; poweroff -f; }"))
        #expect(script.contains("in_root() {"))
        #expect(!script.contains("set --"), "commands come later, one run request each")
    }
}
