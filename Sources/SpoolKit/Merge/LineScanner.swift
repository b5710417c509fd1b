// Reads a job's lines from any offset, 64 KiB at a time, into one buffer that is reused
// (a line longer than the limit is an error, so memory stays bounded whatever the file's
// size). The merge checker and `MergeRowReader` both read through it. A line comes back
// without its LF (a CR before it is kept: the caller decides) and is valid until the next
// call.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Where a job's bytes come from: its file (pread) or memory (tests, fuzzing, poolctl).
public enum JobBytes: Sendable {
    case file(FileDescriptor)
    case memory([UInt8])

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        switch self {
        case .file(let fd):
            return try fd.read(into: buffer, at: offset)
        case .memory(let bytes):
            guard offset < Int64(bytes.count) else { return 0 }
            let n = min(buffer.count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { raw in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[Int(offset)..<(Int(offset) + n)]))
            }
            return n
        }
    }
}

/// One line of a job as `LineScanner` hands it out.
struct ScannedLine {
    /// The line's bytes without its LF; valid until the scanner's next call.
    var bytes: UnsafeRawBufferPointer
    /// Where the line starts in the file.
    var offset: Int64
    /// 1-based line number.
    var number: Int
    /// False for a last line that has no LF (the file ends in the middle of a line).
    var terminated: Bool

    /// The line without a CR before its LF.
    var content: UnsafeRawBufferPointer {
        if terminated, let last = bytes.last, last == 13 { return UnsafeRawBufferPointer(rebasing: bytes.dropLast()) }
        return bytes
    }
}

final class LineScanner {
    static let chunkSize = 65536

    let source: JobBytes
    let maxLineLength: Int
    private let buffer: UnsafeMutableRawBufferPointer
    /// File offset of `buffer[0]`.
    private var bufferOffset: Int64 = 0
    private var filled = 0
    private var position = 0
    /// Reading stops here (the file's size, or the end of the table).
    private var end: Int64
    private var atEnd = false
    private(set) var nextLineNumber = 1

    init(source: JobBytes, end: Int64, maxLineLength: Int) {
        self.source = source
        self.end = end
        self.maxLineLength = maxLineLength
        buffer = .allocate(byteCount: LineScanner.chunkSize + maxLineLength + 1, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Starts again at `offset`, which is the start of line `lineNumber`, reading up to `end`.
    func restart(at offset: Int64, lineNumber: Int, end: Int64) {
        bufferOffset = offset
        filled = 0
        position = 0
        self.end = end
        atEnd = offset >= end
        nextLineNumber = lineNumber
    }

    /// The next line, or nil at the end. Throws `MergeError` for a line longer than
    /// `maxLineLength` and `SystemError` when the file cannot be read.
    func next() throws -> ScannedLine? {
        guard let base = buffer.baseAddress else { return nil }
        while true {
            if position < filled, let lf = memchr(base + position, 10, filled - position) {
                let at = base.distance(to: UnsafeMutableRawPointer(lf))
                if at - position > maxLineLength {
                    throw MergeError(line: nextLineNumber, "line longer than \(maxLineLength) bytes")
                }
                return take(until: at, terminated: true)
            }
            let pending = filled - position
            if pending > maxLineLength {
                throw MergeError(line: nextLineNumber, "line longer than \(maxLineLength) bytes")
            }
            if atEnd {
                return pending == 0 ? nil : take(until: filled, terminated: false)
            }
            if position > 0 {
                if pending > 0 { memmove(base, base + position, pending) }
                bufferOffset += Int64(position)
                filled = pending
                position = 0
            }
            let room = Int(min(Int64(buffer.count - filled), end - (bufferOffset + Int64(filled))))
            let n = room > 0 ? try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + room)]),
                                               at: bufferOffset + Int64(filled)) : 0
            if n == 0 { atEnd = true }
            filled += n
            if bufferOffset + Int64(filled) >= end { atEnd = true }
        }
    }

    private func take(until at: Int, terminated: Bool) -> ScannedLine {
        let line = ScannedLine(bytes: UnsafeRawBufferPointer(rebasing: buffer[position..<at]),
                               offset: bufferOffset + Int64(position), number: nextLineNumber, terminated: terminated)
        position = terminated ? at + 1 : at
        nextLineNumber += 1
        return line
    }
}
