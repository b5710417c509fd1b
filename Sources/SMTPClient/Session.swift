// A connection to one relay, kept open across transactions: connect (TLS first with
// smtps), greeting, EHLO (HELO when EHLO is refused), STARTTLS and EHLO again when the
// policy asks, AUTH when credentials are set, then transactions until the relay drops it
// or we say QUIT. The loop here only moves bytes and keeps deadlines; `TransactionMachine`
// decides. It reads and writes through a `Transport`, plain or TLS, the same loop for both.
// While writing a large pipelined group it keeps reading, so a relay that answers while
// we still write can never deadlock us (RFC 2920 §3.3, "must not block").
// Every wait has a deadline from `SMTPTimeouts` (RFC 5321 §4.5.3.2 defaults).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public final class SMTPSession {
    public let host: String
    public let port: UInt16
    public let settings: SessionSettings
    public internal(set) var capabilities = Capabilities()
    /// The greeting's text, for status.
    public private(set) var greeting: SMTPReply?
    /// Transactions attempted on this connection.
    public internal(set) var transactionCount = 0
    /// The remote address actually connected to.
    public var peer: String { transport?.socket.peer ?? "\(host):\(port)" }
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

    var transport: (any Transport)?
    var parser = ReplyParser()
    var needsReset = false
    /// A transaction whose final dot waits to go out with the next envelope (`sendOverlapped`).
    var held: HeldTransaction?
    var lastUsed = 0.0
    private var readBuffer = [UInt8](repeating: 0, count: 16384)
    /// Kept across reconnects: loading a CA store is not free.
    var tlsContext: TLSContext?

    public init(host: String, port: UInt16, settings: SessionSettings) {
        self.host = host
        self.port = port
        self.settings = settings
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
    }

    /// A STARTTLS handshake that failed: with TLS=may, the cue to reconnect in plain text.
    struct StartTLSFailure: Error {
        var error: SessionError
    }

    /// One connection from TCP to the last reply before the first transaction.
    private func establish(startTLS: Bool) throws {
        let t = settings.timeouts
        var step = "connecting"
        transport = nil
        capabilities = Capabilities()
        tlsDescription = nil
        tlsVerified = false
        authenticatedUser = nil
        do {
            if settings.tls.verifiesCertificate && !SMTPSession.isTLSAvailable {
                throw SessionError(kind: .tls("\(TLSSupport.unavailable), and TLS=\(settings.tls.rawValue) asks for it for \(host)"), step: step)
            }
            let socket = try Socket.connect(host: host, port: port, timeout: t.connect)
            transport = socket
            parser = ReplyParser()
            needsReset = false
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
            lastUsed = Deadline.now()
        } catch {
            transport = nil
            if error is StartTLSFailure { throw error }
            throw SMTPSession.sessionError(error, step: step)
        }
    }

    /// EHLO, or HELO when EHLO is refused; the capabilities are the reply's.
    func introduce(step: inout String) throws {
        let t = settings.timeouts
        step = tlsDescription == nil ? "after EHLO" : "after EHLO over TLS"
        try write(["EHLO \(settings.heloName)"], until: .after(t.command))
        let ehlo = try readReply(until: .after(t.greeting))
        if ehlo.isPositiveCompletion {
            capabilities = Capabilities(ehlo: ehlo)
        } else if ehlo.code == 421 || ehlo.code == 554 {
            throw SessionError(kind: .refused(ehlo), step: step)
        } else {
            step = "after HELO"
            try write(["HELO \(settings.heloName)"], until: .after(t.command))
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

    /// Is the connection still worth using? A relay that closed it or said 421 while we
    /// were idle is noticed here, before a transaction is spent on it.
    public func checkAlive() -> Bool {
        if held != nil { return true }  // in use right now: its next write carries a final dot
        guard let transport else { return false }
        if (try? transport.socket.wait(for: Int16(POLLIN), until: Deadline(seconds: 0))) != false {
            // Readable while idle: EOF or an unsolicited 421 — or, over TLS, a record that
            // is not data (a session ticket), after which the read has nothing to give.
            guard case .blocked? = try? pull(transport), parser.bufferedCount == 0 else {
                self.transport = nil
                return false
            }
        }
        if Deadline.now() - lastUsed > settings.idleProbeAfter {
            do {
                try write(["RSET"], until: .after(settings.timeouts.command))
                guard try readReply(until: .after(settings.timeouts.command)).isPositiveCompletion else {
                    self.transport = nil
                    return false
                }
                needsReset = false
            } catch {
                self.transport = nil
                return false
            }
        }
        return true
    }

    /// Sends one transaction and returns an outcome per recipient, in order. Never throws:
    /// a connection failure defers whatever it left undecided and closes the connection.
    public func send(_ envelope: Envelope, message: some MessageSource) -> [RecipientOutcome] {
        settle()
        if let limit = capabilities.size, limit > 0, message.wireSize > limit {
            let reason = "552 5.3.4 message of \(message.wireSize) bytes exceeds the relay's SIZE limit of \(limit)"
            return envelope.recipients.map { _ in RecipientOutcome(.failed, reason: reason) }
        }
        let chunk = capabilities.chunking && settings.chunking ? message.unstuffedSize : nil
        var machine = TransactionMachine(envelope: envelope, pipelining: capabilities.pipelining,
                                         size: capabilities.size != nil ? message.wireSize : nil,
                                         extensions: Set(capabilities.keywords), chunk: chunk)
        guard transport != nil else {
            machine.connectionFailed("not connected to \(host):\(port)")
            return machine.results
        }
        transactionCount += 1
        let t = settings.timeouts
        var step = "sending MAIL FROM"
        do {
            var prefix: [String] = []
            if needsReset {
                prefix = ["RSET"]
                if !capabilities.pipelining {
                    try write(prefix, until: .after(t.command))
                    prefix = []
                    try expectResetReply()
                }
            }
            var event = TransactionMachine.Event.needReply
            var first = true
            loop: while true {
                let commands = machine.takeCommands()
                if let chunk, commands.last?.hasPrefix("BDAT ") == true {
                    // The message follows its BDAT command at once (RFC 3030 §2).
                    step = "sending the message (BDAT)"
                    try sendChunk(message, size: chunk, after: prefix + commands)
                    if !prefix.isEmpty {
                        prefix = []
                        try expectResetReply()
                    }
                } else if !commands.isEmpty || !prefix.isEmpty {
                    try write(prefix + commands, until: .after(t.command))
                    if !prefix.isEmpty {
                        prefix = []
                        try expectResetReply()
                    }
                }
                if !first, event == .finished { break }
                first = false
                step = describe(machine.awaiting)
                let reply = try readReply(until: .after(timeout(for: machine.awaiting)))
                event = machine.receive(reply)
                switch event {
                case .needReply:
                    continue
                case .finished:
                    break loop
                case .sendMessage:
                    step = "sending the message"
                    try sendMessage(message)
                    step = "waiting for the reply to the final dot"
                    let final = try readReply(until: .after(t.dataDone))
                    _ = machine.receiveFinal(final)
                    break loop
                case .sendEmptyMessage:
                    try write(Array(".\r\n".utf8), until: .after(t.dataBlock))
                    _ = try readReply(until: .after(t.dataDone))
                    machine.emptyMessageSent()
                    break loop
                }
            }
            needsReset = machine.needsReset
            if machine.relayClosing { transport = nil }
        } catch {
            machine.connectionFailed("\(SMTPSession.describe(error)) (\(step), relay \(peer))")
            transport = nil
        }
        lastUsed = Deadline.now()
        return machine.results
    }

    /// Says QUIT (waiting briefly for the reply) and closes.
    public func close() {
        settle()
        guard let transport else { return }
        let wait = min(settings.timeouts.command, 5)
        try? write(["QUIT"], until: .after(wait))
        _ = try? readReply(until: .after(wait))
        transport.shutdown()
        self.transport = nil
    }

    // MARK: - the byte loop

    private func expectResetReply() throws {
        let reply = try readReply(until: .after(settings.timeouts.command))
        guard reply.isPositiveCompletion else { throw TransportError.io("RSET refused: \(reply)") }
        needsReset = false
    }

    func timeout(for phase: TransactionMachine.Phase) -> Double {
        switch phase {
        case .mail, .rcpt, .finished: return settings.timeouts.command
        case .data: return settings.timeouts.dataInit
        case .dot, .bdat: return settings.timeouts.dataDone
        }
    }

    func describe(_ phase: TransactionMachine.Phase) -> String {
        switch phase {
        case .mail: return "waiting for the reply to MAIL FROM"
        case .rcpt: return "waiting for the reply to RCPT TO"
        case .data: return "waiting for the reply to DATA"
        case .dot: return "waiting for the reply to the final dot"
        case .bdat: return "waiting for the reply to BDAT"
        case .finished: return "after the transaction"
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? TransportError { return e.description }
        if let e = error as? ReplySyntaxError { return "garbled reply: \(e)" }
        return "\(error)"
    }

    func write(_ commands: [String], until deadline: Deadline) throws {
        var bytes: [UInt8] = []
        for c in commands {
            bytes.append(contentsOf: c.utf8)
            bytes.append(13)
            bytes.append(10)
        }
        try write(bytes, until: deadline)
    }

    func write(_ bytes: [UInt8], until deadline: Deadline) throws {
        try bytes.withUnsafeBytes { try write($0, until: deadline) }
    }

    /// Writes every byte, reading whatever the relay sends meanwhile into the parser.
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
    private func pull(_ transport: any Transport) throws -> IOProgress {
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
