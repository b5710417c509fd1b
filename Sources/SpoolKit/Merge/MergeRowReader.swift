// Reads a checked merge job's rows back from its file, from any row: it jumps to the
// nearest indexed row before it (`RowIndex`) and reads forward, so starting at row N costs
// at most one index stride of rows. Rows come out in order into a `MergeRow` the caller
// reuses. The job was checked whole; a row that no longer parses means the file changed
// under us, and is a `MergeError` naming its line, never a guess.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public final class MergeRowReader {
    public let job: MergeJob
    private let scanner: LineScanner
    private let fd: FileDescriptor?
    /// The 0-based index of the row `next` reads.
    public private(set) var position = 0

    /// Opens the job's file at `path` and stands before its first row.
    public convenience init(path: String, job: MergeJob) throws {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        self.init(source: .file(fd), job: job, owning: fd)
    }

    /// Reads the rows of a job held in memory (tests, fuzzing, `poolctl`).
    public convenience init(bytes: [UInt8], job: MergeJob) {
        self.init(source: .memory(bytes), job: job, owning: nil)
    }

    private init(source: JobBytes, job: MergeJob, owning fd: FileDescriptor?) {
        self.job = job
        self.fd = fd
        scanner = LineScanner(source: source, end: job.rowsRange.upperBound, maxLineLength: MergeReader.maxLineLength)
        scanner.restart(at: job.rowsRange.lowerBound, lineNumber: job.headerLine + 1, end: job.rowsRange.upperBound)
    }

    deinit { fd?.close() }

    /// Stands before the row at 0-based `index` (`rowCount` stands at the end).
    public func seek(toIndex index: Int) throws {
        guard index >= 0 && index <= job.rowCount else {
            throw MergeError(line: job.headerLine, "row index \(index) is outside the table (0..<\(job.rowCount))")
        }
        if index == job.rowCount {
            scanner.restart(at: job.rowsRange.upperBound, lineNumber: job.headerLine + 1 + index, end: job.rowsRange.upperBound)
            position = index
            return
        }
        guard let entry = job.rowIndex.entry(atOrBefore: index) else { preconditionFailure("a job with rows has an index") }
        scanner.restart(at: entry.offset, lineNumber: job.headerLine + 1 + entry.index, end: job.rowsRange.upperBound)
        position = entry.index
        var skipped = MergeRow()
        while position < index {
            _ = try next(into: &skipped)
        }
    }

    /// Stands before the row whose `&*ROW;` is `number`.
    public func seek(toRowNumber number: Int) throws {
        guard job.rowNumbers.contains(number) else {
            throw MergeError(line: job.headerLine, "there is no row \(number) in this job (rows \(job.rowNumbers.lowerBound)...\(job.rowNumbers.upperBound))")
        }
        try seek(toIndex: number - job.firstRowNumber)
    }

    /// Reads the next row into `row`; false after the last one.
    public func next(into row: inout MergeRow) throws -> Bool {
        guard position < job.rowCount else { return false }
        guard let line = try scanner.next(), line.terminated else {
            throw MergeError(line: scanner.nextLineNumber, row: position + 1, "the table ends early (the job changed since it was checked)")
        }
        var content = line.content
        if content.first == UInt8(ascii: ".") { content = UnsafeRawBufferPointer(rebasing: content.dropFirst()) }
        if let fault = row.parse(content, maxFields: MergeReader.maxColumns) {
            throw MergeError(line: line.number, row: position + 1, "field \(fault.field): \(fault.message) (the job changed since it was checked)")
        }
        if content.isEmpty || row.fieldCount != job.columns.count {
            throw MergeError(line: line.number, row: position + 1,
                             "\(row.fieldCount) fields, the header has \(job.columns.count) (the job changed since it was checked)")
        }
        row.index = position
        row.number = job.firstRowNumber + position
        row.line = line.number
        row.fileRange = line.offset..<(line.offset + Int64(line.bytes.count) + 1)
        position += 1
        return true
    }
}
