// A mail-merge job's journal: one line per row whose fate is known, appended by whichever
// worker delivered the row (rows are 0-based indices into the table).
//   D <row>                  delivered
//   F <row>                  failed for good (its DSN is already spooled)
//   T <row> <reply>          deferred in this pass (a later D or F wins over it)
//   A <passes> <first> <last> <next>   a pass ended with rows deferred (epoch seconds)
// It lives where a plain job's journal does (`.state/<name>.<inode>.journal`) and keeps the
// same promises (SpoolKit/README.md): a line is written (not fsynced) when the relay has
// answered the row, so a crash of the process sends again only the rows in flight; `sync`
// and `recordPass` make it survive a power loss. A line without its end was torn and is
// ignored. In memory it is a bitmap of decided rows (125 kB for a million rows), never a
// list: the deferred rows' replies are read back from the file only when they are needed.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A set of row indices, as a bitmap.
public struct RowSet: Sendable, Equatable {
    private var words: [UInt64]
    public let capacity: Int
    public private(set) var count = 0

    public init(capacity: Int) {
        self.capacity = capacity
        words = Array(repeating: 0, count: (capacity + 63) / 64)
    }

    public func contains(_ row: Int) -> Bool {
        row >= 0 && row < capacity && words[row >> 6] & (1 << UInt64(row & 63)) != 0
    }

    public mutating func insert(_ row: Int) {
        guard row >= 0 && row < capacity, !contains(row) else { return }
        words[row >> 6] |= 1 << UInt64(row & 63)
        count += 1
    }
}

public final class MergeJournal {
    public let path: String
    public let rowCount: Int
    /// Rows delivered or failed for good.
    public private(set) var decided: RowSet
    /// Rows deferred in an earlier pass and not decided since.
    public private(set) var deferred: RowSet
    public private(set) var delivered = 0
    public private(set) var failed = 0
    public private(set) var passes = 0
    public private(set) var firstAttempt: Double?
    public private(set) var nextAttempt: Double?
    public private(set) var exists = false
    private var descriptor: FileDescriptor?
    private var unsyncedDirectory = false

    /// Reads the journal at `path`; a missing file is an empty journal. A row number out of
    /// the table's range is a journal for another file: an error.
    public init(path: String, rowCount: Int) throws {
        self.path = path
        self.rowCount = rowCount
        decided = RowSet(capacity: rowCount)
        deferred = RowSet(capacity: rowCount)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDONLY)
        } catch let error as SystemError where error.isNotFound {
            return
        }
        defer { fd.close() }
        exists = true
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where buffer[i] == 10 {
                if pending.isEmpty {
                    try apply(buffer[start..<i])
                } else {
                    pending += buffer[start..<i]
                    try apply(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                start = i + 1
            }
            pending += buffer[start..<n]
        }
        // What follows the last line end was torn by a crash: ignored.
    }

    deinit { descriptor?.close() }

    private func apply(_ line: ArraySlice<UInt8>) throws {
        guard let tag = line.first else { return }
        let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        if tag == UInt8(ascii: "A") {
            let words = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard words.count == 5, let n = Int(words[1]), let first = Double(words[2]), let next = Double(words[4]) else { return }
            passes = n
            firstAttempt = first
            nextAttempt = next
            return
        }
        guard fields.count >= 2, let row = Int(String(decoding: fields[1], as: UTF8.self)) else { return }
        guard row >= 0 && row < rowCount else {
            throw SystemError("journal row \(row) beyond the table's \(rowCount) rows", path: path, errno: EINVAL)
        }
        switch tag {
        case UInt8(ascii: "D"):
            if !decided.contains(row) { delivered += 1 }
            decided.insert(row)
        case UInt8(ascii: "F"):
            if !decided.contains(row) { failed += 1 }
            decided.insert(row)
        case UInt8(ascii: "T"):
            deferred.insert(row)
        default: return
        }
    }

    /// Rows deferred and not decided since, counted.
    public var stillDeferred: Int {
        var n = 0
        for row in 0..<rowCount where deferred.contains(row) && !decided.contains(row) { n += 1 }
        return n
    }

    /// Appends what became of some rows (written, not fsynced).
    public func record(delivered: [Int] = [], failed: [Int] = [], deferred: [(row: Int, reply: String)] = []) throws {
        var text: [UInt8] = []
        for row in delivered { text += Array("D \(row)\n".utf8) }
        for row in failed { text += Array("F \(row)\n".utf8) }
        for (row, reply) in deferred { text += Array("T \(row) \(MergeJournal.oneLine(reply))\n".utf8) }
        guard !text.isEmpty else { return }
        try write(text)
        for row in delivered where !decided.contains(row) {
            self.delivered += 1
            decided.insert(row)
        }
        for row in failed where !decided.contains(row) {
            self.failed += 1
            decided.insert(row)
        }
        for (row, _) in deferred { self.deferred.insert(row) }
    }

    /// Makes everything appended so far survive a power loss.
    public func sync() throws {
        guard let descriptor else { return }
        try descriptor.sync()
        if unsyncedDirectory {
            try FileSystem.syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
            unsyncedDirectory = false
        }
    }

    /// Records the end of a pass that left rows deferred, durably.
    public func recordPass(at now: Double, next: Double) throws {
        try write(Array("A \(passes + 1) \(firstAttempt ?? now) \(now) \(next)\n".utf8))
        try sync()
        passes += 1
        if firstAttempt == nil { firstAttempt = now }
        nextAttempt = next
    }

    /// The last reply of each row deferred and not decided since (read from the file).
    public func deferredReplies() throws -> [Int: String] {
        var replies: [Int: String] = [:]
        let bytes = try FileSystem.readAll(path)
        for line in bytes.split(separator: 10) where line.first == UInt8(ascii: "T") {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2, let row = Int(String(decoding: fields[1], as: UTF8.self)), !decided.contains(row) else { continue }
            replies[row] = fields.count > 2 ? String(decoding: fields[2], as: UTF8.self) : ""
        }
        return replies
    }

    /// Closes the file (the journal stays on disk).
    public func close() {
        descriptor?.close()
        descriptor = nil
    }

    private func write(_ bytes: [UInt8]) throws {
        if descriptor == nil {
            descriptor = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
            if !exists {
                exists = true
                unsyncedDirectory = true
            }
        }
        try descriptor?.writeAll(bytes)
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\r" || $0 == "\n" || $0 == "\t" ? " " : $0 })
    }
}
