// A job's journal: one line per fact, appended and fsynced, never rewritten.
//   D <tx> <rcpt> <reply>     recipient delivered
//   F <tx> <rcpt> <reply>     recipient failed for good (its DSN is already spooled)
//   T <tx> <rcpt> <reply>     recipient deferred in the last attempt (the last T wins)
//   A <attempts> <first> <last> <next>   an attempt ended with deferrals (epoch seconds)
// A line without its line end was torn by a crash and is ignored. Replies are stored on
// one line (CR, LF and tabs become spaces).
// Durability: `append` writes (a crash of the process cannot lose what was written, the
// page cache keeps it); `sync` and `recordAttempt` also fsync (a power loss cannot). A
// line lost to power loss only sends its recipients again: a duplicate, never a loss.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

public struct RecipientKey: Hashable, Sendable, Comparable {
    public var transaction: Int
    public var recipient: Int
    public init(_ transaction: Int, _ recipient: Int) {
        self.transaction = transaction
        self.recipient = recipient
    }
    public static func < (a: RecipientKey, b: RecipientKey) -> Bool {
        (a.transaction, a.recipient) < (b.transaction, b.recipient)
    }
}

public struct Journal: Sendable {
    public enum Fact: Character, Sendable { case delivered = "D", failed = "F", deferred = "T" }

    public struct Record: Sendable, Equatable {
        public var fact: Fact
        public var key: RecipientKey
        public var reply: String
        public init(_ fact: Fact, _ key: RecipientKey, reply: String) {
            self.fact = fact
            self.key = key
            self.reply = reply
        }
    }

    public let path: String
    /// Recipients whose fate is final (delivered or failed).
    public private(set) var decided: [RecipientKey: Fact] = [:]
    /// The last reply for each recipient deferred in an earlier attempt.
    public private(set) var deferredReplies: [RecipientKey: String] = [:]
    public private(set) var attempts = 0
    public private(set) var firstAttempt: Double?
    public private(set) var lastAttempt: Double?
    public private(set) var nextAttempt: Double?
    /// True when the file exists.
    public private(set) var exists = false
    /// The file was created and its directory entry is not fsynced yet.
    private var unsyncedDirectory = false

    /// An empty journal for a job known to have none yet (no look at the disk).
    public init(absentAt path: String) { self.path = path }

    /// Reads the journal at `path`; a missing file is an empty journal.
    public init(path: String) throws {
        self.path = path
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readAll(path)
        } catch let error as SystemError where error.isNotFound {
            return
        }
        exists = true
        var lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
        lines.removeLast()  // the part after the last LF: empty, or torn
        for line in lines { apply(String(decoding: line, as: UTF8.self)) }
    }

    private mutating func apply(_ line: String) {
        let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard let tag = fields.first?.first else { return }
        if tag == "A", fields.count >= 4 {
            let parts = line.split(separator: " ")
            guard parts.count == 5, let n = Int(parts[1]), let first = Double(parts[2]),
                  let last = Double(parts[3]), let next = Double(parts[4]) else { return }
            attempts = n
            firstAttempt = first
            lastAttempt = last
            nextAttempt = next
            return
        }
        guard let fact = Fact(rawValue: tag), fields.count >= 3,
              let t = Int(fields[1]), let r = Int(fields[2]) else { return }
        let key = RecipientKey(t, r)
        let reply = fields.count > 3 ? String(fields[3]) : ""
        switch fact {
        case .delivered, .failed:
            decided[key] = fact
            deferredReplies[key] = nil
        case .deferred:
            deferredReplies[key] = reply
        }
    }

    /// Appends records (written, not fsynced: see the top of this file).
    public mutating func append(_ records: [Record]) throws {
        guard !records.isEmpty else { return }
        var text = ""
        for r in records { text += "\(r.fact.rawValue) \(r.key.transaction) \(r.key.recipient) \(Journal.oneLine(r.reply))\n" }
        try write(text, sync: false)
        for r in records { apply("\(r.fact.rawValue) \(r.key.transaction) \(r.key.recipient) \(Journal.oneLine(r.reply))") }
    }

    /// Makes everything appended so far survive a power loss.
    public mutating func sync() throws {
        guard exists else { return }
        let fd = try FileDescriptor.open(path, O_WRONLY | O_APPEND)
        defer { fd.close() }
        try fd.sync()
        if unsyncedDirectory {
            try FileSystem.syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
            unsyncedDirectory = false
        }
    }

    /// Records the end of an attempt that left recipients deferred, durably.
    public mutating func recordAttempt(at now: Double, next: Double) throws {
        let line = "A \(attempts + 1) \(firstAttempt ?? now) \(now) \(next)"
        try write(line + "\n", sync: true)
        apply(line)
    }

    private mutating func write(_ text: String, sync: Bool) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
        defer { fd.close() }
        try fd.writeAll(Array(text.utf8))
        if !exists {
            exists = true
            unsyncedDirectory = true
        }
        if sync {
            try fd.sync()
            if unsyncedDirectory {
                try FileSystem.syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
                unsyncedDirectory = false
            }
        }
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\r" || $0 == "\n" || $0 == "\t" ? " " : $0 })
    }
}
