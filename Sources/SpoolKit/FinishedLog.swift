// The finished log: jobs whose every recipient is decided, written down before their files
// are removed, so that a worker can leave the removal to the daemon's reaper and go on
// sending (on ext4 mounted with `discard`, unlink(2) of a job waits for the disk). One line
// per job, appended with write(2) to a segment file `.state/finished.<serial>`:
//
//   <place> <inode> <ctime in ns> <file name>
//
// A killed process loses nothing it wrote (the page cache keeps it), so a job named here
// is never sent again: at start, `recover` removes every job a segment names whose inode
// and ctime still match, with its journal, then the segment. The ctime is the kernel's
// (no program can set it), so a later file that took the name, or a freed inode number, is
// never mistaken for the finished job. Lines are not fsynced: after a power loss a job
// finished in the last seconds may come back and be sent again (as README.md says of
// unlinks). A segment is removed by the daemon once every job it names is gone.
// One writer per segment (a worker's thread); not thread-safe.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A finished job as the log names it.
public struct FinishedMark: Sendable, Equatable {
    public var name: JobName
    public var place: JobPlace
    public var inode: UInt64
    /// The job file's ctime (ns), from the status taken when it was opened.
    public var changed: Int64

    public init(name: JobName, place: JobPlace, inode: UInt64, changed: Int64) {
        self.name = name
        self.place = place
        self.inode = inode
        self.changed = changed
    }

    /// The line, with its line end.
    func line() -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(name.fileName.utf8.count + 48)
        line.append(FinishedMark.letter(place))
        line.append(UInt8(ascii: " "))
        FinishedMark.append(inode, to: &line)
        line.append(UInt8(ascii: " "))
        FinishedMark.append(UInt64(max(0, changed)), to: &line)
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: name.fileName.utf8)
        line.append(10)
        return line
    }

    /// Decimal digits of `value`, appended.
    private static func append(_ value: UInt64, to line: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: any UInt64 in decimal
        withUnsafeMutableBytes(of: &digits) { raw in
            var n = value
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
            } while n > 0
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[i...]))
        }
    }

    /// Parses a line (without its line end); nil for a torn or foreign one.
    init?(line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, let letter = fields[0].utf8.first, fields[0].utf8.count == 1,
              let place = FinishedMark.place(letter), let inode = UInt64(fields[1]), let changed = Int64(fields[2]),
              let name = JobName(String(fields[3])) else { return nil }
        self.init(name: name, place: place, inode: inode, changed: changed)
    }

    private static func letter(_ place: JobPlace) -> UInt8 {
        switch place {
        case .queued: return UInt8(ascii: "q")
        case .deferred: return UInt8(ascii: "d")
        case .held: return UInt8(ascii: "h")
        case .bad: return UInt8(ascii: "b")
        }
    }

    private static func place(_ letter: UInt8) -> JobPlace? {
        switch letter {
        case UInt8(ascii: "q"): return .queued
        case UInt8(ascii: "d"): return .deferred
        case UInt8(ascii: "h"): return .held
        case UInt8(ascii: "b"): return .bad
        default: return nil
        }
    }
}

/// One segment file, open for appending.
public final class FinishedLog {
    public static let prefix = "finished."
    public let path: String
    private var descriptor: FileDescriptor?
    /// Lines written so far.
    public private(set) var count = 0

    /// Creates `.state/finished.<serial>` (a new file: never one a crash left behind).
    public init(spool: Spool, serial: Int) throws {
        path = "\(spool.stateDirectory)/\(FinishedLog.prefix)\(serial)"
        descriptor = try FileDescriptor.open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, mode: 0o600)
    }

    deinit { descriptor?.close() }

    /// Appends `mark` (one write(2)); once it returns, a crash cannot send the job again.
    public func append(_ mark: FinishedMark) throws {
        guard let descriptor else { throw SystemError("write", path: path, errno: EBADF) }
        try descriptor.writeAll(mark.line())
        count += 1
    }

    /// Closes the file (the daemon removes it once its jobs are gone).
    public func close() {
        descriptor?.close()
        descriptor = nil
    }

    /// The segments in `.state/` (full paths).
    public static func segments(in spool: Spool) throws -> [String] {
        try FileSystem.names(in: spool.stateDirectory).filter { $0.hasPrefix(prefix) }.map { spool.stateDirectory + "/" + $0 }
    }

    /// At start, before the spool is scanned: every job a segment names that is still there
    /// (same inode, same ctime) is removed with its journal; then the segments. Returns how
    /// many jobs were removed. A segment that cannot be read is left (and named in the error).
    public static func recover(_ spool: Spool) throws -> Int {
        var removed = 0
        for segment in try segments(in: spool) {
            let text = String(decoding: try FileSystem.readAll(segment), as: UTF8.self)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            lines.removeLast()  // after the last line end: empty, or a torn line
            for line in lines {
                guard let mark = FinishedMark(line: line) else { continue }
                let path = spool.path(of: mark.name, in: mark.place)
                guard let st = try? FileSystem.linkStatus(path), st.isRegular,
                      st.inode == mark.inode, st.changed == mark.changed else { continue }
                try FileSystem.unlink(path, missingOK: true)
                try FileSystem.unlink(spool.journalPath(for: mark.name, inode: mark.inode), missingOK: true)
                removed += 1
            }
            try FileSystem.unlink(segment, missingOK: true)
        }
        return removed
    }
}
