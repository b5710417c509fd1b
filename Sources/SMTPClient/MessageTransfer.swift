// How a message crosses the wire once the relay is ready for it: after 354, dot-stuffed
// as it stands in the job with its final dot (one write when small); or by BDAT (RFC 3030)
// with dot-stuffing undone, right after its `BDAT n LAST` command. Either way a large
// message streams chunk by chunk, each write with its own deadline.

extension SMTPSession {
    /// A message this small goes out with its final dot in one write (one system call,
    /// one segment); a larger one streams chunk by chunk, each with its own deadline.
    static let coalescedMessageLimit: Int64 = 64 * 1024

    func sendMessage(_ message: some MessageSource) throws {
        let t = settings.timeouts
        if message.wireSize <= SMTPSession.coalescedMessageLimit {
            var buffer: [UInt8] = []
            buffer.reserveCapacity(Int(message.wireSize) + 3)
            try message.stream { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: [UInt8(ascii: "."), 13, 10])
            try write(buffer, until: .after(t.dataBlock))
        } else {
            try message.stream { chunk in try write(chunk, until: .after(t.dataBlock)) }
            try write(Array(".\r\n".utf8), until: .after(t.dataBlock))
        }
    }

    /// `commands` (ending in `BDAT n LAST`) and the message with dot-stuffing undone:
    /// one write when small, else the commands and then the message chunk by chunk.
    func sendChunk(_ message: some MessageSource, size: Int64, after commands: [String]) throws {
        let t = settings.timeouts
        var head: [UInt8] = []
        for c in commands { head += Array(c.utf8) + [13, 10] }
        var sent: Int64 = 0
        var atLineStart = true
        if size <= SMTPSession.coalescedMessageLimit {
            var buffer = head
            buffer.reserveCapacity(head.count + Int(size))
            try message.stream { chunk in
                DotStuffing.undo(chunk, atLineStart: &atLineStart) { buffer.append(contentsOf: $0); sent += Int64($0.count) }
            }
            guard sent == size else { throw TransportError.io("the message changed while it was sent (BDAT \(size), have \(sent))") }
            try write(buffer, until: .after(t.dataBlock))
        } else {
            try write(head, until: .after(t.command))
            var failure: (any Error)?
            try message.stream { chunk in
                try DotStuffing.undo(chunk, atLineStart: &atLineStart) { piece in
                    do { try write(piece, until: .after(t.dataBlock)) } catch { failure = error; throw error }
                    sent += Int64(piece.count)
                }
            }
            if let failure { throw failure }
            guard sent == size else { throw TransportError.io("the message changed while it was sent (BDAT \(size), have \(sent))") }
        }
    }
}
