// Streams one message of a job from its file as it goes on the wire: dot-stuffed as it
// stands in the file (BSMTP is already stuffed) and with every line ending in CRLF. It
// reads 64 KiB at a time into one buffer and writes into one output buffer, so a message
// of any size costs the same memory and no allocation per line.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public struct MessageReader {
    public let path: String
    public let start: Int64
    public let end: Int64
    public let wireSize: Int64
    /// The size with dot-stuffing undone.
    public let unstuffedSize: Int64?
    /// The whole job, when it was small enough to be read once (`BSMTPReader.load`).
    public let bytes: [UInt8]?

    public init(path: String, transaction: Transaction, bytes: [UInt8]? = nil) {
        self.path = path
        self.start = transaction.messageStart
        self.end = transaction.messageEnd
        self.wireSize = transaction.wireSize
        self.unstuffedSize = transaction.unstuffedSize
        self.bytes = bytes
    }

    /// Calls `sink` with successive pieces of the wire form; the pieces together are
    /// exactly `wireSize` bytes. Throws `SystemError` if the file cannot be read or
    /// changed under us.
    public func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let bytes { return try streamFromMemory(bytes, sink) }
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let chunk = BSMTPReader.chunkSize
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { input.deallocate() }
        // Worst case every byte is a LF that becomes CRLF.
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * 2, alignment: 16)
        defer { output.deallocate() }
        var offset = start
        var previous: UInt8 = 10
        var produced: Int64 = 0
        while offset < end {
            let want = Int(min(Int64(chunk), end - offset))
            let n = try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: offset)
            if n == 0 { throw SystemError("pread", path: path, errno: EIO) }
            var out = 0
            var i = 0
            let inBase = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let outBase = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
            while i < n {
                // Copy up to the next LF in one go.
                let rest = n - i
                let lf = memchr(inBase + i, 10, rest)
                let runEnd = lf.map { UnsafeRawPointer(inBase).distance(to: UnsafeRawPointer($0)) } ?? n
                let run = runEnd - i
                if run > 0 {
                    (outBase + out).update(from: inBase + i, count: run)
                    out += run
                    previous = inBase[runEnd - 1]
                }
                if lf == nil { break }
                if previous != 13 {
                    outBase[out] = 13
                    out += 1
                }
                outBase[out] = 10
                out += 1
                previous = 10
                i = runEnd + 1
            }
            produced += Int64(out)
            try sink(UnsafeRawBufferPointer(rebasing: output[0..<out]))
            offset += Int64(n)
        }
        if produced != wireSize { throw SystemError("read", path: path, errno: EIO) }
    }

    /// The same transformation from the bytes in memory: runs without a LF go out as they
    /// are; a LF without its CR gets one.
    private func streamFromMemory(_ bytes: [UInt8], _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if end - start == wireSize {
            // Every line already ends in CRLF (the wire size counts two bytes per line end):
            // the message goes as it lies.
            return try bytes.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[Int(start)..<Int(end)])) }
        }
        try bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            var runStart = Int(start)
            var i = Int(start)
            let end = Int(self.end)
            var produced: Int64 = 0
            var crlf: (UInt8, UInt8) = (13, 10)
            while i < end {
                guard let lf = memchr(base + i, 10, end - i) else { break }
                let at = base.distance(to: UnsafeRawPointer(lf))
                if at == i || raw[at - 1] != 13 {
                    // Send up to the LF, then CRLF in its place.
                    let run = UnsafeRawBufferPointer(rebasing: raw[runStart..<at])
                    if !run.isEmpty { try sink(run) }
                    try withUnsafeBytes(of: &crlf) { try sink($0) }
                    produced += Int64(run.count + 2)
                    runStart = at + 1
                }
                i = at + 1
            }
            if runStart < end {
                try sink(UnsafeRawBufferPointer(rebasing: raw[runStart..<end]))
                produced += Int64(end - runStart)
            }
            if produced != wireSize { throw SystemError("read", path: path, errno: EIO) }
        }
    }

    /// The whole message in memory with dot-stuffing undone (CRLF line ends).
    public func unstuffed() throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(wireSize))
        var atLineStart = true
        try stream { chunk in
            for byte in chunk {
                if atLineStart && byte == UInt8(ascii: ".") {
                    atLineStart = false
                    continue
                }
                out.append(byte)
                atLineStart = byte == 10
            }
        }
        return out
    }
}
