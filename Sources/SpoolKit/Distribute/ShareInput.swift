// Reads a share message as an MTA's pipe delivers it: maybe an mbox `From ` line first,
// trace fields the MTAs added on top (Return-Path, Received, Delivered-To, X-Original-To),
// LF or CRLF line ends, folded fields; then the body, handed on in pieces. The header
// block is bounded (`maxHeaderSize`); the body is never held whole.

/// Where the message comes from: a descriptor (standard input) or bytes (tests).
public enum ShareInput {
    case descriptor(FileDescriptor)
    case bytes([UInt8])
}

struct ShareMessageReader {
    /// The largest header block accepted (trace fields included).
    static let maxHeaderSize = 1024 * 1024
    static let chunkSize = 65536

    private let input: ShareInput
    private var offset = 0
    /// Bytes read but not yet used.
    private var pending: [UInt8] = []
    private var atEnd = false

    init(_ input: ShareInput) { self.input = input }

    /// Reads up to the empty line that ends the header block; returns the fields, names
    /// lower-cased. A `X-Poold-*` field given twice is a fault; other fields may repeat
    /// (the last is kept).
    mutating func headers() throws(ShareFault) -> [String: String] {
        var block: [UInt8] = []
        var end: Int?
        while end == nil {
            if let blank = ShareMessageReader.endOfHeaders(pending) {
                block += pending[..<blank.start]
                pending.removeSubrange(..<blank.end)
                end = blank.end
                break
            }
            if pending.count > ShareMessageReader.maxHeaderSize {
                throw .malformed("no end of the header block within \(ShareMessageReader.maxHeaderSize / 1024) kB")
            }
            guard try fill() else {
                throw .malformed(pending.isEmpty ? "empty input" : "the message has no body (no empty line after the header block)")
            }
        }
        var lines = block.split(separator: 10, omittingEmptySubsequences: false).map { $0.last == 13 ? $0.dropLast() : $0 }
        if let first = lines.first, first.starts(with: Array("From ".utf8)) { lines.removeFirst() }  // mbox
        var fields: [(name: String, value: [UInt8])] = []
        for line in lines {
            if let first = line.first, first == 32 || first == 9 {
                if !fields.isEmpty { fields[fields.count - 1].value += line }
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).trimmingBlanks().lowercased()
            fields.append((name, Array(line[(colon + 1)...])))
        }
        var result: [String: String] = [:]
        for (name, value) in fields {
            let text = String(decoding: value, as: UTF8.self).trimmingBlanks()
            if name.hasPrefix("x-poold-"), result[name] != nil { throw .malformed("the \(name) header is given twice") }
            result[name] = text
        }
        return result
    }

    /// Hands the rest of the input (the body) to `body`, piece by piece.
    mutating func body(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if !pending.isEmpty {
            try pending.withUnsafeBytes { try body($0) }
            pending.removeAll()
        }
        while try fill() {
            try pending.withUnsafeBytes { try body($0) }
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Reads more into `pending`; false at the end of the input. A read error is temporary
    /// trouble: the MTA will offer the message again.
    private mutating func fill() throws(ShareFault) -> Bool {
        if atEnd { return false }
        switch input {
        case .bytes(let bytes):
            guard offset < bytes.count else {
                atEnd = true
                return false
            }
            let end = min(bytes.count, offset + ShareMessageReader.chunkSize)
            pending += bytes[offset..<end]
            offset = end
            return true
        case .descriptor(let fd):
            var chunk = [UInt8](repeating: 0, count: ShareMessageReader.chunkSize)
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                throw .temporary("cannot read the message: \(error)")
            }
            if n == 0 {
                atEnd = true
                return false
            }
            pending += chunk[0..<n]
            return true
        }
    }

    /// The empty line that ends the header block: where it starts (the header block's
    /// last line end included before it) and where the body begins.
    static func endOfHeaders(_ bytes: [UInt8]) -> (start: Int, end: Int)? {
        var i = 0
        while let lf = bytes[i...].firstIndex(of: 10) {
            let next = lf + 1
            if next < bytes.count, bytes[next] == 10 { return (lf + 1, next + 1) }
            if next + 1 < bytes.count, bytes[next] == 13, bytes[next + 1] == 10 { return (lf + 1, next + 2) }
            if lf == 0 || (lf == 1 && bytes[0] == 13) { return (0, lf + 1) }  // no header at all
            i = next
        }
        return nil
    }
}

extension String {
    func trimmingBlanks() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return String(scalars[first...last])
    }
}
