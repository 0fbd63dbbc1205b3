/// QEMU's gdb stub, for debugging the guest kernel with gdb.
public struct GDBStub: Sendable, Hashable, Codable {
    /// The port `qemu -s` uses, and gdb users expect.
    public static let defaultPort = 1234

    /// The TCP port on 127.0.0.1 the stub listens on.
    public var port: Int
    /// Hold the vCPUs at the guest's first instruction until the debugger continues
    /// (the launcher then never sends QMP `cont`); false lets the guest run at once.
    public var waitForDebugger: Bool

    /// A stub on 127.0.0.1:`port`, holding the vCPUs for the debugger unless `waitForDebugger` is false.
    public init(port: Int = GDBStub.defaultPort, waitForDebugger: Bool = true) {
        self.port = port
        self.waitForDebugger = waitForDebugger
    }

    /// `-gdb`'s value: loopback only, since the stub can read and write all guest memory.
    public var qemuArgument: String { "tcp:127.0.0.1:\(port)" }

    /// The command that attaches gdb: `gdb VMLINUX -ex 'target remote 127.0.0.1:PORT'`;
    /// without a vmlinux that has symbols, plain `gdb -ex ...`.
    public func attachCommand(symbols: String?) -> String {
        let target = "-ex 'target remote 127.0.0.1:\(port)'"
        guard let symbols else { return "gdb \(target)" }
        return "gdb \(QEMUSyntax.shellQuote(symbols)) \(target)"
    }
}
