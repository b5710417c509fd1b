// What a session needs to know before it connects: the name it says in EHLO, a deadline
// for every phase (RFC 5321 §4.5.3.2 defaults), how it protects the connection (TLS) and
// who it authenticates as (AUTH), and the errors `open()` ends with.
// Invariant: a password lives only in `SMTPCredentials`, which never prints it.

/// Deadlines for each phase of a session (RFC 5321 §4.5.3.2 defaults; Postfix's names).
public struct SMTPTimeouts: Sendable, Equatable {
    public var connect: Duration = .seconds(30)       // smtp_connect_timeout
    public var greeting: Duration = .seconds(300)     // 220 greeting and the EHLO/HELO reply
    public var command: Duration = .seconds(300)      // MAIL, RCPT, RSET, QUIT, STARTTLS, AUTH
    public var dataInit: Duration = .seconds(120)     // the reply to DATA
    public var dataBlock: Duration = .seconds(180)    // each write of the message
    public var dataDone: Duration = .seconds(600)     // the reply to the final dot
    public var tlsHandshake: Duration = .seconds(300) // smtp_starttls_timeout
    /// QUIT's reply, when we leave: no reason to wait long for a goodbye.
    public var quit: Duration = .seconds(5)
    public init() {}
}

/// How a session protects its connection (the worker line's `TLS=`).
public enum TLSPolicy: String, Sendable, Equatable {
    /// Plain SMTP, never STARTTLS.
    case none
    /// STARTTLS when the relay offers it, the certificate not checked (opportunistic, RFC
    /// 7435). A failed handshake costs one reconnect in plain text, as Postfix does.
    case may
    /// STARTTLS or no delivery; the certificate must be valid for the relay's name.
    case require
    /// TLS from the first byte (RFC 8314), verified as with `require`.
    case smtps

    /// True when the relay's certificate must be verified.
    public var verifiesCertificate: Bool { self == .require || self == .smtps }
}

/// Who a session authenticates as. The password is never printed, reflected or logged.
public struct SMTPCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var user: String
    /// Readable inside SMTPClient only.
    let password: String
    /// AUTH_INSECURE=1: send the password even over a connection without TLS.
    public var allowUnencrypted: Bool

    public init(user: String, password: String, allowUnencrypted: Bool = false) {
        self.user = user
        self.password = password
        self.allowUnencrypted = allowUnencrypted
    }

    public var description: String { "\(user) (password hidden)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["user": user, "password": "(hidden)", "allowUnencrypted": allowUnencrypted])
    }
}

public struct SessionSettings: Sendable {
    public var heloName: String
    public var timeouts: SMTPTimeouts
    /// A connection idle longer than this is probed with RSET before it is used again,
    /// so a relay that closed it quietly costs a reconnect, not a deferred message.
    public var idleProbeAfter: Duration = .seconds(10)
    /// Send messages by BDAT (RFC 3030) when the relay offers CHUNKING: MAIL, RCPT and the
    /// message go without waiting for a 354.
    public var chunking = true
    /// Start the next transaction before the previous one's final reply (PIPELINING
    /// across transactions; see `SMTPConversation`).
    public var overlapTransactions = true
    /// The most transactions in flight on one connection (with CHUNKING; DATA allows two).
    /// After a crash, these are the transactions that may be sent twice.
    public var transactionsInFlight = 3
    public var tls: TLSPolicy = .may
    /// A PEM file of the CAs to verify the relay with (`require`, `smtps`); nil: the system's.
    public var tlsCAFile: String?
    /// AUTH after EHLO (over TLS unless `allowUnencrypted`); nil: no AUTH.
    public var credentials: SMTPCredentials?
    /// Told what the session did on its own that an operator should hear of (a fallback
    /// to plain text). Never given a password.
    public var notice: (@Sendable (String) -> Void)?

    public init(heloName: String, timeouts: SMTPTimeouts = SMTPTimeouts(), tls: TLSPolicy = .may,
                tlsCAFile: String? = nil, credentials: SMTPCredentials? = nil,
                notice: (@Sendable (String) -> Void)? = nil) {
        self.heloName = heloName
        self.timeouts = timeouts
        self.tls = tls
        self.tlsCAFile = tlsCAFile
        self.credentials = credentials
        self.notice = notice
    }
}

/// The message of a transaction as it goes on the wire: dot-stuffed, CRLF line ends,
/// without the final `.` line.
public protocol MessageSource {
    var wireSize: Int64 { get }
    func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws
    /// The size with dot-stuffing undone, when the source knows it: then the message can
    /// go by BDAT (RFC 3030) to a relay that offers CHUNKING.
    var unstuffedSize: Int64? { get }
}

extension MessageSource {
    public var unstuffedSize: Int64? { nil }
}

public struct SessionError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case transport(TransportError)
        /// The relay refused the session (greeting, or both EHLO and HELO).
        case refused(SMTPReply)
        case syntax(ReplySyntaxError)
        /// TLS was required and could not be had: not offered, refused, the handshake or
        /// the certificate failed, or this build has no TLS. The text names the host.
        case tls(String)
        /// AUTH failed or could not be tried; the text names the user and the host.
        case authentication(String)
    }
    public var kind: Kind
    /// What we were doing: "reading the greeting", "after EHLO".
    public var step: String

    public init(kind: Kind, step: String) {
        self.kind = kind
        self.step = step
    }

    public var description: String {
        switch kind {
        case .transport(let e): return "\(e) (\(step))"
        case .refused(let r): return "\(r) (\(step))"
        case .syntax(let e): return "\(e) (\(step))"
        case .tls(let text): return "\(text) (\(step))"
        case .authentication(let text): return "\(text) (\(step))"
        }
    }
}
