// One delivery pass over a mail-merge job, shared by every worker that serves its pool.
// The worker that takes the job checks it whole, reads its journal, cuts the rows still
// to send into slices (MERGE_SLICE rows each) and offers the slices to the queue as jobs
// of their own; any worker may take a slice. Each row's fate goes to the one journal as
// its reply is read. When the last slice ends, the pass ends: every row decided → the job
// and its journal leave the spool; rows deferred → the journal records the pass and the
// job moves to deferred/ for the retry schedule; a slice put back (a window closed, the
// daemon stops) leaves the job where it is, due again at once.
// Invariant: while a pass runs, its job is in hand (the queue's index knows it) and no
// other pass of it exists; a slice is either in the queue, in one worker's hands, or ended.

import Foundation
import SMTPClient
import SpoolKit

final class MergeRun: Sendable {
    /// The job itself: in hand for as long as the pass lasts.
    let job: QueuedJob
    let merge: MergeJob
    let path: String
    let journalPath: String
    /// Slices of table rows: each holds at most MERGE_SLICE rows still to send.
    let slices: [Range<Int>]
    let began: Double
    /// QUEUE_LIFETIME has passed since the first pass: rows deferred now fail.
    let expired: Bool
    /// Rows still to send when the pass began.
    let toSend: Int
    private let state: Locked<State>

    private struct State {
        var journal: MergeJournal
        /// Slices not yet ended.
        var open: Set<Int>
        var putBack = false
        /// This pass: rows delivered, failed, deferred.
        var delivered = 0
        var failed = 0
        var deferred = 0
    }

    /// How a pass ended, for the job itself.
    enum Ending {
        /// Every row is decided.
        case finished
        /// Rows were deferred: the retry schedule (or, expired, their DSNs) decides.
        case rowsLeft
        /// A slice went back to the queue unfinished: the job is due again at once.
        case unfinished
    }

    private init(job: QueuedJob, merge: MergeJob, path: String, journalPath: String, journal: MergeJournal,
                 slices: [Range<Int>], began: Double, expired: Bool, toSend: Int) {
        self.job = job
        self.merge = merge
        self.path = path
        self.journalPath = journalPath
        self.slices = slices
        self.began = began
        self.expired = expired
        self.toSend = toSend
        state = Locked(State(journal: journal, open: Set(slices.indices)))
    }

    /// A pass over `merge` (the job at `path`, checked): nil when no row is left to send.
    static func begin(_ job: QueuedJob, merge: MergeJob, path: String, journalPath: String, journal: MergeJournal,
                      slice: Int, queueLifetime: Double, now: Double) -> MergeRun? {
        var slices: [Range<Int>] = []
        var start: Int?
        var inSlice = 0
        for row in 0..<merge.rowCount where !journal.decided.contains(row) {
            if start == nil { start = row }
            inSlice += 1
            if inSlice == slice, let s = start {
                slices.append(s..<(row + 1))
                start = nil
                inSlice = 0
            }
        }
        if let s = start { slices.append(s..<merge.rowCount) }
        guard !slices.isEmpty else { return nil }
        let expired = journal.firstAttempt.map { now - $0 > queueLifetime } ?? false
        return MergeRun(job: job, merge: merge, path: path, journalPath: journalPath, journal: journal, slices: slices,
                        began: now, expired: expired, toSend: merge.rowCount - journal.decided.count)
    }

    /// Is `row` decided (delivered or failed for good)?
    func isDecided(_ row: Int) -> Bool { state.withLock { $0.journal.decided.contains(row) } }

    /// Journals rows' fates (written, not fsynced: the crash bound of SpoolKit/README.md).
    func record(delivered: [Int], failed: [Int], deferred: [(row: Int, reply: String)]) throws {
        try state.withLock { s in
            try s.journal.record(delivered: delivered, failed: failed, deferred: deferred)
            s.delivered += delivered.count
            s.failed += failed.count
            s.deferred += deferred.count
        }
    }

    /// A slice ended: `completed` when every row of it has its outcome, false when it went
    /// back to the queue. The ending of the pass when this was its last open slice.
    func endSlice(_ index: Int, completed: Bool) -> Ending? {
        state.withLock { s in
            if !completed { s.putBack = true }
            s.open.remove(index)
            guard s.open.isEmpty else { return nil }
            if s.putBack { return .unfinished }
            return s.journal.decided.count == s.journal.rowCount ? .finished : .rowsLeft
        }
    }

    /// The rows deferred and not decided since, with their last replies.
    func deferredRows() throws -> [Int: String] {
        try state.withLock { try $0.journal.deferredReplies() }
    }

    /// Records the end of a pass that left rows deferred, durably.
    func recordPass(next: Double) throws {
        try state.withLock { try $0.journal.recordPass(at: began, next: next) }
    }

    /// Renders `rows` (0-based, ascending) again, for the DSNs of rows that expired.
    func render(rows: [Int], heloName: String, clock: WallClock) throws -> [(row: Int, message: RenderedMessage)] {
        guard !rows.isEmpty else { return [] }
        let reader = try MergeRowReader(path: path, job: merge)
        var renderer = MergeRenderer(job: merge, name: job.name, heloName: heloName, clock: clock.now)
        var row = MergeRow()
        var rendered: [(row: Int, message: RenderedMessage)] = []
        for index in rows {
            if reader.position != index { try reader.seek(toIndex: index) }
            guard try reader.next(into: &row) else { break }
            var message = RenderedMessage()
            try renderer.render(row, into: &message)
            rendered.append((index, message))
        }
        return rendered
    }

    func syncJournal() throws { try state.withLock { try $0.journal.sync() } }

    func closeJournal() { state.withLock { $0.journal.close() } }

    var passes: Int { state.withLock { $0.journal.passes } }

    /// Progress, for status.
    func progress(now: Double) -> MergeProgress {
        state.withLock { s in
            let done = s.delivered + s.failed + s.deferred
            let elapsed = max(now - began, 0.001)
            let rate = Double(done) / elapsed
            let left = max(toSend - done, 0)
            return MergeProgress(job: job.name.fileName, rows: merge.rowCount, delivered: s.journal.delivered, failed: s.journal.failed,
                                 deferred: s.deferred, pass: s.journal.passes + 1, slices: slices.count, slicesOpen: s.open.count,
                                 rate: rate, secondsLeft: rate > 0 ? Double(left) / rate : nil)
        }
    }
}

/// The passes running now, by job name: workers find a slice's pass here, status reads
/// their progress.
final class MergeRuns: Sendable {
    private let runs = Locked<[JobName: MergeRun]>([:])

    func add(_ run: MergeRun) { runs.withLock { $0[run.job.name] = run } }
    func remove(_ run: MergeRun) { runs.withLock { if $0[run.job.name] === run { $0[run.job.name] = nil } } }
    func run(for name: JobName) -> MergeRun? { runs.withLock { $0[name] } }
    func progress(now: Double) -> [MergeProgress] {
        runs.withLock { Array($0.values) }.map { $0.progress(now: now) }.sorted { $0.job < $1.job }
    }
}
