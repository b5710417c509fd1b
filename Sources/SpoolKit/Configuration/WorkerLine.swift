// One `SMTP_FORWARD_n` line: how many workers it starts, the relay they talk to, when they
// may talk to it, the failover relay, the pools they serve and the per-line options.
//   SMTP_FORWARD_n=[x*]host[:port][(window[,window…])][;failover[:port]][;KEY=VALUE…]
// Invariants after parsing: 1 <= count <= 1000; AUTH and SECRET come together; a line that
// authenticates over TLS=none says AUTH_INSECURE=1; ports default to 25, or 465 with TLS=smtps.

import Foundation

/// How a worker protects its connection to the relay.
public enum TLSMode: String, Sendable {
    /// Plain SMTP, never STARTTLS.
    case none
    /// STARTTLS when the relay offers it (the default).
    case may
    /// STARTTLS or no delivery.
    case require
    /// TLS from the first byte (RFC 8314), port 465 unless written.
    case smtps
}

/// What a worker does with a message that has 8-bit octets when its relay does not offer
/// 8BITMIME (RFC 6152).
public enum EightBitPolicy: String, Sendable {
    /// Convert it to 7-bit MIME, or fail it (5.6.3) when it cannot be converted (the default).
    case convert
    /// Send it as it is: for a relay the operator knows to be 8-bit clean.
    case pass
}

public struct WorkerLine: Hashable, Sendable {
    /// n of SMTP_FORWARD_n.
    public var number: Int
    /// The line in the configuration file.
    public var line: Int
    /// x of x*: how many workers this line starts.
    public var count: Int
    public var relay: RelayHost
    /// Empty: always open.
    public var windows: [OpenWindow]
    public var failover: RelayHost?
    public var pools: PoolSet
    /// MAXSIZE=: the largest message these workers take, in kB.
    public var maxSizeKB: Int?
    public var tls: TLSMode
    /// TLS_CA=: a CA file to verify the relay with instead of the system's.
    public var tlsCA: String?
    /// AUTH=: the user name to authenticate as.
    public var authUser: String?
    /// SECRET=: the file holding the password.
    public var secretFile: String?
    /// AUTH_INSECURE=1: authenticate even without TLS.
    public var authInsecure: Bool
    /// EIGHTBIT=convert|pass.
    public var eightBit = EightBitPolicy.convert

    /// The most workers one line may start.
    public static let maximumCount = 1000

    public init(number: Int, line: Int = 0, count: Int = 1, relay: RelayHost, windows: [OpenWindow] = [],
                failover: RelayHost? = nil, pools: PoolSet = .all, maxSizeKB: Int? = nil, tls: TLSMode = .may,
                tlsCA: String? = nil, authUser: String? = nil, secretFile: String? = nil, authInsecure: Bool = false,
                eightBit: EightBitPolicy = .convert) {
        self.number = number
        self.line = line
        self.count = count
        self.relay = relay
        self.windows = windows
        self.failover = failover
        self.pools = pools
        self.maxSizeKB = maxSizeKB
        self.tls = tls
        self.tlsCA = tlsCA
        self.authUser = authUser
        self.secretFile = secretFile
        self.authInsecure = authInsecure
        self.eightBit = eightBit
    }

    /// `MX` as the host: deliver straight to each recipient domain's mail exchangers.
    public var isDirect: Bool { relay.host.uppercased() == "MX" }

    /// Open at this instant (local time of `calendar`)? Always true with no windows.
    public func isOpen(at date: Date, calendar: Calendar) -> Bool {
        guard !windows.isEmpty else { return true }
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        guard let weekdayNumber = parts.weekday, let weekday = Weekday(rawValue: weekdayNumber - 1),
              let hour = parts.hour, let minute = parts.minute else { return false }
        return windows.contains { $0.isOpen(weekday: weekday, minute: hour * 60 + minute) }
    }
}

/// One worker thread after expanding x*: ids are 1...N in configuration order (line SMTP_FORWARD_1's workers first, ordered by n, not by file position).
public struct WorkerSpec: Hashable, Sendable {
    public var id: Int
    public var settings: WorkerLine

    public init(id: Int, settings: WorkerLine) {
        self.id = id
        self.settings = settings
    }
}

