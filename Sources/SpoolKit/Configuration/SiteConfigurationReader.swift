// Places each KEY=VALUE entry of a site configuration: the table of keys, the checks that
// span lines (a key or worker number given twice, SPOOL_DIR missing), and the warnings
// about configurations that run but do less than the operator may think.

struct SiteConfigurationReader {
    let file: String
    private var configuration: SiteConfiguration
    private var spoolDirectory: String?
    private var workerLines: [WorkerLine] = []
    private var lineWarnings: [String] = []
    /// Where each key was first given; worker lines by their number ("SMTP_FORWARD_1").
    private var seen: [String: Int] = [:]

    private static let timeoutKeys: Set<String> = [
        "SMTP_CONNECT_TIMEOUT", "SMTP_GREETING_TIMEOUT", "SMTP_COMMAND_TIMEOUT",
        "SMTP_DATA_INIT_TIMEOUT", "SMTP_DATA_BLOCK_TIMEOUT", "SMTP_DATA_DONE_TIMEOUT",
        "SMTP_TLS_TIMEOUT", "SMTP_IDLE_PROBE",
    ]

    /// The timeout a key sets (key paths are not Sendable, so no static table of them).
    private static func timeout(_ key: String) -> WritableKeyPath<SMTPTimeoutSettings, Seconds>? {
        switch key {
        case "SMTP_CONNECT_TIMEOUT": \.connect
        case "SMTP_GREETING_TIMEOUT": \.greeting
        case "SMTP_COMMAND_TIMEOUT": \.command
        case "SMTP_DATA_INIT_TIMEOUT": \.dataInit
        case "SMTP_DATA_BLOCK_TIMEOUT": \.dataBlock
        case "SMTP_DATA_DONE_TIMEOUT": \.dataDone
        case "SMTP_TLS_TIMEOUT": \.tlsHandshake
        case "SMTP_IDLE_PROBE": \.idleProbe
        default: nil
        }
    }

    static let keys: Set<String> = timeoutKeys.union([
        "SPOOL_DIR", "SMTP_STRICTLY_ROUND_ROBIN", "SMTP_ROUND_ROBIN_WAIT", "MAXBSMTP", "MERGE_SLICE", "SORT_RECIPIENTS",
        "DNS_SERVER", "MX_SITE_CONNECTIONS", "MX_SITE_MESSAGES", "MX_PORT",
        "RETRY_SCHEDULE", "QUEUE_LIFETIME", "SMTP_RATE_LIMIT", "SIZE_BINS", "HELO_NAME", "SPOOL_RESCAN_INTERVAL",
        "LOG_DIR", "METRICS_FILE", "CONTROL_SOCKET", "RUN_AS", "DEFAULT_LIST_POOL",
        "DIST_FORWARD", "DIST_FORWARD_THRESHOLD", "DIST_FORWARD_MINSIZE", "DIST_SECRET",
    ])
    private static let workerPrefix = "SMTP_FORWARD_"
    private static let listPoolPrefix = "LIST_POOL_"

    init(file: String) {
        self.file = file
        configuration = SiteConfiguration(file: file, spoolDirectory: "")
    }

    mutating func read(_ entry: ConfigurationEntry) throws(ConfigurationError) {
        let key = entry.key
        guard SiteConfigurationReader.keys.contains(key) || key.hasPrefix(SiteConfigurationReader.workerPrefix)
                || key.hasPrefix(SiteConfigurationReader.listPoolPrefix) else {
            throw ConfigurationError(file: file, line: entry.line, message: "unknown key '\(key)'")
        }
        do throws(ConfigurationFault) {
            try place(entry)
        } catch {
            throw ConfigurationError(file: file, line: entry.line, message: "\(key): \(error.message)")
        }
    }

