// What a transaction is made of and what became of it, as values: the envelope going out,
// the tag the caller knows it by, and per recipient a typed outcome whose origin (a relay's
// reply to a named command, a connection fault, a local decision) and RFC 3463 status are
// fields, never text to parse back. Callers decide retries and DSNs from these alone.

public struct Envelope: Sendable, Equatable {
    public var sender: String
    public var senderParameters: [String]
    public var recipients: [EnvelopeRecipient]

    public init(sender: String, senderParameters: [String] = [], recipients: [EnvelopeRecipient]) {
        self.sender = sender
        self.senderParameters = senderParameters
        self.recipients = recipients
    }
}

public struct EnvelopeRecipient: Sendable, Equatable {
    public var address: String
    public var parameters: [String]
    public init(address: String, parameters: [String] = []) {
        self.address = address
        self.parameters = parameters
    }
}

/// The caller's name for one transaction; results come back under it.
public struct TransactionTag: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
}

/// An RFC 3463 enhanced status code, `class.subject.detail`.
public struct EnhancedStatus: Hashable, Sendable, CustomStringConvertible {
    public let klass: Int
    public let subject: Int
    public let detail: Int

    public init(_ klass: Int, _ subject: Int, _ detail: Int) {
        self.klass = klass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `5.1.1`; nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let k = Int(parts[0]), [2, 4, 5].contains(k), parts[0].count == 1,
              let s = Int(parts[1]), let d = Int(parts[2]),
              parts[1].count <= 3, parts[2].count <= 3, s >= 0, d >= 0 else { return nil }
        self.init(k, s, d)
    }

    public var description: String { "\(klass).\(subject).\(detail)" }

    public static let delivered = EnhancedStatus(2, 0, 0)
    public static let transientUnknown = EnhancedStatus(4, 0, 0)
    public static let permanentUnknown = EnhancedStatus(5, 0, 0)
    /// Message too big for the relay (its SIZE limit).
    public static let messageTooBig = EnhancedStatus(5, 3, 4)
    /// Connection or routing trouble: no answer, dropped, closed.
    public static let connectionTrouble = EnhancedStatus(4, 4, 2)
    /// Delivery time expired (QUEUE_LIFETIME).
    public static let expired = EnhancedStatus(4, 4, 7)
    /// The message needs 8-bit transport the relay does not offer and cannot be converted.
    public static let conversionImpossible = EnhancedStatus(5, 6, 3)
    /// Bad destination system address (no such domain).
    public static let noSuchDomain = EnhancedStatus(5, 1, 2)
    /// The domain does not accept mail (RFC 7505 null MX).
    public static let nullMX = EnhancedStatus(5, 1, 10)
}

/// The commands whose replies decide recipients.
public enum SMTPStep: String, Sendable, Equatable {
    case mail = "MAIL FROM"
    case recipient = "RCPT TO"
    case data = "DATA"
    case endOfData = "the final dot"
    case chunk = "BDAT"
    case reset = "RSET"
}

/// Why a connection ended or could not be used.
public enum ConnectionFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// The relay said 421: it is closing the connection.
    case closing(SMTPReply)
    /// The relay ended the connection (EOF or reset) while `step`.
    case dropped(step: String)
    /// No reply within the deadline while `step`.
    case timedOut(step: String)
    /// A reply that is not SMTP, or out of turn.
    case garbled(String)
    /// The relay answered RSET with an error: the dialogue is out of step.
    case resetRefused(SMTPReply)
    /// A 4xx to MAIL FROM on a connection that already carried mail: the relay's session
    /// is spent (a per-connection message limit); a new connection will do.
    case spent(SMTPReply)
    /// A local failure while writing (the message could not be read, an I/O error).
    case local(String)
    /// No connection: the relay could not be reached, or it was closed.
    case notConnected(String)

    public var description: String {
        switch self {
        case .closing(let r): return "the relay is closing the connection: \(r)"
        case .dropped(let step): return "connection closed by the relay (\(step))"
        case .timedOut(let step): return "timed out \(step)"
        case .garbled(let text): return "garbled reply: \(text)"
        case .resetRefused(let r): return "RSET refused: \(r)"
        case .spent(let r): return "the relay refused more mail on this connection: \(r)"
        case .local(let text): return text
        case .notConnected(let text): return text
        }
    }

    /// The relay's reply, when it sent one.
    public var reply: SMTPReply? {
        switch self {
        case .closing(let r), .resetRefused(let r), .spent(let r): return r
        default: return nil
        }
    }
}