enum WorkerLineSyntax {
    static func parse(_ text: Substring, number: Int, line: Int) throws(ConfigurationFault) -> WorkerLine {
        let fields = text.split(separator: ";", omittingEmptySubsequences: false).map(ConfigurationText.trimmed)
        var main = fields[0]
        guard !main.isEmpty else { throw ConfigurationFault("no relay host given") }

        var count = 1
        if let star = main.firstIndex(of: "*") {
            let countText = ConfigurationText.trimmed(main[..<star])
            guard ConfigurationText.isDigits(countText), let number = Int(countText),
                  (1...WorkerLine.maximumCount).contains(number) else {
                throw ConfigurationFault("worker count '\(countText)' is not a number 1...\(WorkerLine.maximumCount)")
            }
            count = number
            main = ConfigurationText.trimmed(main[main.index(after: star)...])
        }

        var windows: [OpenWindow] = []
        if let open = main.firstIndex(of: "(") {
            guard main.last == ")" else { throw ConfigurationFault("the open-time windows in '\(main)' must end with ')'") }
            let inside = main[main.index(after: open)..<main.index(before: main.endIndex)]
            guard !ConfigurationText.trimmed(inside).isEmpty else { throw ConfigurationFault("'()' holds no open-time window") }
            windows = try OpenWindowSyntax.windows(inside)
            main = ConfigurationText.trimmed(main[..<open])
        } else if main.contains(")") {
            throw ConfigurationFault("')' without '(' in '\(main)'")
        }
        let relay = try RelayHostSyntax.hostAndPort(main)

        var options = WorkerOptions()
        var failover: (host: String, port: UInt16?)?
        for field in fields.dropFirst() {
            guard !field.isEmpty else { throw ConfigurationFault("an empty field between ';'") }
            if let equals = field.firstIndex(of: "=") {
                try options.set(ConfigurationText.trimmed(field[..<equals]).uppercased(),
                                to: ConfigurationText.trimmed(field[field.index(after: equals)...]))
            } else if failover == nil {
                let word = ConfigurationText.trimmed(field).uppercased()
                if WorkerOptions.keys.contains(word) || SiteConfigurationReader.keys.contains(word) {
                    // A host named like an option is a typo far more often than a host.
                    throw ConfigurationFault("'\(field)' is an option without '=' (a failover host cannot be named like an option)")
                }
                failover = try RelayHostSyntax.hostAndPort(field)
            } else {
                throw ConfigurationFault("a second failover host '\(field)' (a line has at most one)")
            }
        }
        try options.check()

        if relay.host.uppercased() == "MX" {
            if relay.port != nil { throw ConfigurationFault("MX takes no port (MX_PORT sets the port of mail exchangers)") }
            if failover != nil { throw ConfigurationFault("an MX line delivers to each domain's own exchangers: it has no failover") }
            if options.authUser != nil { throw ConfigurationFault("an MX line cannot authenticate (AUTH is for a relay)") }
            if options.tls == .smtps { throw ConfigurationFault("TLS=smtps does not apply to mail exchangers (port 25): use may or require") }
        }
        let defaultPort = options.tls == .smtps ? RelayHost.smtpsPort : RelayHost.smtpPort
        return WorkerLine(
            number: number, line: line, count: count,
            relay: RelayHost(host: relay.host, port: relay.port ?? defaultPort),
            windows: windows,
            failover: failover.map { RelayHost(host: $0.host, port: $0.port ?? defaultPort) },
            pools: options.pools, maxSizeKB: options.maxSizeKB, tls: options.tls, tlsCA: options.tlsCA,
            authUser: options.authUser, secretFile: options.secretFile, authInsecure: options.authInsecure,
            eightBit: options.eightBit)
    }
}

/// The `;KEY=VALUE` options of a worker line, as they are read.
private struct WorkerOptions {
    var pools = PoolSet.all
    var maxSizeKB: Int?
    var tls = TLSMode.may
    var tlsCA: String?
    var authUser: String?
    var secretFile: String?
    var authInsecure = false
    var eightBit = EightBitPolicy.convert
    private var seen: Set<String> = []

    static let keys: Set<String> = ["POOL", "MAXSIZE", "TLS", "TLS_CA", "AUTH", "SECRET", "AUTH_INSECURE", "EIGHTBIT"]

    mutating func set(_ key: String, to value: Substring) throws(ConfigurationFault) {
        guard WorkerOptions.keys.contains(key) else {
            throw ConfigurationFault("unknown option '\(key)' (known: \(WorkerOptions.keys.sorted().joined(separator: ", ")))")
        }
        guard seen.insert(key).inserted else { throw ConfigurationFault("option \(key) given twice") }
        do throws(ConfigurationFault) {
            switch key {
            case "POOL": pools = try ConfigurationValues.pools(value)
            case "MAXSIZE": maxSizeKB = try ConfigurationValues.positiveWhole(value)
            case "TLS":
                guard let mode = TLSMode(rawValue: value.lowercased()) else {
                    throw ConfigurationFault("'\(value)' is not none, may, require or smtps")
                }
                tls = mode
            case "TLS_CA": tlsCA = try ConfigurationValues.text(value)
            case "AUTH": authUser = try ConfigurationValues.text(value)
            case "SECRET": secretFile = try ConfigurationValues.text(value)
            case "AUTH_INSECURE": authInsecure = try ConfigurationValues.flag(value)
            case "EIGHTBIT":
                guard let policy = EightBitPolicy(rawValue: value.lowercased()) else {
                    throw ConfigurationFault("'\(value)' is not convert or pass")
                }
                eightBit = policy
            default: break  // not reached: checked against `keys` above
            }
        } catch {
            throw ConfigurationFault("\(key): \(error.message)")
        }
    }

    func check() throws(ConfigurationFault) {
        if authUser != nil && secretFile == nil {
            throw ConfigurationFault("AUTH needs SECRET= (the file that holds the password)")
        }
        if secretFile != nil && authUser == nil {
            throw ConfigurationFault("SECRET needs AUTH= (the user name)")
        }
        if authUser != nil && tls == .none && !authInsecure {
            throw ConfigurationFault("AUTH with TLS=none would send the password in clear: add AUTH_INSECURE=1 or use TLS=may, require or smtps")
        }
    }
}
