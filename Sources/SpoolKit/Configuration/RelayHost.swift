// A relay MTA a worker talks to, and the host syntax of worker lines and HELO_NAME: a DNS
// name, an IPv4 address, or an IPv6 address in brackets, each with an optional port.
// Invariant: a RelayHost's host is one of those three forms (IPv6 kept without brackets),
// so it can go into a connect call or a log line unchanged.

public struct RelayHost: Hashable, Sendable, CustomStringConvertible {
    /// A DNS name, an IPv4 address, or an IPv6 address without brackets.
    public var host: String
    public var port: UInt16

    public static let smtpPort: UInt16 = 25
    /// Where a relay listens for SMTP over implicit TLS (RFC 8314 §7.3), used with TLS=smtps.
    public static let smtpsPort: UInt16 = 465

    public init(host: String, port: UInt16 = RelayHost.smtpPort) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 address in brackets: `[::1]:25`.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

enum RelayHostSyntax {
    /// `host[:port]` or `[IPv6][:port]`; the port is nil when none is written.
    static func hostAndPort(_ text: Substring) throws(ConfigurationFault) -> (host: String, port: UInt16?) {
        guard !text.isEmpty else { throw ConfigurationFault("no host given") }
        let host: Substring
        let portText: Substring?
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { throw ConfigurationFault("'\(text)' has '[' without ']'") }
            host = text[text.index(after: text.startIndex)..<close]
            guard isIPv6(host) else { throw ConfigurationFault("'\(host)' is not an IPv6 address") }
            let after = text[text.index(after: close)...]
            guard after.isEmpty || after.first == ":" else {
                throw ConfigurationFault("unexpected '\(after)' after '\(text[...close])'")
            }
            portText = after.isEmpty ? nil : after.dropFirst()
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw ConfigurationFault("'\(text)' looks like an IPv6 address: write it in brackets, e.g. [::1]:25")
            }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
            try checkHost(host)
        }
        guard let portText else { return (String(host), nil) }
        guard ConfigurationText.isDigits(portText), let port = UInt16(portText), port > 0 else {
            throw ConfigurationFault("port '\(portText)' is not a number 1...65535")
        }
        return (String(host), port)
    }

    /// A DNS name (letters, digits, `-`, `_` in dot-separated labels) or an IPv4 address.
    static func checkHost(_ host: Substring) throws(ConfigurationFault) {
        guard !host.isEmpty else { throw ConfigurationFault("no host given") }
        if host.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) }) {
            guard isIPv4(host) else { throw ConfigurationFault("'\(host)' is not an IPv4 address") }
        } else if !isDomainName(host, allowUnderscore: true) {
            throw ConfigurationFault("'\(host)' is not a host name, an IPv4 address or an [IPv6] address")
        }
    }

    /// EHLO's argument (RFC 5321 §4.1.1.1): a host name or an address literal, `[1.2.3.4]`
    /// or `[IPv6:2001:db8::1]`.
    static func checkHeloName(_ name: Substring) throws(ConfigurationFault) {
        if name.first == "[", name.last == "]" {
            let inside = name.dropFirst().dropLast()
            let isLiteral = inside.lowercased().hasPrefix("ipv6:") ? isIPv6(inside.dropFirst(5)) : isIPv4(inside)
            guard isLiteral else { throw ConfigurationFault("'\(name)' is not an address literal ([1.2.3.4] or [IPv6:…])") }
        } else if isIPv4(name) {
            throw ConfigurationFault("write an address as a literal in brackets: [\(name)]")
        } else if !isDomainName(name, allowUnderscore: false) {
            throw ConfigurationFault("'\(name)' is not a host name or an address literal")
        }
    }

    /// Dot-separated labels of letters, digits and `-` (not first or last), each at most 63
    /// characters, 253 in all (RFC 1035 §2.3.4).
    static func isDomainName(_ name: Substring, allowUnderscore: Bool) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return false }
            return label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || (allowUnderscore && $0 == "_")) }
        }
    }

    /// Four decimal octets 0...255, without leading zeros (as inet_pton reads them).
    static func isIPv4(_ text: Substring) -> Bool {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { octet in
            ConfigurationText.isDigits(octet) && octet.count <= 3 && (octet == "0" || octet.first != "0")
                && Int(octet)! <= 255
        }
    }

    /// RFC 4291 §2.2 text: eight groups of 1–4 hex digits; one `::` stands for one or more
    /// groups of zeros; the last two groups may be written as an IPv4 address. No zone id.
    static func isIPv6(_ text: Substring) -> Bool {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        guard !text.isEmpty, halves.count <= 2 else { return false }
        var groups = 0
        for (halfIndex, half) in halves.enumerated() where !half.isEmpty {
            let pieces = half.split(separator: ":", omittingEmptySubsequences: false)
            for (pieceIndex, piece) in pieces.enumerated() {
                let isLast = halfIndex == halves.count - 1 && pieceIndex == pieces.count - 1
                if isLast && piece.contains(".") {
                    guard isIPv4(piece) else { return false }
                    groups += 2
                } else {
                    guard (1...4).contains(piece.count), piece.allSatisfy(\.isHexDigit), piece.allSatisfy(\.isASCII) else {
                        return false
                    }
                    groups += 1
                }
            }
        }
        return halves.count == 2 ? groups <= 7 : groups == 8
    }
}
