/// One kernel configuration option a guest needs, and why.
///
/// The table of them is ``KernelRequirements``: `launch kconfig` prints it as a config
/// fragment, and the check before a boot compares a kernel's configuration with it.
public struct KernelOption: Sendable, Hashable {
    /// How much the guest depends on it.
    public enum Need: String, Sendable, Hashable {
        /// Without it the guest can't boot or can't run a command: the check fails the launch.
        case required
        /// Without it something is slower or missing (fast boot, the power button, kernel
        /// messages): the check warns and the launch goes on.
        case recommended
        /// Nice to have: in the fragment, not checked (the launch's initramfs line already
        /// names such a driver when the kernel has neither it nor its module).
        case optional
    }

    /// The symbol without `CONFIG_`, as Kconfig spells it: `VIRTIO_CONSOLE`.
    public var name: String
    /// Why the guest needs it, in one line (the fragment's comment).
    public var why: String
    /// The module that can stand in for it (`virtio_console`), when the guest kit loads it
    /// from the modules it is given; nil when it must be built in (`=y`).
    public var module: String?
    /// How much the guest depends on it: required (the launch fails), recommended (a warning) or optional (only in the fragment).
    public var need: Need

    /// The option `name` (without `CONFIG_`), how much it is needed, the module that can stand in, and why.
    public init(_ name: String, _ need: Need = .required, module: String? = nil, why: String) {
        self.name = name
        self.why = why
        self.module = module
        self.need = need
    }

    /// `CONFIG_NAME`.
    public var symbol: String { "CONFIG_" + name }
}
