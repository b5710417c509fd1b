// Dot-stuffing (RFC 5321 §4.5.2) undone, for BDAT (RFC 3030), which carries the message as
// it is: every line that starts with a dot loses that one dot. A pure filter over a stream
// of chunks: the state between chunks is whether the next byte starts a line.

enum DotStuffing {
    /// Calls `emit` with the pieces of `chunk` that remain once each line-initial dot is
    /// dropped. Lines end in LF (CRLF on the wire).
    static func undo(_ chunk: UnsafeRawBufferPointer, atLineStart: inout Bool,
                     _ emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var start = 0
        var i = 0
        while i < chunk.count {
            if atLineStart && chunk[i] == UInt8(ascii: ".") {
                if i > start { try emit(UnsafeRawBufferPointer(rebasing: chunk[start..<i])) }
                start = i + 1
            }
            atLineStart = false
            // Jump to the next line start.
            guard let lf = chunk[i...].firstIndex(of: 10) else { break }
            i = lf + 1
            atLineStart = true
        }
        if start < chunk.count { try emit(UnsafeRawBufferPointer(rebasing: chunk[start...])) }
    }
}
