// Finished jobs leave the spool here, off the workers' path. A worker writes the job's line
// in its finished log (`FinishedLog`, SpoolKit/README.md) — from that moment a crash cannot
// send the job again — and hands the job to the reaper, whose threads unlink the job file,
// then its journal, and only then tell the queue the job is gone: until then it stays
// known (in hand), so a rescan never offers the file again and a drain does not end while
// a finished job is still on disk. An unlink on ext4 mounted with `discard` waits for the
// disk (a discard per freed file); `Limits.reaperThreads` threads let those waits overlap.
// A segment of a finished log is removed once every job it names is gone; a job that
// cannot be removed keeps its segment (the next start removes both).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SMTPClient
import SpoolKit
import Synchronization

final class Reaper: @unchecked Sendable {
    struct Entry {
        var job: QueuedJob
        var path: String
        /// The job's journal, when it has one.
        var journal: String?
        var segment: Segment
    }

    /// A segment file and how many of the jobs it names are still on disk.
    final class Segment: Sendable {
        let path: String
        private let state = Locked((outstanding: 0, sealed: false))

        init(path: String) { self.path = path }

        func add() { state.withLock { $0.outstanding += 1 } }
        /// One of its jobs is gone.
        func release() { if state.withLock({ $0.outstanding -= 1; return $0.sealed && $0.outstanding == 0 }) { remove() } }
        /// No more lines go in it.
        func seal() { if state.withLock({ $0.sealed = true; return $0.outstanding == 0 }) { remove() } }

        private func remove() {
            do {
                try FileSystem.unlink(path, missingOK: true)
            } catch {
                Log.warning("cannot remove the finished log \(path): \(error) (the next start removes it)")
            }
        }
    }

    private let spool: Spool
    private let queue: JobQueue
    private let threads: Int
    private let serials = Atomic<Int>(0)
    /// Guards `entries`, `busy`, `started`, `waitingWorkers` and `stopping` (so their runtime
    /// exclusivity check is left out: the lock keeps accesses apart); reaper threads, and
    /// workers held back by a full backlog, wait on it.
    private let condition = NSCondition()
    @exclusivity(unchecked) private var entries = FIFO<Entry>()
    /// Threads at work (not waiting).
    @exclusivity(unchecked) private var busy = 0
    @exclusivity(unchecked) private var started = false
    /// Workers waiting for the backlog to shrink.
    @exclusivity(unchecked) private var waitingWorkers = 0
    @exclusivity(unchecked) private var stopping = false

    init(spool: Spool, queue: JobQueue, threads: Int = Limits.reaperThreads) {
        self.spool = spool
        self.queue = queue
        self.threads = max(1, threads)
    }

    /// A finished log for one worker (its own segments: no lock shared between workers).
    func writer() -> FinishedWriter { FinishedWriter(reaper: self) }

    func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started else { return }
        started = true
        for n in 1...threads {
            let thread = Thread { [self] in
                Thread.current.name = "reaper\(n)"
                run()
            }
            thread.stackSize = Limits.workerStack
            thread.start()
        }
    }

    /// A job whose line is in its finished log: removed as soon as a thread is free. When
    /// `Limits.reaperBacklog` jobs already wait, the worker waits too: the reaper sets the
    /// pace of a drain anyway, and the backlog (jobs in hand until their file is gone)
    /// stays bounded in memory.
    func take(_ entry: Entry) {
        condition.lock()
        if entries.count >= Limits.reaperBacklog {
            waitingWorkers += 1
            while entries.count >= Limits.reaperBacklog { condition.wait() }
            waitingWorkers -= 1
        }
        entries.append(entry)
        // Wake a thread when none is at work, or when the waiting jobs would keep the busy
        // ones for more than a batch.
        if busy == 0 || (entries.count >= Limits.reaperBatch && busy < threads) { condition.signal() }
        condition.unlock()
    }

    /// True when no job waits and no thread is removing one.
    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return entries.isEmpty && busy == 0
    }

    /// Waits until every job handed over is removed (at the end of a drain, or of the daemon).
    func drain() {
        while !isIdle { usleep(1000) }
    }

    /// Its threads end once no job waits (after `drain`, when the daemon stops).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        condition.lock()
        while true {
            while entries.isEmpty && !stopping { condition.wait() }
            if entries.isEmpty { break }
            busy += 1
            var batch: [Entry] = []
            batch.reserveCapacity(Limits.reaperBatch)
            while batch.count < Limits.reaperBatch, let entry = entries.popFirst() { batch.append(entry) }
            if waitingWorkers > 0 { condition.broadcast() }
            condition.unlock()
            remove(batch)
            condition.lock()
            busy -= 1
        }
        condition.unlock()
    }

    private func remove(_ batch: [Entry]) {
        var gone: [QueuedJob] = []
        gone.reserveCapacity(batch.count)
        for entry in batch {
            do {
                try FileSystem.unlink(entry.path, missingOK: true)
                if let journal = entry.journal { try FileSystem.unlink(journal, missingOK: true) }
                entry.segment.release()
                gone.append(entry.job)
            } catch {
                // Its line stays (the segment is kept): never sent again, removed at the next start.
                Log.error("job=\(entry.job.name): every recipient decided, but cannot remove \(entry.path): \(error); the next start removes it")
                queue.finished([entry.job], removed: false)
            }
        }
        queue.finished(gone, removed: true)
    }

    fileprivate func newSegment() throws -> (FinishedLog, Segment) {
        while true {
            let serial = serials.add(1, ordering: .relaxed).newValue
            do {
                let log = try FinishedLog(spool: spool, serial: serial)
                return (log, Segment(path: log.path))
            } catch let error as SystemError where error.isExisting {
                continue  // left by an earlier run that could not remove it: take the next number
            }
        }
    }
}

/// One worker's finished log: the segment it writes now, started again every
/// `Limits.finishedSegmentLines` lines.
final class FinishedWriter: Sendable {
    private let reaper: Reaper
    private struct Current {
        var log: FinishedLog
        var segment: Reaper.Segment
    }
    private let current = Locked<Current?>(nil)

    fileprivate init(reaper: Reaper) { self.reaper = reaper }

    /// Writes the job's line, then hands the job to the reaper. Throws when the line cannot
    /// be written: the job is then the caller's to remove.
    func finish(_ job: QueuedJob, mark: FinishedMark, path: String, journal: String?) throws {
        let segment: Reaper.Segment = try current.withLock { current in
            if let c = current, c.log.count >= Limits.finishedSegmentLines {
                c.log.close()
                c.segment.seal()
                current = nil
            }
            if current == nil {
                let (log, segment) = try reaper.newSegment()
                current = Current(log: log, segment: segment)
            }
            try current!.log.append(mark)
            current!.segment.add()
            return current!.segment
        }
        reaper.take(Reaper.Entry(job: job, path: path, journal: journal, segment: segment))
    }

    /// The worker stops: its segment takes no more lines (it goes once its jobs are gone).
    func close() {
        current.withLock { current in
            current?.log.close()
            current?.segment.seal()
            current = nil
        }
    }
}
