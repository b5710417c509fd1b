// A message on its way to a relay that does not offer 8BITMIME (RFC 6152 §3): sent as it
// is when it has no 8-bit octet; otherwise converted to 7-bit MIME (`EightBitDowngrade`),
// or refused with status 5.6.3 when it cannot be. The check costs one pass over the
// message and no copy; only a message that has to change is held in memory.

/// A message held in memory, dot-stuffing undone, CRLF line ends: it is stuffed as it
/// streams (DATA) and goes as it is by BDAT.
public struct InMemoryMessage: MessageSource, Sendable {
    public let bytes: [UInt8]
    public let wireSize: Int64
    public var unstuffedSize: Int64? { Int64(bytes.count) }

    public init(unstuffed bytes: [UInt8]) {
        self.bytes = bytes
        var size = Int64(bytes.count)
        var atLineStart = true
        for byte in bytes {
            if atLineStart && byte == UInt8(ascii: ".") { size += 1 }
            atLineStart = byte == 10
        }
        wireSize = size
    }

    public func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try bytes.withUnsafeBytes { raw in
            var start = 0
            var atLineStart = true
            for i in 0..<raw.count {
                if atLineStart && raw[i] == UInt8(ascii: ".") {
                    try sink(UnsafeRawBufferPointer(rebasing: raw[start..<i]))
                    try withUnsafeBytes(of: UInt8(ascii: ".")) { try sink($0) }
                    start = i
                }
                atLineStart = raw[i] == 10
            }
            if start < raw.count { try sink(UnsafeRawBufferPointer(rebasing: raw[start...])) }
        }
    }
}

public enum SevenBitTransport {
    public enum Preparation {
        /// No 8-bit octet: the message goes as it is.
        case unchanged
        /// Converted to 7-bit MIME.
        case converted(InMemoryMessage)
        /// It cannot go to this relay: 8-bit octets where no encoding can carry them.
        case refused(DowngradeFailure)
    }

    /// What `message` must become for a relay without 8BITMIME. Throws when the message
    /// cannot be read.
    public static func prepare(_ message: some MessageSource) throws -> Preparation {
        var eightBit = false
        try message.stream { chunk in
            if !eightBit, chunk.contains(where: { $0 >= 0x80 }) { eightBit = true }
        }
        guard eightBit else { return .unchanged }
        var unstuffed: [UInt8] = []
        unstuffed.reserveCapacity(Int(message.wireSize))
        var atLineStart = true
        try message.stream { chunk in
            DotStuffing.undo(chunk, atLineStart: &atLineStart) { unstuffed.append(contentsOf: $0) }
        }
        switch EightBitDowngrade.convert(unstuffed) {
        case .success(let converted): return .converted(InMemoryMessage(unstuffed: converted))
        case .failure(let failure): return .refused(failure)
        }
    }
}