    private mutating func place(_ entry: ConfigurationEntry) throws(ConfigurationFault) {
        let key = entry.key
        let value = entry.value[...]
        if key.hasPrefix(SiteConfigurationReader.workerPrefix) {
            let numberText = key.dropFirst(SiteConfigurationReader.workerPrefix.count)
            guard ConfigurationText.isDigits(numberText), let number = Int(numberText), number > 0 else {
                throw ConfigurationFault("'\(numberText)' is not a worker number (1, 2, …)")
            }
            try noteFirstUse(of: SiteConfigurationReader.workerPrefix + String(number), at: entry.line,
                             what: "worker number \(number)")
            try checkNotEmpty(value)
            let workerLine = try WorkerLineSyntax.parse(value, number: number, line: entry.line)
            if workerLine.tlsCA != nil && workerLine.tls == .none {
                lineWarnings.append("\(key) (line \(entry.line)): TLS_CA is ignored with TLS=none")
            }
            workerLines.append(workerLine)
            return
        }
        try noteFirstUse(of: key, at: entry.line)
        try checkNotEmpty(value)
        if key.hasPrefix(SiteConfigurationReader.listPoolPrefix) {
            let list = key.dropFirst(SiteConfigurationReader.listPoolPrefix.count)
            guard !list.isEmpty else { throw ConfigurationFault("no list name after \(SiteConfigurationReader.listPoolPrefix)") }
            configuration.listPools[String(list)] = try ConfigurationValues.listPools(value)
            return
        }
        if let timeout = SiteConfigurationReader.timeout(key) {
            configuration.timeouts[keyPath: timeout] = try ConfigurationValues.duration(value)
            return
        }
        switch key {
        case "SPOOL_DIR": spoolDirectory = try ConfigurationValues.text(value)
        case "SMTP_STRICTLY_ROUND_ROBIN": configuration.strictRoundRobin = try ConfigurationValues.flag(value)
        case "SMTP_ROUND_ROBIN_WAIT": configuration.strictRoundRobinWait = try ConfigurationValues.duration(value, allowZero: true)
        case "MAXBSMTP": configuration.maxBSMTP = try ConfigurationValues.positiveWhole(value)
        case "MERGE_SLICE": configuration.mergeSlice = try ConfigurationValues.positiveWhole(value)
        case "DNS_SERVER": configuration.dnsServer = try ConfigurationValues.serverAddress(value)
        case "MX_SITE_CONNECTIONS": configuration.mxSiteConnections = try ConfigurationValues.positiveWhole(value)
        case "MX_SITE_MESSAGES": configuration.mxSiteMessages = try ConfigurationValues.positiveWhole(value)
        case "MX_PORT":
            guard let port = UInt16(value), port > 0 else { throw ConfigurationFault("'\(value)' is not a port 1...65535") }
            configuration.mxPort = port
        case "SORT_RECIPIENTS":
            guard ConfigurationText.isDigits(value), let number = Int(value), let sort = RecipientSort(rawValue: number) else {
                throw ConfigurationFault("'\(value)' is not 0 (keep order), 1 (sort by domain) or 2 (sort by domain when split)")
            }
            configuration.sortRecipients = sort
        case "RETRY_SCHEDULE": configuration.retrySchedule = try ConfigurationValues.durations(value)
        case "QUEUE_LIFETIME": configuration.queueLifetime = try ConfigurationValues.duration(value)
        case "SMTP_RATE_LIMIT": configuration.rateLimits = try ConfigurationValues.rateLimits(value)
        case "SIZE_BINS": configuration.sizeBinsKB = try ConfigurationValues.sizeBins(value)
        case "HELO_NAME":
            try RelayHostSyntax.checkHeloName(value)
            configuration.heloName = entry.value
        case "SPOOL_RESCAN_INTERVAL": configuration.rescanInterval = try ConfigurationValues.duration(value)
        case "LOG_DIR": configuration.logDirectory = try ConfigurationValues.text(value)
        case "METRICS_FILE": configuration.metricsFile = try ConfigurationValues.text(value)
        case "CONTROL_SOCKET": configuration.controlSocket = try ConfigurationValues.text(value)
        case "RUN_AS":
            guard !value.contains(where: ConfigurationText.isBlank) else { throw ConfigurationFault("'\(value)' is not a user name") }
            configuration.runAs = entry.value
        case "DEFAULT_LIST_POOL": configuration.defaultListPool = try ConfigurationValues.pool(value)
        case "DIST_FORWARD":
            configuration.distribute.peers = try DistributeSyntax.peers(value)
            configuration.distribute.line = entry.line
        case "DIST_FORWARD_THRESHOLD": configuration.distribute.threshold = try ConfigurationValues.positiveWhole(value)
        case "DIST_FORWARD_MINSIZE": configuration.distribute.minimumSizeKB = try DistributeSyntax.kilobytes(value)
        case "DIST_SECRET": configuration.distribute.secretFile = try ConfigurationValues.text(value)
        default: throw ConfigurationFault("unknown key")  // not reached: read(_:) checks the key table
        }
    }

