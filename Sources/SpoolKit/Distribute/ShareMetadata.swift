// What a share message says about itself, and the exact bytes its signature covers.
// Every value here travels in an `X-Poold-*` header, is signed, and is checked against
// the decoded job by `poolctl receive`. The signed text (version 1) is these lines, each
// ending in LF, then an empty line, then the share's job file exactly as decoded:
//   poold-share 1
//   id <share id>
//   job <origin job file name>
//   stem <stem the rows render with (&*MSGID;)>
//   pool <origin pool letter>
//   helo <HELO name the rows render with (&*MSGID;)>
//   share <i>/<n>
//   kind merge|bsmtp
//   items <first>-<last>         (merge: &*ROW; numbers; plain: 1-based recipient positions)
//   time <seconds since the epoch when the share was signed>
//   to <the peer's address>
// The signature is HMAC-SHA256 with the shared key over that text, in hex.

/// Who a job is: what its shares carry so that the peer renders as the primary would, and
/// what makes their ids unique and stable.
public struct ShareOrigin: Hashable, Sendable {
    public var name: JobName
    /// The primary's HELO_NAME.
    public var heloName: String
    /// Stable for one job file and different for another job of the same name: see
    /// `token(of:)`. Letters and digits, `-` allowed.
    public var token: String

    public init(name: JobName, heloName: String, token: String) {
        self.name = name
        self.heloName = heloName
        self.token = token
    }

    /// A token from the job file's inode and modification time, both kept by rename (so
    /// moves to `deferred/` and back, and a restart, keep it) and different for a later
    /// job that reuses the name.
    public static func token(of status: FileStatus) -> String {
        let microseconds = UInt64(max(0, status.modified * 1_000_000))
        return String(status.inode, radix: 36) + "-" + String(microseconds, radix: 36)
    }

    /// The job file name without `.MAIL`.
    public static func stem(of name: JobName) -> String { String(name.fileName.dropLast(JobName.suffix.count)) }

    /// A stem a share can carry (what `STEM=` accepts): letters, digits, `-_.+=`, at most
    /// `MergeParameters.maxStemLength` bytes.
    public static func isShareableStem(_ stem: String) -> Bool {
        !stem.isEmpty && stem.utf8.count <= MergeParameters.maxStemLength
            && stem.utf8.allSatisfy { MergeField.isNameByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "=") }
    }

    /// `<stem>.<token>.<i>of<n>.<first>-<last>@<helo>`: the same for every message the
    /// primary builds for this share of this job file (a resend after a crash too), so the
    /// peer can refuse a replay; different for any other share.
    public func shareID(_ share: PlannedShare) -> String {
        "\(ShareOrigin.stem(of: name)).\(token).\(share.index)of\(share.count).\(share.items.lowerBound + 1)-\(share.items.upperBound)@\(heloName)"
    }
}

public struct ShareMetadata: Hashable, Sendable {
    public static let version = 1

    public var id: String
    /// The origin job's file name, e.g. `A123.MAIL`.
    public var job: String
    /// The stem the rows' `&*MSGID;` use.
    public var stem: String
    public var pool: Pool
    /// The HELO name the rows' `&*MSGID;` use (the primary's).
    public var heloName: String
    public var index: Int
    public var count: Int
    public var kind: ShareKind
    /// Merge: the rows' `&*ROW;` numbers; plain: the recipients' 1-based positions.
    public var items: ClosedRange<Int>
    /// Seconds since the epoch when the share was signed.
    public var time: Int64
    /// The peer's address.
    public var recipient: String

    public init(id: String, job: String, stem: String, pool: Pool, heloName: String, index: Int, count: Int,
                kind: ShareKind, items: ClosedRange<Int>, time: Int64, recipient: String) {
        self.id = id
        self.job = job
        self.stem = stem
        self.pool = pool
        self.heloName = heloName
        self.index = index
        self.count = count
        self.kind = kind
        self.items = items
        self.time = time
        self.recipient = recipient
    }

    /// `2/4 rows 251-500 of A123.MAIL`, for log lines.
    public var summary: String {
        "\(index)/\(count) \(kind.itemName) \(items.lowerBound)-\(items.upperBound) of \(job)"
    }

    /// The signed text before the content (see the top of this file).
    public var canonical: [UInt8] {
        let lines = [
            "poold-share \(ShareMetadata.version)", "id \(id)", "job \(job)", "stem \(stem)", "pool \(pool)",
            "helo \(heloName)", "share \(index)/\(count)", "kind \(kind.rawValue)",
            "items \(items.lowerBound)-\(items.upperBound)", "time \(time)", "to \(recipient)",
        ]
        return Array((lines.joined(separator: "\n") + "\n\n").utf8)
    }

    // MARK: headers

    enum Field {
        static let version = "X-Poold-Share-Version"
        static let id = "X-Poold-Share-Id"
        static let job = "X-Poold-Origin-Job"
        static let stem = "X-Poold-Origin-Stem"
        static let pool = "X-Poold-Origin-Pool"
        static let helo = "X-Poold-Origin-Helo"
        static let share = "X-Poold-Share"
        static let kind = "X-Poold-Kind"
        static let time = "X-Poold-Time"
        static let recipient = "X-Poold-To"
        static let signature = "X-Poold-Signature"
        static let rows = "X-Poold-Rows"
        static let recipients = "X-Poold-Recipients"
        static let signed = [version, id, job, stem, pool, helo, share, kind, time, recipient]
        static let all = signed + [signature, rows, recipients]
    }

