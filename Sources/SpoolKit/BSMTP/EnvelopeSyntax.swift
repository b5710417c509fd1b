// The envelope lines of a BSMTP job (`MAIL FROM:<a> params`, `RCPT TO:<b> params`) and
// the address rules every address obeys before it may reach the wire: printable, no
// space, no angle bracket, no CR, LF or NUL, `local@domain` (or `postmaster`), at most
// 254 bytes (RFC 5321 §4.5.3.1.3). These rules are what stands between a job file and
// SMTP command injection.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

public enum EnvelopeSyntax {
    public static let maxAddressLength = 254

    /// Why `address` (without angle brackets) cannot be sent, or nil when it can.
    /// `allowNull`: the empty address is the null sender (MAIL FROM only).
    public static func problem(address: some StringProtocol, allowNull: Bool) -> String? {
        var text = String(address)
        return text.withUTF8 { problem(address: $0, allowNull: allowNull) }
    }

    /// The same rules over the address's bytes (a job's envelope lines are checked so,
    /// with no string built before the address is known to be good).
    static func problem(address bytes: UnsafeBufferPointer<UInt8>, allowNull: Bool) -> String? {
        if bytes.isEmpty { return allowNull ? nil : "empty address" }
        if bytes.count > maxAddressLength { return "address longer than \(maxAddressLength) bytes" }
        var ascii = true
        // Nearly every address is printable ASCII without angle brackets: one cheap pass;
        // the byte that fails it is named by the pass below.
        var plain = true
        for b in bytes where b <= 32 || b >= 127 || b == UInt8(ascii: "<") || b == UInt8(ascii: ">") { plain = false }
        if !plain { for b in bytes {
            switch b {
            case 0: return "NUL byte in address"
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"): return "CR or LF in address"
            case UInt8(ascii: " "), UInt8(ascii: "\t"): return "space in address"
            case 1..<32, 127: return "control character in address"
            case UInt8(ascii: "<"), UInt8(ascii: ">"): return "angle bracket inside address"
            case 128...: ascii = false
            default: continue
            }
        } }
        if equalsIgnoringCase(bytes, "postmaster") { return nil }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { return "address has no @domain" }
        if at == 0 { return "address has an empty local part" }
        let domain = bytes[(at + 1)...]
        if domain.isEmpty { return "address has an empty domain" }
        if domain.first == UInt8(ascii: ".") || domain.last == UInt8(ascii: ".") || domain.contains(UInt8(ascii: "@")) {
            return "address has a malformed domain"
        }
        if !ascii && String(validating: bytes, as: UTF8.self) == nil { return "address is not valid UTF-8" }
        return nil
    }

