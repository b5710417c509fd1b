// The index's queues: a FIFO with amortised O(1) pops from the front, and a chunked FIFO
// that grows in fixed-size chunks (no doubling slack, no copy as it grows) for the lanes
// of queued jobs.

/// A FIFO with amortised O(1) pops from the front.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0
    var isEmpty: Bool { head == items.count }
    var first: Element? { isEmpty ? nil : items[head] }
    mutating func append(_ e: Element) { items.append(e) }
    mutating func pushFront(_ e: Element) {
        if head > 0 { head -= 1; items[head] = e } else { items.insert(e, at: 0) }
    }
    var all: ArraySlice<Element> { items[head...] }
    var count: Int { items.count - head }
    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let e = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }
}

extension FIFO: Sendable where Element: Sendable {}

extension FIFO where Element: Equatable {
    /// Removes `element` wherever it is (a linear search); false when it is not there.
    mutating func remove(_ element: Element) -> Bool {
        guard let i = items[head...].firstIndex(of: element) else { return false }
        items.remove(at: i)
        return true
    }
}

/// A FIFO in chunks of fixed size: it grows a chunk at a time (no doubling, no copy of what
/// it holds) and gives a chunk back as soon as it is read, so a lane of 100,000 jobs costs
/// their bytes and little more.
struct ChunkedFIFO<Element> {
    static var chunkSize: Int { 1024 }
    private var chunks: [[Element]] = []
    /// Index of the next element in `chunks[0]`.
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }
    var first: Element? { isEmpty ? nil : chunks[0][head] }

    mutating func append(_ element: Element) {
        if chunks.isEmpty || chunks[chunks.count - 1].count == Self.chunkSize {
            var chunk: [Element] = []
            chunk.reserveCapacity(Self.chunkSize)
            chunks.append(chunk)
        }
        chunks[chunks.count - 1].append(element)
        count += 1
    }

    mutating func pushFront(_ element: Element) {
        if head > 0 {
            head -= 1
            chunks[0][head] = element
        } else {
            chunks.insert([element], at: 0)
        }
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = chunks[0][head]
        head += 1
        count -= 1
        if head == chunks[0].count {
            chunks.removeFirst()
            head = 0
        }
        return element
    }

    /// Every element, first to last.
    var all: [Element] {
        var result: [Element] = []
        result.reserveCapacity(count)
        for (i, chunk) in chunks.enumerated() { result += chunk[(i == 0 ? head : 0)...] }
        return result
    }
}

extension ChunkedFIFO: Sendable where Element: Sendable {}
