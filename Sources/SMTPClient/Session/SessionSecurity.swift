// The security steps of `SMTPSession.open()`: STARTTLS (RFC 3207) as `TLSPolicy` says,
// the TLS handshake, and AUTH (RFC 4954).
// Invariants: with `require` or `smtps` nothing after the greeting goes in plain text, and
// a certificate that does not verify for the relay's name ends the session; after
// STARTTLS every earlier capability is forgotten and EHLO is sent again; bytes that arrive
// between the 220 to STARTTLS and the handshake end the session (RFC 3207 §5, command
// injection); a password goes out only over TLS, unless AUTH_INSECURE=1 allowed it, and
// never into an error, a notice or a log line.

extension SMTPSession {
    /// STARTTLS after the first EHLO, then EHLO again over TLS.
    func negotiateStartTLS(on socket: Socket, step: inout String) throws {
        let required = settings.tls == .require
        guard SMTPSession.isTLSAvailable else {
            if required { throw SessionError(kind: .tls("\(TLSSupport.unavailable), and TLS=require asks for it for \(host)"), step: step) }
            return
        }
        guard capabilities.startTLS else {
            if required {
                throw SessionError(kind: .tls("\(host) does not offer STARTTLS, and TLS=require forbids plain text"), step: step)
            }
            return
        }
        step = "after STARTTLS"
        try writeLine("STARTTLS", until: .after(settings.timeouts.command))
        let reply = try readReply(until: .after(settings.timeouts.command))
        guard reply.code == 220 else {
            if required { throw SessionError(kind: .tls("\(host) refused STARTTLS: \(reply)"), step: step) }
            return  // TLS=may: the relay said no and the connection is still good, in plain text
        }
        guard parser.bufferedCount == 0 else {
            throw SessionError(kind: .tls("\(host) sent data after its 220 to STARTTLS, before the TLS handshake"), step: step)
        }
        step = "during the TLS handshake"
        do {
            try startTLSHandshake(on: socket, verify: required, step: step)
        } catch {
            throw StartTLSFailure(error: error)
        }
        capabilities = Capabilities()
        try introduce(step: &step)
    }

    /// The TLS handshake on `socket`; on success the session reads and writes through TLS.
    func startTLSHandshake(on socket: Socket, verify: Bool, step: String) throws(SessionError) {
        do {
            let context: TLSContext
            if let kept = tlsContext, kept.verifies == verify {
                context = kept
            } else {
                context = try TLSContext(caFile: verify ? settings.tlsCAFile : nil, verify: verify)
                tlsContext = context
            }
            let tls = try TLSTransport(socket: socket, context: context, host: host)
            try tls.handshake(until: .after(settings.timeouts.tlsHandshake))
            transport = tls
            tlsDescription = "\(tls.version) \(tls.cipher)"
            tlsVerified = verify
        } catch {
            throw SessionError(kind: .tls("TLS handshake with \(host) failed: \(error.message)"), step: step)
        }
    }

    /// AUTH with the relay's preferred mechanism among PLAIN and LOGIN.
    func authenticate(_ credentials: SMTPCredentials, step: inout String) throws {
        let user = credentials.user
        step = "before AUTH"
        guard tlsDescription != nil || credentials.allowUnencrypted else {
            throw SessionError(kind: .authentication(
                "will not send the password of \(user) to \(host) without TLS (the relay did not offer STARTTLS; AUTH_INSECURE=1 would allow it)"),
                step: step)
        }
        guard !capabilities.authMechanisms.isEmpty else {
            throw SessionError(kind: .authentication("\(host) does not offer AUTH, and AUTH=\(user) asks for it"), step: step)
        }
        guard let mechanism = AuthenticationExchange.Mechanism.preferred(from: capabilities.authMechanisms) else {
            throw SessionError(kind: .authentication(
                "\(host) offers AUTH \(capabilities.authMechanisms.joined(separator: " ")), none of which poold speaks (PLAIN, LOGIN)"),
                step: step)
        }
        step = "after AUTH \(mechanism.rawValue)"
        var exchange = AuthenticationExchange(mechanism: mechanism, user: user, password: credentials.password)
        var line = exchange.firstLine()
        while true {
            try writeLine(line, until: .after(settings.timeouts.command))
            let reply = try readReply(until: .after(settings.timeouts.command))
            switch exchange.receive(reply) {
            case .send(let next):
                line = next
            case .succeeded:
                authenticatedUser = user
                return
            case .failed(let reply):
                throw SessionError(kind: .authentication("authentication failed for user \(user) at \(host): \(reply)"), step: step)
            }
        }
    }
}