    /// `what` names the thing given twice when the key as written does not ("worker number 1").
    private mutating func noteFirstUse(of key: String, at line: Int, what: String? = nil) throws(ConfigurationFault) {
        if let first = seen[key] {
            throw ConfigurationFault((what.map { "\($0) " } ?? "") + "given twice (lines \(first) and \(line))")
        }
        seen[key] = line
    }

    private func checkNotEmpty(_ value: Substring) throws(ConfigurationFault) {
        guard !ConfigurationText.trimmed(value).isEmpty else { throw ConfigurationFault("the value is empty") }
    }

    /// The configuration, once every line is read: checks SPOOL_DIR, expands the workers and
    /// adds the warnings.
    func finish() throws(ConfigurationError) -> SiteConfiguration {
        guard let spoolDirectory else {
            throw ConfigurationError(file: file, line: nil, message: "SPOOL_DIR is required")
        }
        var result = configuration
        if let line = result.distribute.line, result.distribute.secretFile == nil {
            throw ConfigurationError(file: file, line: line,
                                     message: "DIST_FORWARD: needs DIST_SECRET= (the file holding the key shared with the peers)")
        }
        result.spoolDirectory = spoolDirectory
        result.workerLines = workerLines.sorted { $0.number < $1.number }
        result.workers = SiteConfiguration.expand(result.workerLines)
        result.warnings = warnings(for: result) + lineWarnings
        return result
    }

    private func warnings(for configuration: SiteConfiguration) -> [String] {
        guard !configuration.workers.isEmpty else {
            return ["no SMTP_FORWARD_n lines: no worker, the daemon will deliver nothing"]
        }
        var warnings: [String] = []
        if configuration.dnsServer != nil && !configuration.workerLines.contains(where: \.isDirect) {
            warnings.append("DNS_SERVER is set but no SMTP_FORWARD_n line is MX: nothing asks it")
        }
        let unserved = { (pool: Pool) in configuration.workers(serving: pool).isEmpty }
        if unserved(.default) { warnings.append("no worker serves the default pool '-'") }
        var named: [(Pool, String)] = []
        if let pool = configuration.defaultListPool { named.append((pool, "DEFAULT_LIST_POOL")) }
        for (list, pools) in configuration.listPools.sorted(by: { $0.key < $1.key }) {
            named.append((pools.posting, "\(SiteConfigurationReader.listPoolPrefix)\(list)"))
            if pools.admin != pools.posting { named.append((pools.admin, "\(SiteConfigurationReader.listPoolPrefix)\(list)")) }
        }
        for (pool, key) in named where pool != .default && unserved(pool) {
            warnings.append("no worker serves pool '\(pool)' (named by \(key))")
        }
        if !configuration.distribute.isForwarding {
            for key in ["DIST_FORWARD_THRESHOLD", "DIST_FORWARD_MINSIZE"] where seen[key] != nil {
                warnings.append("\(key) (line \(seen[key] ?? 0)) is ignored without DIST_FORWARD")
            }
        }
        return warnings
    }
}
