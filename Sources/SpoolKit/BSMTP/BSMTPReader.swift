// Reads a job file in one streaming pass (64 KiB at a time, whatever the file's size) and
// checks it whole before any of it is sent: envelope grammar, a final `.` for every DATA,
// no NUL byte anywhere, no half line at the end. It keeps the envelopes and, for each
// message, only where it starts and ends in the file and its size on the wire.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum BSMTPReader {
    /// The longest envelope line accepted, CRLF included (RFC 5321 §4.5.3.1.4 allows 512
    /// for a command line; extensions such as ORCPT make real lines longer).
    public static let maxEnvelopeLineLength = 2048
    static let chunkSize = 65536

    /// Jobs up to this size are read into memory once and sent from there.
    public static let inMemoryLimit: Int64 = 256 * 1024

    /// Reads and checks the job at `path`. Throws `BSMTPError` for a bad file and
    /// `SystemError` when it cannot be read.
    public static func read(path: String) throws -> BSMTPJob {
        try load(path: path).job
    }

    /// Reads and checks the job at `path`; a small job's bytes come back too, so that its
    /// messages can be sent without reading the file again.
    public static func load(path: String) throws -> (job: BSMTPJob, bytes: [UInt8]?) {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let size = try fd.status().size
        if size <= inMemoryLimit {
            var bytes = [UInt8](repeating: 0, count: Int(size))
            var offset = 0
            while offset < bytes.count {
                let n = try bytes.withUnsafeMutableBytes { try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset...]), at: Int64(offset)) }
                if n == 0 { break }
                offset += n
            }
            if offset < bytes.count { bytes.removeSubrange(offset...) }
            return (try parse(bytes), bytes)
        }
        return (try read(fd), nil)
    }

    public static func read(_ fd: FileDescriptor) throws -> BSMTPJob {
        var scanner = Scanner()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var offset: Int64 = 0
        while true {
            let n = try buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: offset) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { raw in try scanner.consume(UnsafeRawBufferPointer(rebasing: raw[0..<n]), at: offset) }
            offset += Int64(n)
        }
        return try scanner.finish(fileSize: offset)
    }

    /// Checks bytes held in memory (tests, fuzzing, `poolctl submit --bsmtp`).
    public static func parse(_ bytes: [UInt8]) throws -> BSMTPJob {
        var scanner = Scanner()
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunkSize, bytes.count)
            try bytes.withUnsafeBytes { raw in
                try scanner.consume(UnsafeRawBufferPointer(rebasing: raw[offset..<end]), at: Int64(offset))
            }
            offset = end
        }
        return try scanner.finish(fileSize: Int64(bytes.count))
    }

    struct Scanner {
        enum State { case start, betweenTransactions, inEnvelope, inMessage, afterQuit }
        var state = State.start
        var transactions: [Transaction] = []
        var current: Transaction?
        var hello: String?
        /// Line number of the line being read (1-based).
        var line = 1
        var lineStart: Int64 = 0
        /// Envelope line being assembled (bounded by maxEnvelopeLineLength).
        var envelopeLine: [UInt8] = []
        /// Message line being read: its length so far, first and last byte.
        var messageLineLength = 0
        var messageLineFirst: UInt8 = 0
        var messageLineLast: UInt8 = 0

        mutating func consume(_ chunk: UnsafeRawBufferPointer, at chunkOffset: Int64) throws {
            guard let base = chunk.baseAddress else { return }
            if memchr(base, 0, chunk.count) != nil {
                let nul = chunk.firstIndex(of: 0)!
                let lfs = chunk[0..<nul].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                throw BSMTPError(line: line + lfs, "NUL byte in the file (binary content is not BSMTP)")
            }
            var i = 0
            while i < chunk.count {
                if state == .inMessage && messageLineLength == 0 {
                    // Whole message lines: one memchr each, no call per line.
                    i = messageLines(chunk, from: i, at: chunkOffset)
                    if i == chunk.count { return }
                    if state == .inMessage {
                        // The last line of the chunk is cut: the general path keeps its start.
                        messageLineFirst = chunk[i]
                        messageLineLast = chunk[chunk.count - 1]
                        messageLineLength = chunk.count - i
                        return
                    }
                    continue
                }
                let found = memchr(base + i, 10, chunk.count - i)
                let end = found.map { base.distance(to: UnsafeRawPointer($0)) } ?? chunk.count
                let segment = UnsafeRawBufferPointer(rebasing: chunk[i..<end])
                if state == .inMessage {
                    if messageLineLength == 0, let first = segment.first { messageLineFirst = first }
                    if let last = segment.last { messageLineLast = last }
                    messageLineLength += segment.count
                } else {
                    if envelopeLine.count + segment.count > BSMTPReader.maxEnvelopeLineLength {
                        throw BSMTPError(line: line, "envelope line longer than \(BSMTPReader.maxEnvelopeLineLength) bytes")
                    }
                    envelopeLine.append(contentsOf: segment)
                }
                guard found != nil else { return }
                try endOfLine(nextLineStart: chunkOffset + Int64(end) + 1)
                i = end + 1
            }
        }

        /// Message lines that end inside `chunk`, from `start` (a line start): each adds its
        /// wire size (content + CRLF) and whether it is dot-stuffed; the `.` line ends the
        /// message. Returns where it stopped: the chunk's end, the start of a line the chunk
        /// cuts, or the line after the message.
        mutating func messageLines(_ chunk: UnsafeRawBufferPointer, from start: Int, at chunkOffset: Int64) -> Int {
            let base = chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let count = chunk.count
            var i = start
            var wire: Int64 = 0, stuffed: Int64 = 0, lines = 0
            defer {
                if current != nil {
                    current!.wireSize += wire
                    current!.stuffedLines += stuffed
                }
            }
            while i < count {
                guard let lf = memchr(base + i, 10, count - i) else { break }
                let end = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(lf))
                let length = end - i
                let content = length > 0 && base[end - 1] == 13 ? length - 1 : length
                if content == 1 && base[i] == UInt8(ascii: ".") {
                    current!.wireSize += wire
                    current!.stuffedLines += stuffed
                    (wire, stuffed) = (0, 0)
                    current!.messageEnd = chunkOffset + Int64(i)
                    transactions.append(current!)
                    current = nil
                    state = .betweenTransactions
                    line += lines + 1
                    lineStart = chunkOffset + Int64(end + 1)
                    return end + 1
                }
                wire += Int64(content + 2)
                if length > 0 && base[i] == UInt8(ascii: ".") { stuffed += 1 }
                lines += 1
                i = end + 1
            }
            line += lines
            lineStart = chunkOffset + Int64(i)
            return i
        }

        mutating func endOfLine(nextLineStart: Int64) throws {
            if state == .inMessage {
                let endsInCR = messageLineLength > 0 && messageLineLast == 13
                let content = messageLineLength - (endsInCR ? 1 : 0)
                if content == 1 && messageLineFirst == UInt8(ascii: ".") {
                    current!.messageEnd = lineStart
                    transactions.append(current!)
                    current = nil
                    state = .betweenTransactions
                } else {
                    current!.wireSize += Int64(content + 2)
                    if messageLineLength > 0 && messageLineFirst == UInt8(ascii: ".") { current!.stuffedLines += 1 }
                }
                messageLineLength = 0
            } else {
                let end = envelopeLine.last == 13 ? envelopeLine.count - 1 : envelopeLine.count
                try envelope(envelopeLine[0..<end], nextLineStart: nextLineStart)
                // Emptied in place (the slice above is gone): the buffer serves the next line.
                envelopeLine.removeSubrange(0..<envelopeLine.count)
            }
            line += 1
            lineStart = nextLineStart
        }

        mutating func envelope(_ text: ArraySlice<UInt8>, nextLineStart: Int64) throws {
            let command: EnvelopeSyntax.Command
            switch EnvelopeSyntax.parse(line: text) {
            case .success(let c): command = c
            case .failure(let fault): throw BSMTPError(line: line, fault.message)
            }
            switch (state, command) {
            case (_, .blank):
                return
            case (.afterQuit, _):
                throw BSMTPError(line: line, "text after QUIT")
            case (.start, .hello):
                hello = String(decoding: text.drop { $0 != UInt8(ascii: " ") }.drop { $0 == UInt8(ascii: " ") || $0 == 9 }, as: UTF8.self)
                state = .betweenTransactions
            case (_, .hello):
                throw BSMTPError(line: line, "HELO/EHLO is accepted only as the first line")
            case (.start, .mail(let sender, let parameters)), (.betweenTransactions, .mail(let sender, let parameters)):
                current = Transaction(index: transactions.count, line: line, sender: sender,
                                      senderParameters: parameters, recipients: [],
                                      messageStart: 0, messageEnd: 0, wireSize: 0)
                state = .inEnvelope
            case (.inEnvelope, .mail):
                throw BSMTPError(line: line, "MAIL FROM inside a transaction (the one begun on line \(current!.line) has no DATA)")
            case (.inEnvelope, .rcpt(let recipient)):
                current!.recipients.append(recipient)
            case (_, .rcpt):
                throw BSMTPError(line: line, "RCPT TO before MAIL FROM")
            case (.inEnvelope, .data):
                if current!.recipients.isEmpty {
                    throw BSMTPError(line: line, "DATA without any RCPT TO (transaction begun on line \(current!.line))")
                }
                current!.messageStart = nextLineStart
                state = .inMessage
            case (_, .data):
                throw BSMTPError(line: line, "DATA before MAIL FROM")
            case (.inEnvelope, .quit):
                throw BSMTPError(line: line, "QUIT inside a transaction (begun on line \(current!.line), no DATA)")
            case (_, .quit):
                state = .afterQuit
            case (.inMessage, _):
                preconditionFailure("message lines are not envelope lines")
            }
        }

        mutating func finish(fileSize: Int64) throws -> BSMTPJob {
            if state == .inMessage {
                throw BSMTPError(line: line - (messageLineLength == 0 ? 1 : 0),
                                 "the file ends inside the message begun on line \(current!.line) (no final '.' line)")
            }
            if !envelopeLine.isEmpty {
                if envelopeLine.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) == false {
                    throw BSMTPError(line: line, "the file ends in the middle of a line (truncated?)")
                }
            }
            if state == .inEnvelope {
                throw BSMTPError(line: max(line - 1, 1), "the file ends inside the transaction begun on line \(current!.line) (no DATA)")
            }
            if transactions.isEmpty {
                throw BSMTPError(line: max(line - 1, 1), fileSize == 0 ? "empty file" : "no transaction (no MAIL FROM ... DATA)")
            }
            return BSMTPJob(transactions: transactions, fileSize: fileSize, hello: hello)
        }
    }
}
