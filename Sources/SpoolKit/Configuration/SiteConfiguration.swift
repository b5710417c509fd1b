// The site configuration: one LISTSERV-style file of KEY=VALUE lines (MISSION.md, "Site
// configuration"). `load` and `parse` either return a configuration in which every value
// has been checked, or throw an error naming the file and line; nothing is half-applied.
// Faults that do not stop delivery (no worker serves the default pool) are `warnings`.

import Foundation

public struct SiteConfiguration: Sendable, Equatable {
    /// The path it was read from.
    public var file: String
    /// SPOOL_DIR (required).
    public var spoolDirectory: String
    /// SMTP_FORWARD_n lines, sorted by n.
    public var workerLines: [WorkerLine]
    /// One entry per worker thread, x* expanded, ids 1...N.
    public var workers: [WorkerSpec]
    /// SMTP_STRICTLY_ROUND_ROBIN.
    public var strictRoundRobin = false
    /// SMTP_ROUND_ROBIN_WAIT: how long an earmarked job waits for a dead/paused/closed worker before another takes it.
    public var strictRoundRobinWait: Seconds = 60
    /// MAXBSMTP: recipients per transaction sent to a relay.
    public var maxBSMTP = 100
    /// MERGE_SLICE: rows of a mail-merge job handed to one worker at a time.
    public var mergeSlice = 500
    /// DNS_SERVER: the resolver MX lines ask (`address:port`); nil: the system's.
    public var dnsServer: String?
    /// MX_SITE_CONNECTIONS: the most connections MX lines open to one site at once.
    public var mxSiteConnections = 5
    /// MX_SITE_MESSAGES: messages one connection carries to a site before it closes.
    public var mxSiteMessages = 100
    /// MX_PORT: the port of mail exchangers (25; another for tests and labs).
    public var mxPort: UInt16 = 25
    /// SORT_RECIPIENTS.
    public var sortRecipients = RecipientSort.keep
    /// RETRY_SCHEDULE: delays after a temporary failure; the last repeats.
    public var retrySchedule: [Seconds] = [5 * 60, 15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600]
    /// QUEUE_LIFETIME: how long a recipient may stay deferred.
    public var queueLifetime: Seconds = 5 * 86400
    /// SMTP_RATE_LIMIT.
    public var rateLimits: [RateLimit] = []
    /// SIZE_BINS, in kB, strictly increasing.
    public var sizeBinsKB: [Int] = []
    /// HELO_NAME (nil: use the host name).
    public var heloName: String?
    public var timeouts = SMTPTimeoutSettings()
    /// SPOOL_RESCAN_INTERVAL: how often the spool is listed even without a change notice.
    public var rescanInterval: Seconds = 30
    /// LOG_DIR.
    public var logDirectory: String?
    /// METRICS_FILE.
    public var metricsFile: String?
    /// CONTROL_SOCKET (nil: the daemon picks SPOOL_DIR/.poold.sock).
    public var controlSocket: String?
    /// RUN_AS.
    public var runAs: String?
    /// DEFAULT_LIST_POOL.
    public var defaultListPool: Pool?
    /// LIST_POOL_<LISTNAME>="x,y", keyed by the upper-cased list name.
    public var listPools: [String: ListPools] = [:]
    /// DIST_FORWARD, DIST_FORWARD_THRESHOLD, DIST_FORWARD_MINSIZE, DIST_SECRET.
    public var distribute = DistributeSettings()
    /// Problems that do not stop poold, e.g. "no worker serves the default pool '-'".
    public var warnings: [String] = []

    /// A configuration with every default and these worker lines (expanded into `workers`).
    public init(file: String, spoolDirectory: String, workerLines: [WorkerLine] = []) {
        self.file = file
        self.spoolDirectory = spoolDirectory
        self.workerLines = workerLines.sorted { $0.number < $1.number }
        self.workers = SiteConfiguration.expand(self.workerLines)
    }

    /// One WorkerSpec per worker thread: line by line in order of n, x workers per `x*`.
    public static func expand(_ workerLines: [WorkerLine]) -> [WorkerSpec] {
        var workers: [WorkerSpec] = []
        for line in workerLines.sorted(by: { $0.number < $1.number }) {
            for _ in 0..<line.count { workers.append(WorkerSpec(id: workers.count + 1, settings: line)) }
        }
        return workers
    }

    /// The workers that serve `pool`, in id order.
    public func workers(serving pool: Pool) -> [WorkerSpec] {
        workers.filter { $0.settings.pools.contains(pool) }
    }

    /// Reads and parses the file at `path`.
    /// Only where the spool and the control socket are, from a file that may fail the full
    /// check (an edit that poold refused to reload while it runs on the one it loaded), so
    /// that `poolctl status` and the control commands still reach the daemon. Lines that do
    /// not read as KEY=VALUE are skipped; nil without a SPOOL_DIR.
    public static func locations(path: String) -> SiteConfiguration? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
              let text = String(data: data, encoding: .utf8) else { return nil }
        var found = SiteConfiguration(file: path, spoolDirectory: "")
        for line in text.split(whereSeparator: \.isNewline) {
            guard let entry = (try? ConfigurationLexer.entries(in: String(line), file: path))?.first else { continue }
            switch entry.key {
            case "SPOOL_DIR": found.spoolDirectory = entry.value
            case "CONTROL_SOCKET": found.controlSocket = entry.value
            default: break
            }
        }
        return found.spoolDirectory.isEmpty ? nil : found
    }

    public static func load(path: String) throws(ConfigurationError) -> SiteConfiguration {
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let reason = !exists ? "no such file" : isDirectory.boolValue ? "it is a directory" : "cannot be read (permission?)"
            throw ConfigurationError(file: path, line: nil, message: "cannot read the configuration: \(reason)")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw ConfigurationError(file: path, line: nil, message: "the configuration is not valid UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Parses configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(ConfigurationError) -> SiteConfiguration {
        var reader = SiteConfigurationReader(file: file)
        for entry in try ConfigurationLexer.entries(in: text, file: file) {
            try reader.read(entry)
        }
        return try reader.finish()
    }
}
