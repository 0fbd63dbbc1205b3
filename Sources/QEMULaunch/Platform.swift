// QEMULaunch (and GuestKit and `launch`, which build on it) runs on Linux only: it
// spawns through a shim built on PR_SET_PDEATHSIG and vfork, reads /proc and /dev/kvm,
// and uses Glibc-only calls (st_mtim, pipe2, __rlimit_resource_t). macOS (HVF, with a
// probe like the KVM one) is a plan, not a claim: say so at build time rather than with
// a page of errors. The QMP module has no such dependency.
#if !os(Linux)
#error("QEMULaunch builds on Linux only; macOS support is planned (see README \"Platforms\")")
#endif
