// METRICS_FILE: the status snapshot in Prometheus' text exposition format (version 0.0.4),
// for node_exporter's textfile collector or any scraper that reads a file. Every metric is
// named `poold_…`, has # HELP and # TYPE lines, and counters end in `_total`. The file is
// replaced atomically (rename), so a reader sees the previous write or this one, never
// half of one; it is a view, so there is no fsync.
//
// Counters count since the daemon started (they restart at 0, which Prometheus' rate()
// understands as a reset). Pool "-" is labelled pool="default".

import Foundation
import SpoolKit
import Synchronization

/// One metric with its samples, as the exposition format groups them.
struct MetricFamily: Sendable, Equatable {
    enum Kind: String, Sendable { case gauge, counter }
    struct Sample: Sendable, Equatable {
        var labels: [Label]
        var value: Double
        init(_ labels: [Label] = [], _ value: Double) {
            self.labels = labels
            self.value = value
        }
    }
    struct Label: Sendable, Equatable {
        var name: String
        var value: String
        init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    var name: String
    var help: String
    var kind: Kind
    var samples: [Sample]

    init(_ name: String, _ kind: Kind, _ help: String, _ samples: [Sample]) {
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples
    }
}

enum MetricsFile {
    /// The snapshot as exposition text, then `extra` families (the daemon adds its rate
    /// limits: `rateLimitFamily`).
    static func render(_ snapshot: StatusSnapshot, extra: [MetricFamily] = []) -> String {
        (families(snapshot) + extra).map(text).joined()
    }

    /// Replaces the file at `path` atomically (a temporary name in the same directory, then
    /// rename). Mode 0644: the scraper usually runs as another user.
    static func write(_ text: String, to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        try AtomicFile.write(directory: directory, name: name, bytes: Array(text.utf8), mode: 0o644, sync: false)
    }

    private static let failing = Atomic<Bool>(false)

    /// `write(render(snapshot), to: path)` for the status loop: a failure is logged once,
    /// and again only after a write has succeeded in between.
    static func publish(_ snapshot: StatusSnapshot, extra: [MetricFamily] = [], to path: String) {
        do {
            try write(render(snapshot, extra: extra), to: path)
            failing.store(false, ordering: .relaxed)
        } catch {
            if !failing.exchange(true, ordering: .relaxed) { Log.warning("METRICS_FILE \(path): \(error)") }
        }
    }

    /// SMTP_RATE_LIMIT as a gauge per pool group ("*" for the server-wide limit); nil without limits.
    static func rateLimitFamily(_ limits: [RateLimit]) -> MetricFamily? {
        guard !limits.isEmpty else { return nil }
        return MetricFamily("poold_rate_limit_bits_per_second", .gauge, "SMTP_RATE_LIMIT: the limit in force, per pool group",
                            limits.map { MetricFamily.Sample([MetricFamily.Label("pools", $0.pools?.description ?? "*")], $0.bitsPerSecond) })
    }

    static func families(_ s: StatusSnapshot) -> [MetricFamily] {
        typealias Sample = MetricFamily.Sample
        typealias Label = MetricFamily.Label
        let pools = s.pools.keys.sorted { ($0 == "-" ? "" : $0) < ($1 == "-" ? "" : $1) }
        func poolLabel(_ pool: String) -> [Label] { [Label("pool", pool == "-" ? "default" : pool)] }
        func workerLabels(_ w: WorkerStatus) -> [Label] { [Label("worker", String(w.id)), Label("host", w.host)] }
        func perWorker(_ name: String, _ help: String, _ value: (WorkerStatus) -> Double) -> MetricFamily {
            MetricFamily(name, .counter, help, s.workers.map { Sample(workerLabels($0), value($0)) })
        }
        var result = [
            MetricFamily("poold_up", .gauge, "1 when the daemon is running, 0 when it is stopped",
                         [Sample([], s.daemon == "running" ? 1 : 0)]),
        ]
        if let started = s.started {
            result.append(MetricFamily("poold_start_time_seconds", .gauge, "When the daemon started, in seconds since the epoch",
                                       [Sample([], started)]))
        }
        if let updated = s.updated {
            result.append(MetricFamily("poold_status_time_seconds", .gauge, "When these figures were taken, in seconds since the epoch",
                                       [Sample([], updated)]))
        }
        result += [
            MetricFamily("poold_queued_jobs", .gauge, "Jobs waiting in the spool, per pool",
                         pools.map { Sample(poolLabel($0), Double(s.pools[$0]!.queued)) }),
            MetricFamily("poold_queued_bytes", .gauge, "Size of the jobs waiting in the spool, per pool",
                         pools.map { Sample(poolLabel($0), Double(s.pools[$0]!.bytes)) }),
            MetricFamily("poold_deferred_jobs", .gauge, "Jobs waiting for their next retry",
                         [Sample([], Double(s.deferred))]),
            MetricFamily("poold_bad_jobs", .gauge, "Jobs set aside in bad/ (see their .why files)",
                         [Sample([], Double(s.bad))]),
            MetricFamily("poold_worker_state", .gauge, "1 for the state each worker is in, 0 for the others",
                         s.workers.flatMap { w in
                             WorkerStatus.State.allCases.map { state in
                                 Sample(workerLabels(w) + [Label("state", state.rawValue)], w.state == state ? 1 : 0)
                             }
                         }),
            perWorker("poold_worker_delivered_total", "Recipients the relay accepted") { Double($0.delivered) },
            perWorker("poold_worker_deferred_total", "Recipients deferred for a later retry") { Double($0.deferred) },
            perWorker("poold_worker_failed_total", "Recipients that failed for good (reported to the sender)") { Double($0.failed) },
            perWorker("poold_worker_quarantined_total", "Jobs moved to bad/") { Double($0.quarantined) },
            perWorker("poold_worker_jobs_total", "Jobs finished (every recipient decided, or moved to bad/)") { Double($0.jobs) },
            perWorker("poold_worker_sent_bytes_total", "Message bytes (wire form) of the transactions a relay accepted") { Double($0.bytes) },
            perWorker("poold_worker_connections_total", "Connections opened to a relay") { Double($0.connections) },
            perWorker("poold_worker_connection_failures_total", "Attempts to connect to a relay that failed") { Double($0.connectionFailures) },
        ]
        return result
    }

    static func text(_ family: MetricFamily) -> String {
        var out = "# HELP \(family.name) \(escapeHelp(family.help))\n# TYPE \(family.name) \(family.kind.rawValue)\n"
        for sample in family.samples {
            out += family.name
            if !sample.labels.isEmpty {
                out += "{" + sample.labels.map { "\($0.name)=\"\(escapeLabel($0.value))\"" }.joined(separator: ",") + "}"
            }
            out += " " + number(sample.value) + "\n"
        }
        return out
    }

    /// Integers without a fraction; the format's spellings for the special values.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escapeLabel(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