    /// ASCII bytes equal to `word` (upper or lower case alike).
    private static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        return startsIgnoringCase(bytes, word)
    }

    /// ASCII bytes that start with `word`, compared without regard to case.
    private static func startsIgnoringCase(_ bytes: some Collection<UInt8>, _ word: StaticString) -> Bool {
        guard bytes.count >= word.utf8CodeUnitCount else { return false }
        var i = bytes.startIndex
        for k in 0..<word.utf8CodeUnitCount {
            let b = bytes[i]
            let upper = b >= 97 && b <= 122 ? b - 32 : b
            let w = word.utf8Start[k]
            if upper != (w >= 97 && w <= 122 ? w - 32 : w) { return false }
            i = bytes.index(after: i)
        }
        return true
    }

    /// Why an ESMTP parameter (`KEYWORD[=VALUE]`, RFC 5321 §4.1.2) cannot be sent, or nil.
    public static func problem(parameter: some StringProtocol) -> String? {
        let bytes = Array(parameter.utf8)
        let eq = bytes.firstIndex(of: UInt8(ascii: "=")) ?? bytes.count
        let keyword = bytes[..<eq]
        guard let first = keyword.first, isAlnum(first),
              keyword.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") }) else {
            return "malformed parameter keyword in '\(String(decoding: bytes.prefix(40), as: UTF8.self))'"
        }
        if eq < bytes.count {
            let value = bytes[(eq + 1)...]
            if value.isEmpty { return "empty value for parameter \(String(decoding: keyword, as: UTF8.self))" }
            // esmtp-value: %d33-60 / %d62-126 (and UTF-8 under SMTPUTF8)
            for b in value where b < 33 || b == UInt8(ascii: "=") || b == 127 {
                return "bad character in the value of parameter \(String(decoding: keyword, as: UTF8.self))"
            }
        }
        return nil
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }

    public enum Command: Equatable, Sendable {
        case hello
        case mail(sender: String, parameters: [String])
        case rcpt(Recipient)
        case data
        case quit
        case blank
    }

    /// Parses one envelope line (line end already removed).
    public static func parse(line bytes: ArraySlice<UInt8>) -> Result<Command, ParseFault> {
        var text = bytes
        while let last = text.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { text = text.dropLast() }
        if text.isEmpty { return .success(.blank) }
        let (nul, cr) = text.withUnsafeBufferPointer { b in
            (memchr(b.baseAddress!, 0, b.count) != nil, memchr(b.baseAddress!, 13, b.count) != nil)
        }
        if nul { return .failure(.init("NUL byte in an envelope line")) }
        if cr { return .failure(.init("CR inside an envelope line")) }
        if startsIgnoringCase(text, "MAIL FROM:") {
            return pathAndParameters(text.dropFirst(10), allowNull: true).map { .mail(sender: $0.0, parameters: $0.1) }
        }
        if startsIgnoringCase(text, "RCPT TO:") {
            return pathAndParameters(text.dropFirst(8), allowNull: false).map { .rcpt(Recipient(address: $0.0, parameters: $0.1)) }
        }
        let word = text.prefix(while: { $0 != UInt8(ascii: " ") })
        if equalsIgnoringCase(word, "DATA") || equalsIgnoringCase(word, "QUIT") {
            if word.count == text.count { return .success(equalsIgnoringCase(word, "DATA") ? .data : .quit) }
            return .failure(.init("\(String(decoding: word, as: UTF8.self).uppercased()) takes no argument"))
        }
        if equalsIgnoringCase(word, "HELO") || equalsIgnoringCase(word, "EHLO") { return .success(.hello) }
        let shown = String(decoding: text.prefix(40).map { $0 < 32 || $0 > 126 ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
        return .failure(.init("unknown command '\(shown)'"))
    }

    public struct ParseFault: Error, Equatable, Sendable {
        public var message: String
        init(_ message: String) { self.message = message }
    }

    private static func pathAndParameters(_ rest: ArraySlice<UInt8>, allowNull: Bool)
        -> Result<(String, [String]), ParseFault> {
        var rest = rest
        while rest.first == UInt8(ascii: " ") { rest = rest.dropFirst() }
        guard rest.first == UInt8(ascii: "<") else { return .failure(.init("address must be written <like@this>")) }
        guard let close = rest.firstIndex(of: UInt8(ascii: ">")) else {
            return .failure(.init("address has no closing '>'"))
        }
        let addressBytes = rest[(rest.startIndex + 1)..<close]
        if let problem = addressBytes.withUnsafeBufferPointer({ problem(address: $0, allowNull: allowNull) }) {
            return .failure(.init(problem))
        }
        let address = String(decoding: addressBytes, as: UTF8.self)
        let after = rest[(close + 1)...]
        if let first = after.first, first != UInt8(ascii: " ") {
            return .failure(.init("text right after the address's closing '>'"))
        }
        var parameters: [String] = []
        if after.isEmpty { return .success((address, parameters)) }
        for token in after.split(separator: UInt8(ascii: " ")) {
            let parameter = String(decoding: token, as: UTF8.self)
            if let problem = problem(parameter: parameter) { return .failure(.init(problem)) }
            parameters.append(parameter)
        }
        return .success((address, parameters))
    }
}
