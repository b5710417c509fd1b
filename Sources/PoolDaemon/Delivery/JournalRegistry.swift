// Which journal files exist, known without asking the file system for each job.

import SMTPClient
import Synchronization

/// The journal files that exist, so that a job without one (nearly all) costs no failed
/// open(2). Filled from a listing of `.state/` at start; kept by the workers after that.
/// While it is empty (the usual case on a spool that drains) a look costs no lock.
final class JournalRegistry: Sendable {
    private let paths: Locked<Set<String>>
    private let count: Atomic<Int>
    init(_ initial: Set<String>) {
        paths = Locked(initial)
        count = Atomic(initial.count)
    }
    /// False when no journal is known: `contains` would say no to any path.
    var mayHoldAny: Bool { count.load(ordering: .acquiring) > 0 }
    func contains(_ path: String) -> Bool { paths.withLock { $0.contains(path) } }
    func insert(_ path: String) {
        paths.withLock { if $0.insert(path).inserted { count.add(1, ordering: .releasing) } }
    }
    func remove(_ path: String) {
        paths.withLock { if $0.remove(path) != nil { count.subtract(1, ordering: .releasing) } }
    }
}