    /// The `X-Poold-*` header fields (the signature's comes separately).
    var headerFields: [(String, String)] {
        [(Field.version, "\(ShareMetadata.version)"), (Field.id, id), (Field.job, job), (Field.stem, stem),
         (Field.pool, pool.description), (Field.helo, heloName), (Field.share, "\(index)/\(count)"),
         (Field.kind, kind.rawValue), (kind == .merge ? Field.rows : Field.recipients, "\(items.lowerBound)-\(items.upperBound)"),
         (Field.time, "\(time)"), (Field.recipient, recipient)]
    }

    /// Reads the metadata back from header fields (names compared without regard to case,
    /// each at most once). The fault says which field is missing or wrong.
    static func parse(_ fields: [String: String]) -> Result<ShareMetadata, ShareFault> {
        func field(_ name: String) -> Result<String, ShareFault> {
            guard let value = fields[name.lowercased()], !value.isEmpty else { return .failure(.malformed("no \(name) header")) }
            return .success(value)
        }
        func number(_ text: Substring) -> Int? {
            ConfigurationText.isDigits(text) && text.count <= 18 ? Int(text) : nil
        }
        do throws(ShareFault) {
            let version = try field(Field.version).get()
            guard version == "\(ShareMetadata.version)" else { return .failure(.malformed("\(Field.version): \(version) is not 1 (a newer poold sent it?)")) }
            let id = try field(Field.id).get()
            let job = try field(Field.job).get()
            guard JobName(job) != nil else { return .failure(.malformed("\(Field.job): '\(job)' is not a job name")) }
            let stem = try field(Field.stem).get()
            guard ShareOrigin.isShareableStem(stem) else { return .failure(.malformed("\(Field.stem): '\(stem)' is not a job stem")) }
            let poolText = try field(Field.pool).get()
            guard poolText.count == 1, let pool = Pool(byte: poolText.utf8.first ?? 0), pool.description == poolText else {
                return .failure(.malformed("\(Field.pool): '\(poolText)' is not a pool"))
            }
            let helo = try field(Field.helo).get()
            guard (try? RelayHostSyntax.checkHeloName(helo[...])) != nil else { return .failure(.malformed("\(Field.helo): '\(helo)' is not a host name")) }
            let shareText = try field(Field.share).get()
            let parts = shareText.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let index = number(parts[0]), let count = number(parts[1]),
                  index >= 1, index <= count, count <= MergeParameters.maxShares else {
                return .failure(.malformed("\(Field.share): '\(shareText)' is not i/n"))
            }
            let kindText = try field(Field.kind).get()
            guard let kind = ShareKind(rawValue: kindText) else { return .failure(.malformed("\(Field.kind): '\(kindText)' is not merge or bsmtp")) }
            let itemsName = kind == .merge ? Field.rows : Field.recipients
            let itemsText = try field(itemsName).get()
            let bounds = itemsText.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 2, let first = number(bounds[0]), let last = number(bounds[1]), first >= 1, first <= last else {
                return .failure(.malformed("\(itemsName): '\(itemsText)' is not first-last"))
            }
            let timeText = try field(Field.time).get()
            guard let time = number(timeText[...]) else { return .failure(.malformed("\(Field.time): '\(timeText)' is not a time")) }
            let recipient = try field(Field.recipient).get()
            guard EnvelopeSyntax.problem(address: recipient, allowNull: false) == nil else {
                return .failure(.malformed("\(Field.recipient): '\(recipient)' is not an address"))
            }
            let metadata = ShareMetadata(id: id, job: job, stem: stem, pool: pool, heloName: helo, index: index, count: count,
                                         kind: kind, items: first...last, time: Int64(time), recipient: recipient)
            // Every value is one line of the signed text: printable ASCII, no space.
            guard metadata.headerFields.allSatisfy({ $0.1.utf8.allSatisfy { $0 > 32 && $0 < 127 } }) else {
                return .failure(.malformed("an X-Poold header value holds a space or a byte that is not printable ASCII"))
            }
            return .success(metadata)
        } catch {
            return .failure(error)
        }
    }
}

/// Why `poolctl receive` refuses a share, with the sysexits status each gives the MTA.
public enum ShareFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a share, or a share whose content does not match its headers: 65 (EX_DATAERR), bounced.
    case malformed(String)
    /// No signature, a wrong one, or too old: 77 (EX_NOPERM), bounced.
    case refused(String)
    /// The spool, the disk, the configuration or the key file: 75 (EX_TEMPFAIL), retried.
    case temporary(String)

    public var exitStatus: Int32 {
        switch self {
        case .malformed: return 65
        case .refused: return 77
        case .temporary: return 75
        }
    }

    public var description: String {
        switch self {
        case .malformed(let m), .refused(let m), .temporary(let m): return m
        }
    }
}
