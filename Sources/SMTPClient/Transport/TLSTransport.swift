// The only place SMTPClient touches OpenSSL (the `TLS` trait): a client context (TLS 1.2
// at least; the CA file or the system's store when the certificate is verified) and a
// non-blocking TLS connection over a `Socket`. SSL_ERROR_WANT_READ/WRITE become
// `IOProgress.blocked`, so the session's one poll loop serves plain and TLS alike.
// Verification, when asked for, checks the chain and the relay's name: SNI plus
// SSL_set1_host for a DNS name, the IP address check for an address literal.
// Without the trait the same names exist and say "built without TLS".

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
#if TLS
import COpenSSL
#endif

/// A TLS failure, in words that name what failed (a verification result, an alert).
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

enum TLSSupport {
    #if TLS
    static let isAvailable = true
    #else
    static let isAvailable = false
    #endif
    static let unavailable = "poold was built without TLS (the package trait TLS was disabled)"
}

#if TLS

/// One BIO_METHOD for every socket BIO of the process (see COpenSSL/shim.h).
nonisolated(unsafe) private let socketBIOMethod: OpaquePointer? = poold_socket_bio_method_new()

/// An SSL_CTX for a session's connections: protocol floor, trust store, verify mode.
final class TLSContext {
    let pointer: OpaquePointer
    let verifies: Bool

    /// `verify`: check the relay's certificate against `caFile` (a PEM file) or, when nil,
    /// the system's store.
    init(caFile: String?, verify: Bool) throws(TLSError) {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("cannot create a TLS context: \(TLSContext.drainErrors())")
        }
        pointer = context
        verifies = verify
        guard poold_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            throw TLSError("cannot set TLS 1.2 as the minimum version: \(TLSContext.drainErrors())")
        }
        // Partial writes and a moving buffer: a write retried after WANT_WRITE may pass the
        // same bytes from a new address, and a large write returns after each record.
        _ = poold_SSL_CTX_set_mode(context, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // A relay that closes without close_notify is an ordinary end of stream for SMTP,
        // whose replies say themselves when they are whole.
        poold_SSL_CTX_ignore_unexpected_eof(context)
        if verify {
            if let caFile {
                guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                    throw TLSError("cannot load the CA file \(caFile): \(TLSContext.drainErrors())")
                }
            } else if SSL_CTX_set_default_verify_paths(context) != 1 {
                throw TLSError("cannot load the system's CA store: \(TLSContext.drainErrors())")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
    }

    deinit { SSL_CTX_free(pointer) }

    /// OpenSSL's error queue as text, emptied.
    static func drainErrors() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let reason = ERR_reason_error_string(code) {
                let text = String(cString: reason)
                if !reasons.contains(text) { reasons.append(text) }
            } else {
                reasons.append("error \(code)")
            }
        }
        return reasons.isEmpty ? "unknown error" : reasons.joined(separator: ", ")
    }
}

/// A TLS connection over a connected socket. The SSL object lives as long as the
/// connection, so a reused connection keeps its TLS session.
final class TLSTransport: Transport {
    let socket: Socket
    private let ssl: OpaquePointer
    private let verifies: Bool
    private var established = false

