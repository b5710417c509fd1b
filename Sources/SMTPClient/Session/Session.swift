// A connection to one relay, kept open across transactions: connect (TLS first with
// smtps), greeting, EHLO (HELO when EHLO is refused), STARTTLS and EHLO again when the
// policy asks, AUTH when credentials are set; then transactions (SessionDriver.swift)
// until the relay drops it or we say QUIT. Reads and writes go through a `Transport`,
// plain or TLS, with the same loop for both; every wait has a deadline from `SMTPTimeouts`
// (RFC 5321 §4.5.3.2 defaults).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Used by one thread at a time (its worker's): the byte loop's state below is marked
/// `@exclusivity(unchecked)`, since no two accesses to it can overlap there and the
/// runtime's check costs a thread-local lookup on each of the many accesses per message.
public final class SMTPSession {
    public let host: String
    /// When set, the connection goes to exactly this address (an MX host's address); `host`
    /// still names the server (SNI, messages).
    public let address: IPAddress?
    public let port: UInt16
    public let settings: SessionSettings
    @exclusivity(unchecked) public internal(set) var capabilities = Capabilities()
    /// The greeting's text, for status.
    public private(set) var greeting: SMTPReply?
    /// Transactions submitted on this session (all its connections).
    @exclusivity(unchecked) public internal(set) var transactionCount = 0
    /// The remote address actually connected to.
    public var peer: String { transport?.socket.peer ?? "\(host):\(port)" }
    /// The relay's name as a DSN's `Remote-MTA: dns;` wants it: the host, no port.
    public var peerHost: String { host }
    public var isOpen: Bool { transport != nil }
    /// The connection's TLS protocol and cipher, "TLSv1.3 TLS_AES_256_GCM_SHA384"; nil in plain text.
    public internal(set) var tlsDescription: String?
    /// True when the relay's certificate was verified for its name (TLS=require, smtps).
    public internal(set) var tlsVerified = false
    /// The user this connection authenticated as; nil without AUTH.
    public internal(set) var authenticatedUser: String?
    /// Why the last `open()` went on in plain text after a failed STARTTLS (TLS=may).
    public internal(set) var plaintextFallback: String?
    /// False in a build without the package trait `TLS`: no STARTTLS, no smtps.
    public static var isTLSAvailable: Bool { TLSSupport.isAvailable }

    @exclusivity(unchecked) var transport: (any Transport)?
    @exclusivity(unchecked) var parser = ReplyParser()
    /// The transactions of the open connection; nil when closed.
    @exclusivity(unchecked) var conversation: SMTPConversation?
    /// Commands and small messages not yet written: one buffer, reused.
    @exclusivity(unchecked) var output: [UInt8] = []
    /// True when `output` holds message bytes (its flush gets the data-block deadline).
    @exclusivity(unchecked) var outputHoldsMessage = false
    /// The messages of transactions submitted and not yet written.
    @exclusivity(unchecked) var messages: [TransactionTag: any MessageSource] = [:]
    /// `advance()` handed control back once with output held, for another transaction.
    @exclusivity(unchecked) var offeredRoom = false
    /// Results for the next `advance()`: decided without the relay (submitted while
    /// closed), or read by `send` for other transactions.
    @exclusivity(unchecked) var unsentResults: [TransactionResult] = []
    @exclusivity(unchecked) var lastUsed = ContinuousClock.now
    @exclusivity(unchecked) private var readBuffer = [UInt8](repeating: 0, count: 16384)
    /// Kept across reconnects: loading a CA store is not free.
    var tlsContext: TLSContext?

    public init(host: String, address: IPAddress? = nil, port: UInt16, settings: SessionSettings) {
        self.host = host
        self.address = address
        self.port = port
        self.settings = settings
        output.reserveCapacity(Int(SMTPSession.coalescedMessageLimit) + 4096)
    }

    deinit { transport = nil }

    /// Connects and introduces ourselves (TLS and AUTH as the settings say). With TLS=may a
    /// failed STARTTLS handshake costs one reconnect in plain text, reported to
    /// `settings.notice`; with require or smtps it is the error, and nothing is sent.
    public func open() throws(SessionError) {
        plaintextFallback = nil
        do {
            try establish(startTLS: settings.tls != .none)
        } catch let failure as StartTLSFailure where settings.tls == .may {
            plaintextFallback = failure.error.description
            settings.notice?("\(host):\(port): \(failure.error); trying again in plain text (TLS=may)")
            do {
                try establish(startTLS: false)
            } catch {
                throw SMTPSession.sessionError(error, step: "connecting again in plain text")
            }
        } catch let failure as StartTLSFailure {
            throw failure.error
        } catch {
            throw SMTPSession.sessionError(error, step: "connecting")
        }
        conversation = SMTPConversation(policy: ConversationPolicy(
            capabilities: capabilities, chunking: settings.chunking, overlap: settings.overlapTransactions,
            maxInFlight: settings.transactionsInFlight))
    }

    /// A STARTTLS handshake that failed: with TLS=may, the cue to reconnect in plain text.
    struct StartTLSFailure: Error {
        var error: SessionError
    }

