/// Restoring a saved guest in a new QEMU (warm start): the argv words that load a state
/// file QMP `migrate` wrote, passed as an open fd. Pure.
package enum IncomingState {
    /// QEMU's fd for the state file (3 is the launcher's QMP connection).
    package static let fileDescriptor: Int32 = 4

    /// `-incoming fd:N`: QEMU 7.2 loads a regular file through a passed fd (seen here), so the
    /// launcher opens the state file itself: a snapshot replaced or evicted meanwhile can't be
    /// swapped under the run, and no shell runs `cat`. With `-S` the guest stays paused once
    /// loaded; `cont` sent while it loads makes it run as soon as it is in.
    package static func arguments(fileDescriptor: Int32) -> [String] {
        ["-incoming", "fd:\(fileDescriptor)"]
    }
}
