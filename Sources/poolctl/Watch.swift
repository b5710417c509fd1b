// `poolctl status --watch [--interval S] [--count N]`: the status screen again every S
// seconds (1 by default), with each worker's delivery rate and an estimate of when the
// queue will be empty. On a terminal each refresh clears the screen; into a pipe or a
// file each refresh is a new block after a blank line, so `--count N` suits scripts.
//
// Rates come from the daemon's own counters in `.state/status.json` and its `updated`
// time, not from this process's clock: the daemon writes the file once a second, so two
// reads a fraction of a second apart often see the same file, and a rate over the time
// between them would jump between 0 and double. They cover the last few seconds of
// updates, and start over when the daemon restarts (its pid or start time changes, or a
// counter goes down).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum Watch {
    static let shortestInterval = 0.1
    static let longestInterval = 3600.0
    /// Rates are taken over at most this many seconds of the daemon's updates.
    static let rateWindow = 5.0
    /// A running daemon whose status file is older than this is said to be so.
    static let staleAfter = 5.0

    static func run(_ config: SiteConfiguration, spool: Spool, interval: Double, count: Int?) {
        let terminal = isatty(STDOUT_FILENO) == 1
        var throughput = Throughput()
        let refreshes = count ?? Int.max   // without --count: until interrupted
        for refresh in 1...refreshes {
            let snapshot = Status.current(config, spool: spool)
            throughput.add(snapshot)
            var frame = header(interval: interval, refresh: refresh, of: count) + "\n\n"
            frame += Status.render(snapshot, spool: spool, rates: throughput.perWorker ?? [:]) + "\n\n"
            frame += summary(snapshot, throughput) + "\n"
            FileHandle.standardOutput.write(Data(((terminal ? "\u{1B}[H\u{1B}[2J" : "") + frame + (terminal ? "" : "\n")).utf8))
            if refresh < refreshes { Thread.sleep(forTimeInterval: interval) }
        }
    }

    static func header(interval: Double, refresh: Int, of count: Int?) -> String {
        let c = Calendar.current.dateComponents([.hour, .minute, .second], from: Date())
        let clock = String(format: "%02d:%02d:%02d", c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
        let every = interval == interval.rounded() ? String(Int(interval)) : String(interval)
        let progress = count.map { " (\(refresh) of \($0))" } ?? " (Ctrl-C to stop)"
        return "poolctl status --watch: every \(every)s at \(clock)\(progress)"
    }

    /// `throughput: 5.0 rcpt/s, 2.0 jobs/s; 10 jobs queued, empty in 5s`
    static func summary(_ s: StatusSnapshot, _ t: Throughput) -> String {
        let queued = s.pools.values.reduce(0) { $0 + $1.queued }
        guard s.daemon == "running" else { return "throughput: — (poold is stopped); \(queued) job(s) queued" }
        var line: String
        if let recipients = t.recipientsPerSecond, let jobs = t.jobsPerSecond {
            line = String(format: "throughput: %.1f rcpt/s, %.1f jobs/s; ", recipients, jobs)
            line += "\(queued) job(s) queued, empty in " + timeToEmpty(queued: queued, jobsPerSecond: jobs)
        } else {
            line = "throughput: — (waiting for a second status update); \(queued) job(s) queued, empty in —"
        }
        if let updated = s.updated, Date().timeIntervalSince1970 - updated > staleAfter {
            line += "\nthe daemon last wrote its status \(Status.age(Date().timeIntervalSince1970 - updated)) ago"
        }
        return line
    }

    /// Queued jobs over the rate at which jobs are finished; "—" while nothing is finished.
    static func timeToEmpty(queued: Int, jobsPerSecond: Double) -> String {
        if queued == 0 { return "0s" }
        guard jobsPerSecond > 0 else { return "—" }
        return Status.age((Double(queued) / jobsPerSecond).rounded(.up))
    }
}

/// The daemon's counters over its last few status updates, and the rates between the oldest and newest.
struct Throughput {
    struct Sample {
        var updated: Double
        var pid: Int32?
        var started: Double?
        var delivered: [Int: Int]
        var jobs: [Int: Int]
    }
    /// Oldest first; bounded by `Watch.rateWindow` and `maxSamples`.
    private(set) var samples: [Sample] = []
    static let maxSamples = 64

    mutating func add(_ snapshot: StatusSnapshot) {
        guard snapshot.daemon == "running", let updated = snapshot.updated else {
            samples.removeAll()
            return
        }
        let sample = Sample(updated: updated, pid: snapshot.pid, started: snapshot.started,
                            delivered: Dictionary(snapshot.workers.map { ($0.id, $0.delivered) }, uniquingKeysWith: { a, _ in a }),
                            jobs: Dictionary(snapshot.workers.map { ($0.id, $0.jobs) }, uniquingKeysWith: { a, _ in a }))
        if let last = samples.last {
            if last.updated == updated && last.pid == sample.pid { return }   // the same file again
            let restarted = last.pid != sample.pid || last.started != sample.started || updated < last.updated
                || sample.delivered.contains { id, n in n < last.delivered[id] ?? 0 }
                || sample.jobs.contains { id, n in n < last.jobs[id] ?? 0 }
            if restarted { samples.removeAll() }
        }
        samples.append(sample)
        while samples.count > 2 && (updated - samples[1].updated >= Watch.rateWindow || samples.count > Throughput.maxSamples) {
            samples.removeFirst()
        }
    }

    private var span: (first: Sample, last: Sample, seconds: Double)? {
        guard let first = samples.first, let last = samples.last, last.updated > first.updated else { return nil }
        return (first, last, last.updated - first.updated)
    }

    /// Recipients delivered per second, by worker id; nil before two updates.
    var perWorker: [Int: Double]? {
        guard let span else { return nil }
        var rates: [Int: Double] = [:]
        for (id, n) in span.last.delivered {
            if let before = span.first.delivered[id] { rates[id] = Double(n - before) / span.seconds }
        }
        return rates
    }

    var recipientsPerSecond: Double? { perWorker.map { $0.values.reduce(0, +) } }

    /// Jobs finished per second, all workers together.
    var jobsPerSecond: Double? {
        guard let span else { return nil }
        let done = span.last.jobs.reduce(0) { total, entry in total + entry.value - (span.first.jobs[entry.key] ?? entry.value) }
        return Double(done) / span.seconds
    }
}
