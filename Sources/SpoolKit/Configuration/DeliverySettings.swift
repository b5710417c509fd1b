// The server-wide delivery settings that are small values of their own: recipient sorting,
// the SMTP timeouts (every phase has a named deadline with RFC 5321's default), rate limits
// and the pools a list's mail goes to.

public typealias Seconds = Double

/// SORT_RECIPIENTS.
public enum RecipientSort: Int, Sendable {
    /// Keep the job's order.
    case keep = 0
    /// Sort by domain, so a relay can batch per destination.
    case byDomain = 1
    /// Sort by domain only when a transaction has more than MAXBSMTP recipients and is split.
    case byDomainWhenSplit = 2
}

/// How long a worker waits for each phase of an SMTP dialogue (RFC 5321 §4.5.3.2 defaults;
/// Postfix's parameter names beside them).
public struct SMTPTimeoutSettings: Hashable, Sendable {
    public var connect: Seconds = 30      // SMTP_CONNECT_TIMEOUT (smtp_connect_timeout)
    public var greeting: Seconds = 300    // SMTP_GREETING_TIMEOUT (smtp_helo_timeout; also EHLO/HELO)
    public var command: Seconds = 300     // SMTP_COMMAND_TIMEOUT (smtp_mail_timeout, smtp_rcpt_timeout; RSET, QUIT)
    public var dataInit: Seconds = 120    // SMTP_DATA_INIT_TIMEOUT (smtp_data_init_timeout: reply to DATA)
    public var dataBlock: Seconds = 180   // SMTP_DATA_BLOCK_TIMEOUT (smtp_data_xfer_timeout: each write)
    public var dataDone: Seconds = 600    // SMTP_DATA_DONE_TIMEOUT (smtp_data_done_timeout: reply to the dot)
    public var tlsHandshake: Seconds = 300 // SMTP_TLS_TIMEOUT (smtp_starttls_timeout: the TLS handshake)
    /// SMTP_IDLE_PROBE: a connection idle this long is probed with RSET before it is used again.
    public var idleProbe: Seconds = 10

    public init() {}
}

/// One SMTP_RATE_LIMIT item: `12Mbps` for the whole server, `AB:1.5Mbps` for a pool group.
public struct RateLimit: Sendable, Hashable {
    /// nil: the server-wide limit.
    public var pools: PoolSet?
    public var bitsPerSecond: Double

    public init(pools: PoolSet?, bitsPerSecond: Double) {
        self.pools = pools
        self.bitsPerSecond = bitsPerSecond
    }
}

/// LIST_POOL_<LISTNAME>="x,y": the pool a list's postings go to, and the pool for its
/// administrative mail (y defaults to x).
public struct ListPools: Sendable, Hashable {
    public var posting: Pool
    public var admin: Pool

    public init(posting: Pool, admin: Pool) {
        self.posting = posting
        self.admin = admin
    }
}
