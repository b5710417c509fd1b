// Writes merge jobs: from a CSV table and a template (`poolctl submit --merge`, tests),
// dot-stuffing both and ending every line in CRLF; and a Distribute share of a checked job
// (a slice of its rows, copied from the file as written, with the MERGE parameters that
// make it render as the whole job would). Large tables stream through `DotStuffer`: the
// writer never holds the table. A job is spooled only after the merge checker has read it
// back whole from its temporary file.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum MergeJobWriter {
    /// The lines before the table: `MERGE …`, `MAIL FROM:<sender> …`, `TABLE`.
    public static func head(sender: String, senderParameters: [String] = [], parameters: MergeParameters = .init()) -> [UInt8] {
        let mail = (["MAIL FROM:<\(sender)>"] + senderParameters).joined(separator: " ")
        return Array("MERGE\(parameters.lineArguments)\r\n\(mail)\r\nTABLE\r\n".utf8)
    }

    /// A whole merge job in memory.
    public static func job(sender: String, senderParameters: [String] = [], parameters: MergeParameters = .init(),
                           table: [UInt8], template: [UInt8]) -> [UInt8] {
        var out = head(sender: sender, senderParameters: senderParameters, parameters: parameters)
        var stuffer = DotStuffer()
        let sink: (UnsafeRawBufferPointer) -> Void = { out.append(contentsOf: $0) }
        stuffer.add(table, sink)
        stuffer.finish(sink)
        out += Array(".\r\nDATA\r\n".utf8)
        stuffer = DotStuffer()
        stuffer.add(template, sink)
        stuffer.finish(sink)
        out += Array(".\r\n".utf8)
        return out
    }

    /// Writes share `share` of `job` (the file at `path`): the rows at `rows` (0-based),
    /// keeping their numbers, the stem and the HELO name the whole job renders with.
    public static func writeShare(of job: MergeJob, path: String, rows: Range<Int>, share: MergeParameters.Share,
                                  stem: String, heloName: String, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(!rows.isEmpty && rows.lowerBound >= 0 && rows.upperBound <= job.rowCount, "a share holds some of the job's rows")
        let parameters = MergeParameters(stem: job.parameters.stem ?? stem, firstRow: job.firstRowNumber + rows.lowerBound,
                                         heloName: job.parameters.heloName ?? heloName, share: share)
        let reader = try MergeRowReader(path: path, job: job)
        var row = MergeRow()
        try reader.seek(toIndex: rows.lowerBound)
        _ = try reader.next(into: &row)
        let start = row.fileRange.lowerBound
        var end = job.rowsRange.upperBound
        if rows.upperBound < job.rowCount {
            try reader.seek(toIndex: rows.upperBound)
            _ = try reader.next(into: &row)
            end = row.fileRange.lowerBound
        }
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        func copy(_ range: Range<Int64>) throws {
            var buffer = [UInt8](repeating: 0, count: LineScanner.chunkSize)
            var offset = range.lowerBound
            while offset < range.upperBound {
                let want = Int(min(Int64(buffer.count), range.upperBound - offset))
                let n = try buffer.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: offset) }
                guard n > 0 else { throw SystemError("pread", path: path, errno: EIO) }
                try buffer.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                offset += Int64(n)
            }
        }
        try head(sender: job.sender, senderParameters: job.senderParameters, parameters: parameters).withUnsafeBytes { try sink($0) }
        try copy(job.headerRange)
        try copy(start..<end)
        try Array(".\r\nDATA\r\n".utf8).withUnsafeBytes { try sink($0) }
        try copy(job.templateRange)
        try Array(".\r\n".utf8).withUnsafeBytes { try sink($0) }
    }
}

/// Dot-stuffs text on its way into a job: every line gets a CRLF end (a final line without
/// one too) and a line that starts with `.` gets a second one. Optionally drops a UTF-8
/// byte order mark before the first line and blank lines at the very end (what spreadsheet
/// exports leave). Holds one line at a time.
public struct DotStuffer {
    public var dropsByteOrderMark = false
    public var dropsTrailingBlankLines = false
    /// Lines written so far.
    public private(set) var lines = 0
    private var line: [UInt8] = []
    private var blankLines = 0
    private var atStart = true

    public init(dropsByteOrderMark: Bool = false, dropsTrailingBlankLines: Bool = false) {
        self.dropsByteOrderMark = dropsByteOrderMark
        self.dropsTrailingBlankLines = dropsTrailingBlankLines
    }

    public mutating func add(_ bytes: some Collection<UInt8>, _ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var start = bytes.startIndex
        while let lf = bytes[start...].firstIndex(of: 10) {
            line.append(contentsOf: bytes[start..<lf])
            try endLine(sink)
            start = bytes.index(after: lf)
        }
        line.append(contentsOf: bytes[start...])
    }

    /// Ends a last line that has no line end.
    public mutating func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        if !line.isEmpty { try endLine(sink) }
    }

    private mutating func endLine(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        if line.last == 13 { line.removeLast() }
        if atStart && dropsByteOrderMark && line.starts(with: [0xEF, 0xBB, 0xBF]) { line.removeFirst(3) }
        atStart = false
        if line.isEmpty && dropsTrailingBlankLines {
            blankLines += 1
            return
        }
        for _ in 0..<blankLines { try [UInt8]([13, 10]).withUnsafeBytes { try sink($0) } }
        lines += blankLines
        blankLines = 0
        if line.first == UInt8(ascii: ".") { line.insert(UInt8(ascii: "."), at: 0) }
        line += [13, 10]
        try line.withUnsafeBytes { try sink($0) }
        lines += 1
        line.removeAll(keepingCapacity: true)
    }
}

extension JobWriter {
    /// Spools a job too large to build in memory: `write` fills a temporary file in the
    /// spool (a name the daemon ignores), `check` reads it back by path, and only then is it
    /// linked under a fresh `<pool><id>.MAIL` name. Nothing stays behind when either throws.
    public static func submit(pool: Pool, spool: Spool, write: (FileDescriptor) throws -> Void,
                              check: (String) throws -> Void) throws -> JobName {
        let temporary = AtomicFile.temporaryPath(in: spool.root, for: "merge")
        let fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: 0o640)
        defer { try? FileSystem.unlink(temporary, missingOK: true) }
        do {
            try write(fd)
            try fd.sync()
            fd.close()
        } catch {
            fd.close()
            throw error
        }
        try check(temporary)
        var lastError: (any Error)?
        for _ in 0..<100 {
            guard let name = JobName("\(pool)\(freshID()).MAIL") else { break }
            do {
                try FileSystem.link(temporary, spool.root + "/" + name.fileName)
                try FileSystem.syncDirectory(spool.root)
                announce(spool.root + "/" + name.fileName)
                return name
            } catch let error as SystemError where error.isExisting {
                lastError = error
            }
        }
        throw lastError ?? SystemError("submit", path: spool.root, errno: EEXIST)
    }
}