    /// Prepares the client side; `host` is sent as SNI (a DNS name only) and, when the
    /// context verifies, is the name (or address) the certificate must carry.
    init(socket: Socket, context: TLSContext, host: String) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.pointer) else {
            throw TLSError("cannot create a TLS connection: \(TLSContext.drainErrors())")
        }
        self.socket = socket
        self.ssl = ssl
        self.verifies = context.verifies
        guard let method = socketBIOMethod, let bio = poold_socket_bio_new(method, socket.fd) else {
            throw TLSError("cannot create a socket BIO: \(TLSContext.drainErrors())")
        }
        SSL_set_bio(ssl, bio, bio)
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        let isAddress = TLSTransport.isIPAddress(name)
        if !isAddress, poold_SSL_set_tlsext_host_name(ssl, name) != 1 {
            throw TLSError("cannot set the server name \(name): \(TLSContext.drainErrors())")
        }
        if verifies {
            let ok: Bool
            if isAddress {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
            } else {
                SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                ok = SSL_set1_host(ssl, name) == 1
            }
            guard ok else { throw TLSError("cannot check certificates for \(name): \(TLSContext.drainErrors())") }
        }
    }

    deinit { SSL_free(ssl) }  // frees the BIO too; the Socket closes the descriptor

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Runs the client handshake until it is done or `deadline` passes.
    func handshake(until deadline: Deadline) throws(TLSError) {
        while true {
            ERR_clear_error()
            errno = 0
            let rc = SSL_connect(ssl)
            if rc == 1 {
                established = true
                return
            }
            let code = SSL_get_error(ssl, rc)
            let wanted: Readiness
            switch code {
            case SSL_ERROR_WANT_READ: wanted = .readable
            case SSL_ERROR_WANT_WRITE: wanted = .writable
            default: throw TLSError(failure(code))
            }
            let ready: Bool
            do {
                ready = try socket.wait(for: wanted.pollEvents, until: deadline)
            } catch {
                throw TLSError("\(error)")
            }
            if !ready { throw TLSError("timed out (no handshake within the deadline)") }
        }
    }

    /// Why the handshake failed: the verification result when that was the cause.
    private func failure(_ code: Int32) -> String {
        let saved = errno
        let queue = TLSContext.drainErrors()
        if verifies {
            let result = SSL_get_verify_result(ssl)
            if result != X509_V_OK {
                return "certificate verification failed: \(String(cString: X509_verify_cert_error_string(result)))"
            }
        }
        switch code {
        case SSL_ERROR_ZERO_RETURN:
            return "the relay closed the connection"
        case SSL_ERROR_SYSCALL where queue == "unknown error":
            return saved == 0 ? "the relay closed the connection" : String(cString: strerror(saved))
        default:
            return queue
        }
    }

    /// "TLSv1.3", "TLSv1.2".
    var version: String { String(cString: SSL_get_version(ssl)) }

    /// "TLS_AES_256_GCM_SHA384".
    var cipher: String {
        guard let current = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(current) else { return "?" }
        return String(cString: name)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> IOProgress {
        ERR_clear_error()
        errno = 0
        let n = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if n > 0 { return .bytes(Int(n)) }
        return try blockedOrFailed(SSL_get_error(ssl, n), "reading")
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> IOProgress {
        guard !bytes.isEmpty else { return .bytes(0) }
        ERR_clear_error()
        errno = 0
        let n = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        if n > 0 { return .bytes(Int(n)) }
        return try blockedOrFailed(SSL_get_error(ssl, n), "writing")
    }

    private func blockedOrFailed(_ code: Int32, _ what: String) throws(TransportError) -> IOProgress {
        switch code {
        case SSL_ERROR_WANT_READ: return .blocked(.readable)
        case SSL_ERROR_WANT_WRITE: return .blocked(.writable)
        case SSL_ERROR_ZERO_RETURN: throw .closed
        case SSL_ERROR_SYSCALL:
            let saved = errno
            let queue = TLSContext.drainErrors()
            if saved == 0 || saved == EPIPE || saved == ECONNRESET { throw .closed }
            throw .io("TLS \(what): \(queue == "unknown error" ? String(cString: strerror(saved)) : queue)")
        default:
            throw .io("TLS \(what): \(TLSContext.drainErrors())")
        }
    }

    func shutdown() {
        guard established else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)  // sends close_notify if the socket takes it now; no wait
        ERR_clear_error()
    }
}

#else

/// Stands in for the OpenSSL context in a build without the `TLS` trait.
final class TLSContext {
    let verifies: Bool
    init(caFile: String?, verify: Bool) throws(TLSError) { throw TLSError(TLSSupport.unavailable) }
}

/// Stands in for the TLS connection in a build without the `TLS` trait; never made.
final class TLSTransport: Transport {
    let socket: Socket
    init(socket: Socket, context: TLSContext, host: String) throws(TLSError) { throw TLSError(TLSSupport.unavailable) }
    func handshake(until deadline: Deadline) throws(TLSError) { throw TLSError(TLSSupport.unavailable) }
    var version: String { "" }
    var cipher: String { "" }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> IOProgress { throw .closed }
    func write(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> IOProgress { throw .closed }
    func shutdown() {}
}

#endif
