// The byte pipe under a session: plain TCP (`Socket`) or TLS over it (`TLSTransport`).
// Both are non-blocking and never wait themselves: a call moves what it can now and, when
// it cannot go on, says which readiness of the socket it needs (a TLS read may need the
// socket writable, and a TLS write readable). The session's loop does the waiting, with
// poll(2) on `socket` and the phase's deadline, the same loop for both.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What a transport call achieved.
enum IOProgress: Equatable {
    /// This many bytes moved (never 0).
    case bytes(Int)
    /// Nothing moved: call again once the socket is ready for this.
    case blocked(Readiness)
}

/// The socket condition a blocked transport waits for.
enum Readiness: Equatable {
    case readable, writable

    var pollEvents: Int16 { self == .readable ? Int16(POLLIN) : Int16(POLLOUT) }
}

protocol Transport: AnyObject {
    /// The TCP connection underneath (for poll and the peer's address).
    var socket: Socket { get }
    /// One non-blocking read; throws `.closed` at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> IOProgress
    /// One non-blocking write of a prefix of `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> IOProgress
    /// Says goodbye below SMTP (TLS close_notify) without waiting; errors are ignored.
    func shutdown()
}

extension Socket: Transport {
    var socket: Socket { self }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> IOProgress {
        let n = try readSome(into: buffer)
        return n > 0 ? .bytes(n) : .blocked(.readable)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> IOProgress {
        let n = try writeSome(bytes)
        return n > 0 ? .bytes(n) : .blocked(.writable)
    }

    func shutdown() {}
}
