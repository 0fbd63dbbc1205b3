/// The key that leaves a console: Ctrl-] (byte 0x1d), as in telnet, `virsh console` and
/// `docker attach`'s habit of a control key nobody types by accident. `launch console`
/// detaches on it (the VM keeps running); the foreground `launch run` console stops the VM
/// through the shutdown ladder on it. Every other byte, Ctrl-C included, goes to the guest.
enum EscapeKey {
    /// The byte the terminal sends for Ctrl-].
    static let byte: UInt8 = 0x1d
    /// How help texts and messages name it.
    static let name = "Ctrl-]"

    /// The bytes of `chunk` to send on, and whether the escape key came (what follows it is dropped).
    static func split(_ chunk: ArraySlice<UInt8>) -> (send: ArraySlice<UInt8>, escaped: Bool) {
        guard let index = chunk.firstIndex(of: byte) else { return (chunk, false) }
        return (chunk[chunk.startIndex..<index], true)
    }
}