/// What became of one recipient in one transaction.
public struct RecipientOutcome: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// 2xx after the final dot.
        case delivered
        /// 4xx, a connection fault: try again later.
        case deferred
        /// 5xx, or a local decision that retrying cannot change.
        case failed
        /// 452 to RCPT: the relay wants fewer recipients per transaction; send again now.
        case tooMany
    }

    public enum Origin: Equatable, Sendable {
        /// The relay answered this command so.
        case reply(SMTPReply, to: SMTPStep)
        /// The connection failed before the recipient was decided.
        case connection(ConnectionFault)
        /// Decided here, without the relay (a size limit, an expired lifetime, DNS).
        case local(String)
    }

    public var kind: Kind
    public var origin: Origin
    /// RFC 3463 status: the reply's own enhanced code when it has one, else derived.
    public var status: EnhancedStatus

    public init(_ kind: Kind, origin: Origin, status: EnhancedStatus? = nil) {
        self.kind = kind
        self.origin = origin
        self.status = status ?? RecipientOutcome.derivedStatus(kind, origin)
    }

    /// The outcome a reply means for a recipient it decides.
    public static func decided(by reply: SMTPReply, to step: SMTPStep) -> RecipientOutcome {
        let kind: Kind = reply.isPositiveCompletion ? .delivered : reply.isPermanent ? .failed : .deferred
        return RecipientOutcome(kind, origin: .reply(reply, to: step))
    }

    /// The relay's reply, when there was one.
    public var reply: SMTPReply? {
        switch origin {
        case .reply(let r, _): return r
        case .connection(let fault): return fault.reply
        case .local: return nil
        }
    }

    /// What happened, for logs and DSNs: the reply, or a local reason.
    public var diagnostic: String {
        switch origin {
        case .reply(let r, _): return r.description
        case .connection(let fault): return fault.description
        case .local(let text): return text
        }
    }

    public var description: String { "\(kind.rawValue): \(diagnostic)" }

    private static func derivedStatus(_ kind: Kind, _ origin: Origin) -> EnhancedStatus {
        if let status = originReply(origin)?.enhancedCode,
           status.klass == (kind == .delivered ? 2 : kind == .failed ? 5 : 4) {
            return status
        }
        switch (kind, origin) {
        case (.delivered, _): return .delivered
        case (.failed, _): return .permanentUnknown
        case (_, .connection): return .connectionTrouble
        default: return .transientUnknown
        }
    }

    private static func originReply(_ origin: Origin) -> SMTPReply? {
        switch origin {
        case .reply(let r, _): return r
        case .connection(let fault): return fault.reply
        case .local: return nil
        }
    }
}

/// May a transaction that did not go through be sent again at once?
public enum RetryAdvice: Sendable, Equatable {
    /// No: its outcomes stand (deferred recipients wait for the retry schedule).
    case none
    /// The connection failed it, not the message (421, a drop before the message was out,
    /// a spent session's 4xx to MAIL): once, on a new connection, at once.
    case newConnection
    /// It never reached the relay (the connection ended before it started): send it
    /// again at no cost.
    case notSent
}

/// One transaction's end, tagged as the caller submitted it.
public struct TransactionResult: Sendable, Equatable {
    public var tag: TransactionTag
    /// One per recipient, in envelope order.
    public var outcomes: [RecipientOutcome]
    public var retry: RetryAdvice

    public init(tag: TransactionTag, outcomes: [RecipientOutcome], retry: RetryAdvice = .none) {
        self.tag = tag
        self.outcomes = outcomes
        self.retry = retry
    }
}
