import QEMULaunch

extension GuestKit {
    /// Whether a run restores a saved, booted guest instead of booting it (warm start).
    public enum SnapshotMode: String, Sendable, Hashable, CaseIterable {
        /// Restore the snapshot whose key matches this run; without one, boot and save one.
        case auto
        /// Always boot (today's behaviour).
        case off
        /// Boot, and save a new snapshot in place of the one there is.
        case refresh
    }
}

/// The pure decisions of warm start: which profiles can be saved and restored, and how
/// their shares are served so that they can.
///
/// The guest is saved just before it mounts its shares and runs anything (see `GuestInit`'s
/// park), because QEMU 7.2 refuses to migrate a vhost-user-fs device at all
/// (`vuf_vmstate.unmigratable`) and a virtio-9p device while its export is mounted
/// (v9fs_attach adds a migration blocker until the attach fid goes).
package enum WarmStart {
    /// `profile` (its `auto` shares not yet resolved) with every `auto` share served over 9p,
    /// and one line per share that says so.
    static func servingAutoSharesOver9p(_ profile: Profile) -> (profile: Profile, lines: [String]) {
        var profile = profile
        var lines: [String] = []
        for index in profile.shares.indices where profile.shares[index].transport == .auto {
            profile.shares[index].transport = .ninep
            lines.append("shares[\(index)] \"\(profile.shares[index].tag)\": 9p (warm start: QEMU 7.2 can't save a virtiofs device in a snapshot; an unmounted 9p device it can)")
        }
        return (profile, lines)
    }

    /// The plan's lines for `profile`'s shares when it warm-starts (`launch plan`): `auto` ones
    /// over 9p, said why; the others as the planner says.
    package static func shareChoices(_ profile: Profile, host: HostFacts) -> [Plan.Choice] {
        let served = servingAutoSharesOver9p(profile)
        let planned = Planner.resolvingShareTransports(served.profile, host: host).choices
        return profile.shares.indices.map { index in
            let topic = "shares[\(index)] \"\(profile.shares[index].tag)\""
            if profile.shares[index].transport == .auto {
                return Plan.Choice(topic: topic, value: "9p", reason: "warm start: QEMU 7.2 can't save a virtiofs device in a snapshot; an unmounted 9p device it can")
            }
            return planned.first { $0.topic == topic } ?? Plan.Choice(topic: topic, value: profile.shares[index].transport.rawValue, reason: "from the profile")
        }
    }

    /// Why `profile` can't warm-start, in one line; nil when it can. `session` is false for
    /// a console shell.
    static func blocker(_ profile: Profile, session: Bool, options: GuestKit.Options) -> String? {
        if !session { return "a console shell is not a guest-kit session, which is what a snapshot saves" }
        if profile.initrd != nil { return "the profile boots its own initrd, not the guest kit's init, which is where a snapshot is taken" }
        if let index = profile.shares.firstIndex(where: { $0.transport == .virtiofs }) {
            return "shares[\(index)] \"\(profile.shares[index].tag)\" asks for virtiofs, which QEMU 7.2 can't save in a snapshot (vhost-user-fs is unmigratable); set its transport to auto or 9p to warm-start"
        }
        if !profile.disks.isEmpty { return "disks: a saved guest would remember a disk's blocks and caches from when it was saved, not the image as it is now" }
        if profile.rootfs != nil { return "rootfs: the root filesystem is mounted during the boot, and a mounted share or disk can't be saved" }
        if profile.network.mode != .none { return "network: the host side of user networking (slirp, its forwards) is not in a snapshot" }
        if options.gdb != nil { return "a gdb stub is attached from the first instruction" }
        return nil
    }
}
