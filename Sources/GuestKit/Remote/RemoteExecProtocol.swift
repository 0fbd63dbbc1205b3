import Foundation
import QEMULaunch

/// The exec socket's wire format (`exec.sock`), shared by ``ExecServer`` and ``RemoteSession``.
///
/// One connection per command. The client sends one line of JSON (a ``Request``) in one
/// `sendmsg` that carries its stdin, stdout and stderr fds (SCM_RIGHTS): the guest command's
/// streams go straight to them, split, with no framing on the socket. The server answers
/// with one line of JSON (a ``Reply``) when the command has ended and all of its output is
/// written, and closes. A client that hangs up before the reply cancels its command (it is
/// killed in the guest).
enum RemoteExecProtocol {
    /// The fds a request carries, in this order.
    static let passedFDCount = 3
    /// The longest request line a server reads.
    static let maxRequestBytes = 1 << 20

    struct Request: Codable, Sendable {
        var argv: [String]
        var environment: [String: String]
        var workingDirectory: String?
        /// Whether the command reads the passed stdin (else it reads EOF at once).
        var stdin: Bool
        /// nil: no limit (the client bounds it: hanging up cancels the command).
        var timeoutSeconds: Double?
    }

    struct Reply: Codable, Sendable {
        struct Failure: Codable, Sendable {
            /// `LaunchError.Code.name`.
            var code: String
            var message: String
            var fix: String?
            var details: [String]
        }
        var exitCode: Int32?
        var error: Failure?

        init(exitCode: Int32) { self.exitCode = exitCode }
        init(_ error: LaunchError) {
            self.error = Failure(code: error.code.name, message: error.cause.map { "\(error.message): \($0)" } ?? error.message,
                                 fix: error.fix, details: error.details)
        }

        var launchError: LaunchError? {
            error.map { LaunchError(LaunchError.Code(name: $0.code), $0.message, fix: $0.fix, details: $0.details) }
        }
    }

    static func line<T: Encodable>(_ value: T) -> [UInt8] {
        var bytes = Array((try? JSONEncoder().encode(value)) ?? Data("{}".utf8))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
