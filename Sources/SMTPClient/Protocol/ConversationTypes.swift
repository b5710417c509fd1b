// The values `SMTPConversation` takes and gives: a transaction to send, what the relay
// and the settings allow, and the actions the driver carries out. Plain data, no logic.

public struct TransactionRequest: Sendable, Equatable {
    public var tag: TransactionTag
    public var envelope: Envelope
    /// The message's size on the wire: dot-stuffed, CRLF line ends, without the final dot.
    public var wireSize: Int64
    /// The size with dot-stuffing undone, when known: then the message may go by BDAT.
    public var unstuffedSize: Int64?

    public init(tag: TransactionTag, envelope: Envelope, wireSize: Int64, unstuffedSize: Int64? = nil) {
        self.tag = tag
        self.envelope = envelope
        self.wireSize = wireSize
        self.unstuffedSize = unstuffedSize
    }
}

/// What the relay offers and what we allow ourselves on this connection.
public struct ConversationPolicy: Sendable, Equatable {
    public var pipelining: Bool
    /// Messages go by BDAT (the relay offers CHUNKING and the settings allow it).
    public var chunking: Bool
    /// The next transaction may start before the previous one's final reply.
    public var overlap: Bool
    /// The most transactions in flight at once (with CHUNKING; DATA allows two at most).
    public var maxInFlight: Int
    /// SIZE's limit: nil when the relay does not offer SIZE, 0 when it gives no limit.
    public var sizeLimit: Int64?
    /// EHLO keywords, upper case: parameters of extensions not offered are dropped.
    public var extensions: Set<String>

    public init(pipelining: Bool, chunking: Bool = false, overlap: Bool = true, maxInFlight: Int = 2,
                sizeLimit: Int64? = nil, extensions: Set<String> = []) {
        self.pipelining = pipelining
        self.chunking = chunking
        self.overlap = overlap
        self.maxInFlight = max(1, maxInFlight)
        self.sizeLimit = sizeLimit
        self.extensions = extensions
    }

    public init(capabilities: Capabilities, chunking: Bool, overlap: Bool, maxInFlight: Int) {
        self.init(pipelining: capabilities.pipelining, chunking: chunking && capabilities.chunking,
                  overlap: overlap, maxInFlight: maxInFlight, sizeLimit: capabilities.size,
                  extensions: Set(capabilities.keywords))
    }
}

/// How a message crosses the wire.
public enum MessageFraming: Sendable, Equatable {
    /// After 354: the message dot-stuffed as it is, then the final dot.
    case dotStuffed
    /// Right after `BDAT n LAST`: the message's n octets, dot-stuffing undone.
    case unstuffed(Int64)
}

/// Which deadline a reply is awaited with.
public enum ReplyWait: Sendable, Equatable {
    /// MAIL, RCPT, RSET, QUIT.
    case command
    /// DATA's 354.
    case goAhead
    /// The final dot's or BDAT LAST's reply.
    case final
}

public enum ConversationAction: Sendable, Equatable {
    /// Append this command to the output.
    case write(SMTPCommand)
    /// Append this transaction's message to the output.
    case writeMessage(TransactionTag, MessageFraming)
    /// Send what was written, then read one reply and pass it to `receive` (or the
    /// failure to `fail`).
    case read(ReplyWait)
    /// A transaction is over.
    case result(TransactionResult)
    /// Nothing to do until a transaction is submitted.
    case idle
    /// The connection is finished; every transaction submitted has had its result.
    case closed(ConnectionFault)
}

/// A first-in first-out queue with O(1) pops (replies owed can number MAXBSMTP and more).
struct Ring<Element: Sendable>: Sendable {
    private var items: [Element] = []
    private var head = 0
    var isEmpty: Bool { head == items.count }
    var first: Element? { isEmpty ? nil : items[head] }
    mutating func append(_ element: Element) { items.append(element) }
    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return element
    }
    mutating func removeAll() {
        items.removeAll(keepingCapacity: true)
        head = 0
    }
}
