// `poolctl status`: the spool as it is on disk (queued per pool, deferred, bad) and the
// workers as the running daemon last reported them; with the daemon stopped, the workers
// of the configuration, stopped. Human output reads like mailq: aligned, human units.
// `--watch` (Watch.swift) redraws the same screen with rates until stopped.

import Foundation
import SpoolKit

enum Status {
    static func run(_ config: SiteConfiguration, _ arguments: [String]) {
        var json = false
        var watch = false
        var interval: Double?
        var count: Int?
        var rest = arguments[...]
        while let a = rest.popFirst() {
            switch a {
            case "--json": json = true
            case "--watch": watch = true
            case "--interval":
                guard let v = rest.popFirst().flatMap(Double.init), v >= Watch.shortestInterval, v <= Watch.longestInterval else {
                    fail("status: --interval needs seconds between \(Watch.shortestInterval) and \(Int(Watch.longestInterval))", status: 64)
                }
                interval = v
            case "--count":
                guard let v = rest.popFirst().flatMap({ Int($0) }), v >= 1 else { fail("status: --count needs a number ≥ 1", status: 64) }
                count = v
            default: fail("status: unknown option '\(a)'", status: 64)
            }
        }
        if !watch && (interval != nil || count != nil) { fail("status: --interval and --count go with --watch", status: 64) }
        if watch && json { fail("status: --watch shows the screen; use --json without --watch (once per call)", status: 64) }
        let spool = Spool(root: config.spoolDirectory)
        guard (try? FileSystem.status(spool.root))?.isDirectory == true else {
            fail("the spool \(spool.root) does not exist")
        }
        if watch {
            Watch.run(config, spool: spool, interval: interval ?? 1, count: count)
            return
        }
        let snapshot = current(config, spool: spool)
        if json {
            FileHandle.standardOutput.write(Data(snapshot.encoded()))
            print()
        } else {
            print(render(snapshot, spool: spool))
        }
    }

    /// The spool as it is on disk, with the workers as the running daemon last reported them.
    static func current(_ config: SiteConfiguration, spool: Spool) -> StatusSnapshot {
        var snapshot = StatusSnapshot.scan(spool)
        if let pid = spool.daemonPID() {
            snapshot.daemon = "running"
            snapshot.pid = pid
            do {
                if let live = StatusSnapshot.decode(try FileSystem.readAll(spool.statusPath)) {
                    snapshot.workers = live.workers
                    snapshot.merges = live.merges
                    snapshot.sites = live.sites
                    snapshot.shares = live.shares
                    snapshot.heldPools = live.heldPools
                    snapshot.started = live.started
                    snapshot.updated = live.updated
                }
            } catch {
                // Say so rather than show every worker idle.
                FileHandle.standardError.write(Data("poolctl: cannot read the daemon's \(error); worker states are unknown\n".utf8))
            }
        }
        if snapshot.workers.isEmpty {
            snapshot.workers = config.workers.map {
                WorkerStatus(id: $0.id, host: $0.settings.relay.description, pools: $0.settings.pools.description,
                             state: snapshot.daemon == "running" ? .unknown : .stopped)
            }
        }
        for pool in [Pool.default] where snapshot.pools[pool.description] == nil {
            snapshot.pools[pool.description] = PoolCount()
        }
        return snapshot
    }

    /// The status screen; `rates` (recipients delivered per second, by worker id) adds a
    /// column for `--watch`, "—" where a worker has no rate yet.
    static func render(_ s: StatusSnapshot, spool: Spool, rates: [Int: Double]? = nil) -> String {
        var out: [String] = []
        let now = Date().timeIntervalSince1970
        if s.daemon == "running" {
            let up = s.started.map { " for " + age(now - $0) } ?? ""
            out.append("poold running (pid \(s.pid.map(String.init) ?? "?"))\(up), spool \(spool.root)")
        } else {
            out.append("poold stopped, spool \(spool.root)")
        }
        out.append("")
        var rows = [["POOL", "QUEUED", "BYTES", ""]]
        let heldPools = Set(s.heldPools ?? [])
        for pool in Set(s.pools.keys).union(heldPools).sorted(by: { ($0 == "-" ? "" : $0) < ($1 == "-" ? "" : $1) }) {
            let c = s.pools[pool] ?? PoolCount()
            rows.append([pool, String(c.queued), bytes(c.bytes), heldPools.contains(pool) ? "held (poolctl release \(pool))" : ""])
        }
        out += table(rows, rightAligned: [1, 2])
        out.append("deferred: \(s.deferred)   held: \(s.held ?? 0)   bad: \(s.bad)")
        out.append("")
        var workers = [["WORKER", "HOST", "POOLS", "STATE", "JOB", "DELIVERED", "DEFERRED", "FAILED"] + (rates == nil ? [] : ["RCPT/S"])]
        for w in s.workers {
            var state = w.state.rawValue
            if let since = w.since, w.state != .idle, w.state != .stopped { state += " " + age(now - since) }
            var row = [String(w.id), w.host, w.pools, state, w.job ?? "-", String(w.delivered), String(w.deferred), String(w.failed)]
            if let rates { row.append(rates[w.id].map { String(format: "%.1f", $0) } ?? "—") }
            workers.append(row)
        }
        out += table(workers, rightAligned: [0, 5, 6, 7, 8])
        for w in s.workers {
            if let tls = w.tls { out.append("worker \(w.id): \(w.peer ?? w.host) over \(tls)") }
        }
        for w in s.workers where w.state == .down {
            if let e = w.lastError { out.append("worker \(w.id) down: \(e)") }
        }
        if let sites = s.sites, !sites.isEmpty {
            out.append("")
            var rows = [["SITE", "QUEUED", "CONN", "STATE", "TLS", "DELIVERED", "DEFERRED", "FAILED", "LAST REPLY"]]
            for site in sites {
                rows.append([site.site, String(site.queued), String(site.connections), site.state, site.tls == nil ? "-" : "yes",
                             String(site.delivered), String(site.deferred), String(site.failed), String((site.lastReply ?? "-").prefix(60))])
            }
            out += table(rows, rightAligned: [1, 2, 5, 6, 7])
        }
        if let shares = s.shares, !shares.isEmpty {
            out.append("")
            var rows = [["DISTRIBUTED JOB", "SHARE", "PEER", "ITEMS", "JOB HERE", "STATE"]]
            for share in shares { rows.append([share.origin, share.share, share.peer, share.items, share.job, share.state]) }
            out += table(rows, rightAligned: [])
        }
        if let merges = s.merges, !merges.isEmpty {
            out.append("")
            var rows = [["MERGE JOB", "PASS", "ROWS", "DELIVERED", "DEFERRED", "FAILED", "SLICES LEFT", "ROWS/S", "DONE IN"]]
            for m in merges {
                rows.append([m.job, String(m.pass), String(m.rows), String(m.delivered), String(m.deferred), String(m.failed),
                             "\(m.slicesOpen)/\(m.slices)", String(format: "%.0f", m.rate), m.secondsLeft.map { age($0) } ?? "—"])
            }
            out += table(rows, rightAligned: [1, 2, 3, 4, 5, 6, 7])
        }
        return out.joined(separator: "\n")
    }

    static func table(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        guard let width = rows.first?.count else { return [] }
        let widths = (0..<width).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return rightAligned.contains(c) ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func age(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86400)d\(s % 86400 / 3600)h"
    }
}
