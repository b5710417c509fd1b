// The jobs the first scan finds were written before this daemon started: their pages may
// be long gone from the page cache, and a worker that opens one would wait for the disk
// (about 70 µs a job on the test machine, one read at a time per worker). The prefetcher
// walks those jobs in the order the queue hands them out, a window ahead of the workers,
// and asks the kernel to read each one (posix_fadvise WILLNEED): the reads reach the disk
// together, and the worker finds the pages in memory. Jobs that arrive later (inotify) were
// just written and are in the page cache already. It is only a hint: a job it misses, or
// one that is gone meanwhile, costs nothing but the hint.

import Foundation
import SpoolKit
import Synchronization

final class Prefetcher: Sendable {
    /// Jobs read ahead of the workers (how many the queue has handed out since the start).
    static let window = 128

    private let spool: Spool
    private let queue: JobQueue
    private let stopped = Atomic<Bool>(false)

    init(spool: Spool, queue: JobQueue) {
        self.spool = spool
        self.queue = queue
    }

    /// Starts a thread that warms `jobs` (queued, in the order they were offered).
    func start(_ jobs: ChunkedFIFO<JobName>) {
        guard !jobs.isEmpty else { return }
        let thread = Thread { [self] in
            Thread.current.name = "prefetch"
            run(jobs)
        }
        thread.start()
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    private func run(_ jobs: consuming ChunkedFIFO<JobName>) {
        var pending = jobs
        let base = queue.handedOut
        var issued = 0
        while !pending.isEmpty && !stopped.load(ordering: .relaxed) {
            let limit = queue.handedOut - base + Prefetcher.window
            guard issued < limit else {
                usleep(500)
                continue
            }
            while issued < limit, let name = pending.popFirst() {
                if let descriptor = try? FileDescriptor.open(spool.path(of: name, in: .queued), O_RDONLY) {
                    descriptor.willNeed()
                    descriptor.close()
                }
                issued += 1
            }
        }
    }
}
