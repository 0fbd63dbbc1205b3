/// A client for the QEMU Machine Protocol (QMP).
///
/// QMP is QEMU's JSON control protocol: the server greets, the client negotiates
/// capabilities, then commands and replies flow as one JSON object per line, with
/// asynchronous events interleaved. This module speaks it over a Unix stream socket
/// (or any stream socket file descriptor) with plain POSIX calls:
///
/// ```swift
/// let qmp = try await QMP.Client.connect(unixPath: "/tmp/vm/qmp.sock")
/// print(qmp.greeting.version)                       // 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)
/// let status = try await qmp.queryStatus()           // Status(status: "prelaunch", running: false)
/// let reply = try await qmp.execute("query-kvm")     // the "return" value as JSONValue
/// try await qmp.quit(timeout: .seconds(5))
/// ```
///
/// - ``QMP/Client``: the connection; commands, events, deadlines.
/// - ``QMP/JSONValue``: the JSON values QMP carries.
/// - ``QMP/Error``: every way a call can fail, each with a message that says
///   what happened and how to fix it.
///
/// The module knows nothing about how QEMU is started. The module's documentation
/// (and `README.md` beside this file) describes the error and concurrency models.
public enum QMP {}
