import QEMULaunch

extension Planner {
    /// Looks at `profile`'s files now, then plans: the facts `Machine.prepare` would gather
    /// for a given host, without its kernel resolution or capability probe. The tests'
    /// fixture files (`GoldenFiles`) exist, so their profiles plan as on a real host.
    static func plan(_ profile: Profile, host: HostFacts, options: PlanOptions) throws(ProfileProblems) -> Plan {
        try plan(LaunchFacts(profile: profile, host: host, files: HostFiles.read(for: profile)), options: options)
    }
}
