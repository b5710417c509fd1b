// The one entry point that reads any job in the spool: it looks at the first line (after
// blank lines and an optional HELO/EHLO) and hands the file to the merge checker when that
// line is `MERGE`, to `BSMTPReader` otherwise. Either way the job is checked whole before
// anything is sent; a bad file throws `MergeError` or `BSMTPError` (both name the line),
// and `SystemError` when it cannot be read.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum SpoolJob: Sendable {
    /// A Batch SMTP job; `bytes` is the whole file when it was small enough to keep.
    case bsmtp(BSMTPJob, bytes: [UInt8]?)
    case merge(MergeJob)
}

public enum JobReader {
    /// How far into a large file the first command is looked for.
    static let sniffLength = 4096

    /// Reads and checks the job at `path` (one open, and for a small job one read, as
    /// `BSMTPReader.load`).
    public static func read(path: String) throws -> SpoolJob {
        try open(path: path).job
    }

    /// Reads and checks the job at `path`, with the file's status (its inode names its
    /// journal): one open, one fstat and, for a small job, one read.
    public static func open(path: String) throws -> (job: SpoolJob, status: FileStatus) {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let status = try fd.status()
        let size = status.size
        if size <= BSMTPReader.inMemoryLimit {
            // Read straight into the array's storage: no zero-filling, no second copy.
            let bytes = try [UInt8](unsafeUninitializedCapacity: Int(size)) { buffer, count in
                count = 0
                while count < buffer.count {
                    let n = try fd.read(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[count...])), at: Int64(count))
                    if n == 0 { break }
                    count += n
                }
            }
            return (try parse(bytes), status)
        }
        var head = [UInt8](repeating: 0, count: sniffLength)
        let n = try head.withUnsafeMutableBytes { try fd.read(into: $0, at: 0) }
        if isMerge(head[0..<n]) { return (.merge(try MergeReader.read(.file(fd), size: size)), status) }
        return (.bsmtp(try BSMTPReader.read(fd), bytes: nil), status)
    }

    /// Checks a job held in memory.
    public static func parse(_ bytes: [UInt8]) throws -> SpoolJob {
        if isMerge(bytes.prefix(sniffLength)) { return .merge(try MergeReader.parse(bytes)) }
        return .bsmtp(try BSMTPReader.parse(bytes), bytes: bytes)
    }

    /// True when the first command (after blank lines and one HELO/EHLO line) is `MERGE`.
    public static func isMerge(_ head: some Collection<UInt8>) -> Bool {
        var sawHello = false
        var start = head.startIndex
        while start != head.endIndex {
            let end = head[start...].firstIndex(of: 10) ?? head.endIndex
            let line = head[start..<end]
            start = end == head.endIndex ? end : head.index(after: end)
            let word = line.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") && $0 != 13 }
            if word.isEmpty {
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == 13 }) { continue }
                return false
            }
            if !sawHello && (isWord(word, "HELO") || isWord(word, "EHLO")) {
                sawHello = true
                continue
            }
            return isWord(word, "MERGE")
        }
        return false
    }

    /// `bytes` is `word` (ASCII, upper or lower case alike).
    private static func isWord(_ bytes: some Collection<UInt8>, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        var k = 0
        for b in bytes {
            if (b >= 97 && b <= 122 ? b - 32 : b) != word.utf8Start[k] { return false }
            k += 1
        }
        return true
    }
}
