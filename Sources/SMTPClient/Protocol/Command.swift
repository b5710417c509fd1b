// The commands of a mail transaction as typed values, and their bytes on the wire, written
// into the caller's buffer (one reused buffer per connection: no allocation per command).
// ESMTP parameters the relay did not advertise are dropped here, in one place; SIZE is
// always ours to write.

public enum SMTPCommand: Sendable, Equatable, CustomStringConvertible {
    case reset
    /// MAIL FROM with the parameters as they go out (already filtered, SIZE included).
    case mail(sender: String, parameters: [String])
    case recipient(address: String, parameters: [String])
    case data
    /// BDAT n [LAST] (RFC 3030): the chunk's n octets follow the command at once.
    case chunk(size: Int64, last: Bool)
    /// The line with a single dot that ends a DATA message.
    case endOfData
    case quit

    /// Appends the command line, CRLF included.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .reset: buffer.append(contentsOf: "RSET".utf8)
        case .mail(let sender, let parameters):
            Self.path("MAIL FROM:<", sender, parameters, into: &buffer)
        case .recipient(let address, let parameters):
            Self.path("RCPT TO:<", address, parameters, into: &buffer)
        case .data: buffer.append(contentsOf: "DATA".utf8)
        case .chunk(let size, let last):
            buffer.append(contentsOf: "BDAT ".utf8)
            buffer.append(contentsOf: String(size).utf8)
            if last { buffer.append(contentsOf: " LAST".utf8) }
        case .endOfData: buffer.append(UInt8(ascii: "."))
        case .quit: buffer.append(contentsOf: "QUIT".utf8)
        }
        buffer.append(13)
        buffer.append(10)
    }

    private static func path(_ verb: StaticString, _ address: String, _ parameters: [String], into buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: verb.utf8Start, count: verb.utf8CodeUnitCount))
        buffer.append(contentsOf: address.utf8)
        buffer.append(UInt8(ascii: ">"))
        for p in parameters {
            buffer.append(UInt8(ascii: " "))
            buffer.append(contentsOf: p.utf8)
        }
    }

    /// The command line without CRLF, for tests and logs.
    public var description: String {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return String(decoding: bytes.dropLast(2), as: UTF8.self)
    }

    /// The MAIL command of `envelope` (no list of parameters is built when there are none).
    static func mail(_ envelope: Envelope, size: Int64?, extensions: Set<String>) -> SMTPCommand {
        if size == nil && envelope.senderParameters.isEmpty { return .mail(sender: envelope.sender, parameters: []) }
        var mailParameters: [String] = []
        if let size { mailParameters.append("SIZE=\(size)") }
        for p in envelope.senderParameters where keep(p, extensions) { mailParameters.append(p) }
        return .mail(sender: envelope.sender, parameters: mailParameters)
    }

    /// Parameters the relay can take: those of extensions it advertised, and unknown ones.
    static func keep(_ parameter: String, _ extensions: Set<String>) -> Bool {
        let keyword = parameter.split(separator: "=", maxSplits: 1).first.map { $0.uppercased() } ?? ""
        switch keyword {
        case "SIZE": return false
        case "BODY": return extensions.contains("8BITMIME") || extensions.contains("BINARYMIME")
        case "SMTPUTF8": return extensions.contains("SMTPUTF8")
        case "RET", "ENVID", "NOTIFY", "ORCPT": return extensions.contains("DSN")
        case "AUTH": return extensions.contains("AUTH")
        default: return true
        }
    }
}
