// `poolctl check`: validates the configuration the way poold does at start and prints
// what it would run: each worker (host, pools, windows, failover) and, per pool, who
// serves it. An error names the file and line and exits 1.

import Foundation
import SpoolKit

enum Check {
    static func run(_ path: String) {
        let config: SiteConfiguration
        do {
            config = try SiteConfiguration.load(path: path)
        } catch {
            fail("\(error)")
        }
        guard (try? FileSystem.status(config.spoolDirectory))?.isDirectory == true else {
            fail("\(path): SPOOL_DIR \(config.spoolDirectory) does not exist (poold would not start)")
        }
        // What poold refuses to start with is refused here before anything is called OK.
        let key: ShareKey?
        do {
            key = try config.checkDistribute()
        } catch {
            fail("\(path)\(config.distribute.line.map { ":\($0)" } ?? ""): \(error)")
        }
        print("\(path): OK")
        print("spool: \(config.spoolDirectory)")
        if !config.sizeBinsKB.isEmpty { print("size bins: " + config.sizeBinsKB.map { "≤\($0) kB" }.joined(separator: ", ") + ", larger") }
        print("MAXBSMTP=\(config.maxBSMTP)  SORT_RECIPIENTS=\(config.sortRecipients.rawValue)  strict round-robin: \(config.strictRoundRobin ? "on" : "off")")
        print("")
        var rows = [["WORKER", "LINE", "HOST", "FAILOVER", "POOLS", "WINDOWS", "NOW", "MAXSIZE", "ROUND-ROBIN"]]
        let now = Date()
        for w in config.workers {
            let s = w.settings
            rows.append([String(w.id), "SMTP_FORWARD_\(s.number)", s.isDirect ? "MX (direct)" : s.relay.description, s.failover?.description ?? "-",
                         s.pools.description, s.windows.isEmpty ? "always" : s.windows.map(\.description).joined(separator: ","),
                         s.isOpen(at: now, calendar: .current) ? "open" : (s.failover == nil ? "closed" : "failover"),
                         s.maxSizeKB.map { "\($0) kB" } ?? "-", config.roundRobinPlaces(worker: w.id) ?? "-"])
        }
        for line in Status.table(rows, rightAligned: [0]) { print(line) }
        if let mx = config.workerLines.first(where: \.isDirect) {
            let connections = config.workerLines.filter(\.isDirect).reduce(0) { $0 + $1.count }
            print("")
            print("MX lines deliver straight to each recipient domain's mail exchangers (RFC 5321 §5): MX records by")
            print("preference, else the domain's own address; every address tried in turn. Recipients are binned by their")
            print("domain's exchangers (a site); \(connections) connection(s) in all, at most \(config.mxSiteConnections) per site")
            print("(MX_SITE_CONNECTIONS), \(config.mxSiteMessages) message(s) per connection (MX_SITE_MESSAGES), port \(config.mxPort).")
            print("DNS: \(config.dnsServer.map { "DNS_SERVER=\($0)" } ?? "the system's resolver (/etc/resolv.conf)"); TLS=\(mx.tls.rawValue)\(mx.tls == .may ? " (STARTTLS when offered, not verified)" : "").")
        }
        print("")
        if !config.workers.isEmpty && config.workers.allSatisfy({ $0.settings.pools.isAll }) {
            print("every pool: workers " + config.workers.map { String($0.id) }.joined(separator: ","))
        } else {
            for pool in Pool.all {
                let serving = config.workers(serving: pool).map { String($0.id) }
                if pool == .default || !serving.isEmpty {
                    print("pool \(pool): " + (serving.isEmpty ? "no worker" : "workers " + serving.joined(separator: ",")))
                }
            }
        }

        distribute(config, key: key)
        for warning in config.warnings { print("warning: \(warning)") }
        for pool in config.unservedPools(in: Spool(root: config.spoolDirectory)) {
            print("warning: pool \(pool) holds jobs but no worker serves it")
        }
    }

    /// The Distribute setup: who gets which part of a large job, and the key (checked
    /// before, in `run`).
    static func distribute(_ config: SiteConfiguration, key: ShareKey?) {
        let settings = config.distribute
        guard settings.isForwarding || settings.secretFile != nil else { return }
        print("")
        if settings.isForwarding {
            let total = settings.peers.reduce(0) { $0 + $1.weight }
            print("distribute (DIST_FORWARD, line \(settings.line ?? 0)): jobs of \(settings.threshold) rows or recipients or more"
                  + (settings.minimumSizeKB > 0 ? ", \(settings.minimumSizeKB) kB or larger," : "") + " are shared:")
            var rows = [["PEER", "WEIGHT", "SHARE"]]
            for peer in settings.peers {
                rows.append([peer.peer == .local ? "SELF (spooled here)" : peer.peer.description, String(peer.weight),
                             String(format: "%.1f%%", 100 * Double(peer.weight) / Double(total))])
            }
            for line in Status.table(rows, rightAligned: [1, 2]) { print("  " + line) }
        } else {
            print("distribute: receives shares (poolctl receive); DIST_FORWARD is not set, so nothing is distributed from here")
        }
        if let key, let file = settings.secretFile { print("DIST_SECRET \(file): OK (a \(key.length)-byte key, mode 0600 or stricter)") }
    }
}
