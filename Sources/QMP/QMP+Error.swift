#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import LaunchSupport

extension QMP {
    /// Every way a QMP call can fail.
    ///
    /// Errors that end the connection (`disconnected`, `malformedMessage`,
    /// `lineTooLong`, `greetingTimeout`, `connectFailed`) are delivered to every
    /// call that was waiting; later calls get `.disconnected(cause:)`. Errors that
    /// concern one call (`commandFailed`, `timeout`, `eventTimeout`, `cancelled`)
    /// leave the connection open.
    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Hashable {
        /// `socket(2)` or `connect(2)` failed; `errno` is the system's error number.
        case connectFailed(path: String, errno: Int32)
        /// The socket path does not fit in `sockaddr_un` (107 bytes on Linux, 103 on macOS).
        case socketPathTooLong(path: String, limit: Int)
        /// The peer accepted the connection but sent no greeting in time.
        case greetingTimeout(Duration)
        /// The greeting was not a QMP greeting, or `qmp_capabilities` was rejected.
        case negotiationFailed(reason: String)
        /// QEMU answered the command with an error reply.
        case commandFailed(command: String, errorClass: String, description: String)
        /// No reply arrived before the command's deadline. The connection stays open;
        /// a late reply is ignored.
        case timeout(command: String, after: Duration)
        /// No matching event arrived before the deadline (`name` is nil for "any event").
        case eventTimeout(name: String?, after: Duration)
        /// The connection is gone: the peer closed or reset it, a read or write failed,
        /// or the client closed it.
        case disconnected(cause: String)
        /// The peer sent a line that is not a JSON object, or a reply of the wrong shape.
        /// A line that is not a JSON object ends the connection.
        case malformedMessage(reason: String, excerpt: String)
        /// The peer sent a line longer than `maxLineBytes`; the connection was closed.
        case lineTooLong(limit: Int)
        /// The task waiting for `operation` was cancelled. The connection stays open;
        /// a late reply is ignored.
        case cancelled(operation: String)

        /// What happened and how to fix it, in one or two sentences.
        public var description: String {
            switch self {
            case let .connectFailed(path, code):
                return "Could not connect to the QMP socket \(path): \(Self.explain(errno: code))"
            case let .socketPathTooLong(path, limit):
                return "The QMP socket path is \(path.utf8.count) bytes but Unix socket paths are limited to "
                    + "\(limit) bytes on this platform: \(path). Use a shorter runtime directory, "
                    + "for example one under /tmp."
            case let .greetingTimeout(after):
                return "The QMP peer accepted the connection but sent no greeting within \(formatDuration(after)). "
                    + "QEMU serves one client per -qmp socket at a time: another client may hold the monitor, "
                    + "or the socket is not a QMP monitor (check the -qmp / -chardev options), "
                    + "or QEMU is stuck starting up."
            case let .negotiationFailed(reason):
                return "QMP negotiation failed: \(reason). Check that the socket is a QMP monitor "
                    + "(-qmp or -mon mode=control), not an HMP monitor or a serial console."
            case let .commandFailed(command, errorClass, description):
                var text = "QEMU rejected \(command): \(errorClass): \(description)"
                if errorClass == "CommandNotFound" {
                    text += ". This QEMU version does not have that command; check `query-commands`."
                } else if errorClass == "DeviceNotFound" {
                    text += ". Check the device or node name against `query-block` / `qom-list`."
                }
                return text
            case let .timeout(command, after):
                return "No reply to \(command) within \(formatDuration(after)). The guest or QEMU's main loop may be stuck; "
                    + "the connection stays open and a late reply will be ignored. Raise the timeout "
                    + "if the command is slow by nature."
            case let .eventTimeout(name, after):
                let what = name.map { "event \($0)" } ?? "any event"
                return "No \(what) arrived within \(formatDuration(after)). Subscribe with events() before triggering the action "
                    + "that emits it, or check recentEvents in case it arrived before the wait began."
            case let .disconnected(cause):
                return "The QMP connection is closed: \(cause)."
            case let .malformedMessage(reason, excerpt):
                return "The QMP peer sent a malformed message (\(reason)): \(excerpt). The connection was closed; "
                    + "check that the socket is a QMP monitor and nothing else writes to it."
            case let .lineTooLong(limit):
                return "The QMP peer sent a line longer than \(limit) bytes and the connection was closed. "
                    + "Raise maxLineBytes when connecting if such large replies are expected."
            case let .cancelled(operation):
                return "The task waiting for \(operation) was cancelled; the connection stays open."
            }
        }

        static func explain(errno code: Int32) -> String {
            let text = POSIX.Errno(code).text
            switch code {
            case ENOENT:
                return text + ". The socket does not exist yet: QEMU has not created it, has exited, "
                    + "or was started with a different -qmp path."
            case ECONNREFUSED:
                return text + ". Nothing is listening on the socket: QEMU has exited, or the file is stale."
            case EACCES, EPERM:
                return text + ". This process may not open the socket: check the directory and socket permissions."
            case ENOTSOCK:
                return text + ". The path is not a socket."
            case EBADF:
                return text + ". The file descriptor is not open."
            case EAGAIN, ETIMEDOUT:
                return text + ". The listener's backlog is full or it did not accept in time."
            default:
                return text + "."
            }
        }
    }
}
