// Deferred jobs by the time they are due, as a binary heap (qmail's prioq): adding one and
// taking the earliest cost O(log n), so an outage that reschedules every job never turns
// each reschedule into a walk over all of them.

struct Timetable: Sendable {
    private struct Entry: Sendable {
        var due: Double
        var job: QueuedJob
        func isBefore(_ other: Entry) -> Bool { (due, job.sequence) < (other.due, other.job.sequence) }
    }
    private var heap: [Entry] = []

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    /// When the earliest entry is due.
    var nextDue: Double? { heap.first?.due }

    mutating func insert(_ job: QueuedJob, due: Double) {
        heap.append(Entry(due: due, job: job))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].isBefore(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest job if it is due at `now`.
    mutating func popDue(now: Double) -> QueuedJob? {
        guard let first = heap.first, first.due <= now else { return nil }
        return removeFirst().job
    }

    /// Removes every job, earliest first.
    mutating func removeAll() -> [QueuedJob] {
        var jobs: [QueuedJob] = []
        jobs.reserveCapacity(heap.count)
        while !heap.isEmpty { jobs.append(removeFirst().job) }
        return jobs
    }

    /// Removes the job `matches` picks (a linear search: for operators' commands only).
    mutating func remove(where matches: (QueuedJob) -> Bool) -> QueuedJob? {
        guard let i = heap.firstIndex(where: { matches($0.job) }) else { return nil }
        let job = heap[i].job
        let rest = heap.enumerated().filter { $0.offset != i }.map(\.element)
        heap = []
        for entry in rest { insert(entry.job, due: entry.due) }
        return job
    }

    /// Every entry changed by `change` (a new configuration's earmarks); order is kept.
    mutating func update(_ change: (inout QueuedJob) -> Void) {
        for i in heap.indices { change(&heap[i].job) }
    }

    private mutating func removeFirst() -> Entry {
        let first = heap[0]
        let last = heap.removeLast()
        guard !heap.isEmpty else { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].isBefore(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].isBefore(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