    /// One connection from TCP to the last reply before the first transaction.
    private func establish(startTLS: Bool) throws {
        let t = settings.timeouts
        var step = "connecting"
        dropConnection()
        capabilities = Capabilities()
        tlsDescription = nil
        tlsVerified = false
        authenticatedUser = nil
        do {
            let socket = try address.map { try Socket.connect(address: $0, port: port, timeout: t.connect) }
                ?? Socket.connect(host: host, port: port, timeout: t.connect)
            transport = socket
            parser = ReplyParser()
            if settings.tls == .smtps {
                step = "during the TLS handshake"
                try startTLSHandshake(on: socket, verify: true, step: step)
            }
            step = "reading the greeting"
            let hello = try readReply(until: .after(t.greeting))
            greeting = hello
            guard hello.code == 220 else { throw SessionError(kind: .refused(hello), step: step) }
            try introduce(step: &step)
            if startTLS && settings.tls != .smtps {
                try negotiateStartTLS(on: socket, step: &step)
            }
            if let credentials = settings.credentials {
                try authenticate(credentials, step: &step)
            }
            lastUsed = .now
        } catch {
            dropConnection()
            if error is StartTLSFailure { throw error }
            throw SMTPSession.sessionError(error, step: step)
        }
    }

    /// EHLO, or HELO when EHLO is refused; the capabilities are the reply's.
    func introduce(step: inout String) throws {
        let t = settings.timeouts
        step = tlsDescription == nil ? "after EHLO" : "after EHLO over TLS"
        try writeLine("EHLO \(settings.heloName)", until: .after(t.command))
        let ehlo = try readReply(until: .after(t.greeting))
        if ehlo.isPositiveCompletion {
            capabilities = Capabilities(ehlo: ehlo)
        } else if ehlo.code == 421 || ehlo.code == 554 {
            throw SessionError(kind: .refused(ehlo), step: step)
        } else {
            step = "after HELO"
            try writeLine("HELO \(settings.heloName)", until: .after(t.command))
            let helo = try readReply(until: .after(t.greeting))
            guard helo.isPositiveCompletion else { throw SessionError(kind: .refused(helo), step: step) }
            capabilities = Capabilities()
        }
    }

    static func sessionError(_ error: any Error, step: String) -> SessionError {
        switch error {
        case let e as SessionError: return e
        case let e as StartTLSFailure: return e.error
        case let e as TransportError: return SessionError(kind: .transport(e), step: step)
        case let e as ReplySyntaxError: return SessionError(kind: .syntax(e), step: step)
        case let e as TLSError: return SessionError(kind: .tls(e.message), step: step)
        default: return SessionError(kind: .transport(.io("\(error)")), step: step)
        }
    }

    /// Forgets the connection at once (no QUIT): the socket closes with the transport.
    func dropConnection() {
        transport = nil
        conversation = nil
        output.removeAll(keepingCapacity: true)
        outputHoldsMessage = false
        offeredRoom = false
    }

    // MARK: - the byte loop

    /// One command line outside a transaction (EHLO, STARTTLS, AUTH), written now.
    func writeLine(_ line: String, until deadline: Deadline) throws {
        var bytes = Array(line.utf8)
        bytes.append(13)
        bytes.append(10)
        try bytes.withUnsafeBytes { try write($0, until: deadline) }
    }

    /// Writes every byte, reading whatever the relay sends meanwhile into the parser, so a
    /// relay that answers while we still write can never deadlock us (RFC 2920 §3.3).
    func write(_ bytes: UnsafeRawBufferPointer, until deadline: Deadline) throws {
        guard let transport else { throw TransportError.closed }
        var done = 0
        while done < bytes.count {
            switch try transport.write(UnsafeRawBufferPointer(rebasing: bytes[done...])) {
            case .bytes(let n):
                done += n
            case .blocked(let wanted):
                let (readable, writable) = try transport.socket.waitEither(write: wanted == .writable, until: deadline)
                if !readable && !writable { throw TransportError.timedOut("writing to the relay") }
                // Read even when the write waits for readability: over TLS the same read
                // takes in the record the write needs.
                if readable { _ = try pull(transport) }
            }
        }
    }

    /// One read into the parser.
    @discardableResult
    func pull(_ transport: any Transport) throws -> IOProgress {
        let progress = try readBuffer.withUnsafeMutableBytes { try transport.read(into: $0) }
        if case .bytes(let n) = progress {
            readBuffer.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return progress
    }

    /// The next whole reply. Reads before it waits: TLS may hold decrypted bytes that poll
    /// cannot see.
    func readReply(until deadline: Deadline) throws -> SMTPReply {
        while true {
            if let reply = try parser.next() { return reply }
            guard let transport else { throw TransportError.closed }
            if case .blocked(let wanted) = try pull(transport) {
                guard try transport.socket.wait(for: wanted.pollEvents, until: deadline) else {
                    throw TransportError.timedOut("waiting for the relay")
                }
            }
        }
    }
}
