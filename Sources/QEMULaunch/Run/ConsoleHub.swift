import Foundation
import LaunchSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Serves a running VM's serial console on a Unix socket (`console.sock`) to any number of
/// clients at once, from other processes: `launch console NAME` is one.
///
/// Every client that connects first gets one line of JSON, a ``Greeting`` (where the console
/// log is and the offset in it where the client's live bytes begin), then every console byte
/// from that moment on, raw. What a client sends is typed into the guest's serial console.
/// Clients come and go; none of them stops the VM, and the console is drained (by
/// ``ConsoleTap``) whether anyone is connected or not. A client that stops reading is
/// disconnected once it is ``maxBacklogBytes`` behind, so it can't hold the others up.
///
/// ```swift
/// let hub = try ConsoleHub.serve(console: machine.console, socketPath: folder + "/console.sock")
/// defer { hub.stop() }
/// ```
public final class ConsoleHub: Sendable {
    /// The socket clients connect to.
    public let socketPath: String
    /// How far (in bytes) a client may fall behind the console before it is disconnected.
    public static let maxBacklogBytes = 4 << 20

    /// The first line the hub sends a client (JSON): where the console's log is, and the
    /// byte offset in it where the live console bytes that follow begin. What comes before
    /// that offset is the scroll-back; nothing is in both.
    public struct Greeting: Codable, Sendable, Hashable {
        /// The console's log file (`console.log`).
        public var log: String
        /// The log's size when the client's live bytes began.
        public var logOffset: UInt64
        /// A greeting naming `log` and `logOffset`.
        public init(log: String, logOffset: UInt64) {
            self.log = log
            self.logOffset = logOffset
        }
    }

    private final class Client: Sendable {
        let fd: Int32
        let subscription: Mutex<Int?> = Mutex(nil)
        /// Bytes not yet sent; `ending` once the console closed (send the rest, then close).
        let state = Mutex<(pending: [UInt8], ending: Bool, overflowed: Bool)>(([], false, false))
        init(fd: Int32) { self.fd = fd }
    }

    private let console: ConsoleTap
    private let listener: Int32
    private let wake: (read: Int32, write: Int32)
    private let clients = Mutex<[Int32: Client]>([:])
    private let stopping = Atomic<Bool>(false)
    private let stopped = OneShot<Void>()

    private init(console: ConsoleTap, socketPath: String, listener: Int32, wake: (Int32, Int32)) {
        self.console = console
        self.socketPath = socketPath
        self.listener = listener
        self.wake = wake
    }

    /// Starts serving `console` at `socketPath` (a Unix socket, mode 0600; a stale socket
    /// file nobody answers on is replaced). Serves on a thread of its own until ``stop()``.
    /// Throws `.hostProblem` when the socket can't be made (path too long, already served).
    public static func serve(console: ConsoleTap, socketPath: String) throws(LaunchError) -> ConsoleHub {
        let listener: Int32
        switch POSIX.listeningSocket(path: socketPath) {
        case .success(let fd): listener = fd
        case .failure(let error):
            throw LaunchError(.hostProblem, "cannot serve the console at \(socketPath): \(error.text)",
                              fix: error.code == EADDRINUSE ? "another process serves this VM's console already: stop it first"
                                  : error.code == ENAMETOOLONG ? "use a shorter folder: Unix socket paths hold at most \(POSIX.unixPathLimit) bytes"
                                  : "check that the folder exists and is writable")
        }
        guard case .success(let pair) = POSIX.makeSocketPair() else {
            POSIX.closeFD(listener)
            unlink(socketPath)
            throw LaunchError(.internalError, "cannot make the console hub's wake channel: \(POSIX.Errno(POSIX.errno).text)")
        }
        _ = fcntl(pair.1, F_SETFL, fcntl(pair.1, F_GETFL) | O_NONBLOCK)
        let hub = ConsoleHub(console: console, socketPath: socketPath, listener: listener, wake: pair)
        guard startDetachedThread(name: "console-hub", { hub.serveLoop() }) else {
            hub.cleanUp()
            throw LaunchError(.internalError, "cannot start the console hub's thread: \(POSIX.Errno(POSIX.errno).text)")
        }
        return hub
    }

