// What a relay said it can do in its EHLO reply (RFC 5321 §4.1.1.1 and the extensions'
// RFCs). A relay that answered HELO only has none of them.

public struct Capabilities: Equatable, Sendable {
    public var esmtp = false
    public var pipelining = false
    /// SIZE's limit; 0 when SIZE was offered without a limit, nil when not offered.
    public var size: Int64?
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var chunking = false
    public var startTLS = false
    public var enhancedStatusCodes = false
    public var authMechanisms: [String] = []
    /// Every keyword, upper-cased, for status and logs.
    public var keywords: [String] = []

    public init() {}

    public init(ehlo reply: SMTPReply) {
        esmtp = true
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ")
            guard let keyword = words.first?.uppercased() else { continue }
            keywords.append(keyword)
            switch keyword {
            case "PIPELINING": pipelining = true
            case "SIZE": size = words.count > 1 ? Int64(words[1]) ?? 0 : 0
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "CHUNKING": chunking = true
            case "STARTTLS": startTLS = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "AUTH": authMechanisms = words.dropFirst().map { $0.uppercased() }
            default: break
            }
        }
    }
}
