// Base64 (RFC 4648 §4) in pieces, as a share message's body needs it: the encoder writes
// lines of 76 characters ending in CRLF (RFC 2045 §6.8), so any relay passes the body
// unchanged; the decoder takes the body however an MTA delivered it (CRLF or LF, blank
// lines, a missing last line end) and refuses anything else: a byte outside the alphabet,
// data after the padding, a length that is not a whole number of quanta.

public struct Base64Encoder {
    public static let lineLength = 76
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private var pending: [UInt8] = []   // at most 2 bytes not yet encoded
    private var line: [UInt8] = []
    private var output: [UInt8] = []

    public init() {
        line.reserveCapacity(Base64Encoder.lineLength + 2)
    }

    public mutating func add(_ bytes: UnsafeRawBufferPointer, _ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var i = 0
        while pending.count > 0 && pending.count < 3 && i < bytes.count {
            pending.append(bytes[i])
            i += 1
        }
        if pending.count == 3 {
            quantum(pending[0], pending[1], pending[2])
            pending.removeAll()
        }
        while i + 3 <= bytes.count {
            quantum(bytes[i], bytes[i + 1], bytes[i + 2])
            i += 3
            if output.count >= 64 * 1024 { try flush(sink) }
        }
        while i < bytes.count {
            pending.append(bytes[i])
            i += 1
        }
        try flush(sink)
    }

    /// Encodes what is left, with padding, and ends the last line.
    public mutating func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let table = Base64Encoder.alphabet
        switch pending.count {
        case 1:
            emit(table[Int(pending[0] >> 2)], table[Int((pending[0] & 3) << 4)], UInt8(ascii: "="), UInt8(ascii: "="))
        case 2:
            emit(table[Int(pending[0] >> 2)], table[Int((pending[0] & 3) << 4 | pending[1] >> 4)],
                 table[Int((pending[1] & 15) << 2)], UInt8(ascii: "="))
        default: break
        }
        pending.removeAll()
        if !line.isEmpty {
            output += line
            output += [13, 10]
            line.removeAll(keepingCapacity: true)
        }
        try flush(sink)
    }

    private mutating func quantum(_ a: UInt8, _ b: UInt8, _ c: UInt8) {
        let table = Base64Encoder.alphabet
        emit(table[Int(a >> 2)], table[Int((a & 3) << 4 | b >> 4)], table[Int((b & 15) << 2 | c >> 6)], table[Int(c & 63)])
    }

    private mutating func emit(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        line.append(a)
        line.append(b)
        line.append(c)
        line.append(d)
        if line.count == Base64Encoder.lineLength {
            output += line
            output += [13, 10]
            line.removeAll(keepingCapacity: true)
        }
    }

    private mutating func flush(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard !output.isEmpty else { return }
        try output.withUnsafeBytes { try sink($0) }
        output.removeAll(keepingCapacity: true)
    }
}

public struct Base64Decoder {
    public struct Fault: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    private var quantum: [UInt8] = []
    private var padding = 0
    private var output: [UInt8] = []

    public init() {}

    /// Decodes one body line (its line end already removed, or not: CR and LF are skipped).
    public mutating func add(_ bytes: some Collection<UInt8>, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        for c in bytes {
            switch c {
            case 13, 10, 32, 9: continue
            case UInt8(ascii: "="):
                guard quantum.count >= 2 else { throw Fault(description: "misplaced '=' in the base64 body") }
                padding += 1
                quantum.append(0)
            default:
                let value = Base64Decoder.values[Int(c)]
                guard value != 0xFF else { throw Fault(description: "byte \(c) is not base64") }
                guard padding == 0 else { throw Fault(description: "base64 data after the padding") }
                quantum.append(value)
            }
            if quantum.count == 4 {
                let (a, b, c, d) = (quantum[0], quantum[1], quantum[2], quantum[3])
                output.append(a << 2 | b >> 4)
                if padding < 2 { output.append(b << 4 | c >> 2) }
                if padding < 1 { output.append(c << 6 | d) }
                quantum.removeAll(keepingCapacity: true)
                if padding > 0 { padding = 3 }  // nothing may follow a padded quantum
            }
        }
        if output.count >= 64 * 1024 { try flush(sink) }
    }

    public mutating func finish(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard quantum.isEmpty else { throw Fault(description: "the base64 body ends in the middle of a quantum (truncated?)") }
        try flush(sink)
    }

    private mutating func flush(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !output.isEmpty else { return }
        try output.withUnsafeBytes { try sink($0) }
        output.removeAll(keepingCapacity: true)
    }
}