    /// How many clients are connected now.
    public var clientCount: Int { clients.withLock { $0.count } }

    /// Stops serving: disconnects every client, closes the socket and removes its file.
    /// Returns once the hub's thread has ended. Safe to call more than once.
    public func stop() async {
        if !stopping.exchange(true, ordering: .sequentiallyConsistent) { poke() }
        _ = await stopped.waitThroughCancellation()
    }

    private func poke() {
        var byte: UInt8 = 1
        _ = Glibc.send(wake.write, &byte, 1, POSIX.sendFlags)
    }

    private func serveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let watched = clients.withLock { Array($0.values) }
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            for client in watched {
                let wantsOut = client.state.withLock { !$0.pending.isEmpty || $0.ending || $0.overflowed }
                fds.append(pollfd(fd: client.fd, events: Int16(POLLIN) | (wantsOut ? Int16(POLLOUT) : 0), revents: 0))
            }
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents != 0 {
                _ = buffer.withUnsafeMutableBytes { Glibc.recv(wake.read, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            }
            if fds[0].revents & Int16(POLLIN) != 0, let fd = POSIX.accept(listener, nonBlocking: true) {
                admit(fd)
            }
            for (index, client) in watched.enumerated() {
                let events = fds[index + 2].revents
                if events == 0 { continue }
                var gone = events & Int16(POLLERR | POLLNVAL) != 0
                if !gone && events & Int16(POLLIN | POLLHUP) != 0 {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(client.fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        console.write(Array(buffer[0..<n]))
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        gone = true
                    }
                }
                if !gone { gone = !flush(client) }
                if gone { drop(client) }
            }
        }
        for client in clients.withLock({ Array($0.values) }) { drop(client) }
        cleanUp()
        stopped.resolve(())
    }

    /// A new client: subscribed to the console bytes from now on, greeted with where they begin.
    private func admit(_ fd: Int32) {
        let client = Client(fd: fd)
        clients.withLock { $0[fd] = client }
        let subscription = console.subscribeBytes(onData: { [self] bytes in
            let backlog = client.state.withLock { s -> Int in
                if s.overflowed { return 0 }
                s.pending.append(contentsOf: bytes)
                if s.pending.count > Self.maxBacklogBytes {
                    s.overflowed = true
                    s.pending = []
                }
                return s.pending.count
            }
            if backlog > 0 || client.state.withLock({ $0.overflowed }) { poke() }
        }, onEnd: { [self] in
            client.state.withLock { $0.ending = true }
            poke()
        })
        let greeting = Greeting(log: console.logPath, logOffset: subscription?.logOffset ?? logSize())
        var line = Array((try? JSONEncoder().encode(greeting)) ?? Data())
        line.append(UInt8(ascii: "\n"))
        client.state.withLock { s in
            s.pending.insert(contentsOf: line, at: 0)
            // The console has closed already (the VM ended): the greeting, then EOF.
            if subscription == nil { s.ending = true }
        }
        client.subscription.withLock { $0 = subscription?.id }
    }

    private func logSize() -> UInt64 {
        var info = stat()
        return stat(console.logPath, &info) == 0 ? UInt64(info.st_size) : 0
    }

    /// Sends what the client's socket takes now; false when the client is to be dropped.
    private func flush(_ client: Client) -> Bool {
        client.state.withLock { s in
            if s.overflowed { return false }
            while !s.pending.isEmpty {
                let result = s.pending.withUnsafeBytes { POSIX.sendNow(client.fd, $0) }
                switch result {
                case .failure: return false
                case .success(0): return true
                case .success(let n): s.pending.removeFirst(n)
                }
            }
            return !s.ending
        }
    }

    private func drop(_ client: Client) {
        if let id = client.subscription.withLock({ $0 }) { console.unsubscribeBytes(id) }
        clients.withLock { _ = $0.removeValue(forKey: client.fd) }
        POSIX.closeFD(client.fd)
    }

    private func cleanUp() {
        POSIX.closeFD(listener)
        unlink(socketPath)
        POSIX.closeFD(wake.read)
        POSIX.closeFD(wake.write)
    }
}
