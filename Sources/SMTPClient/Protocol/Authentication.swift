// SMTP AUTH (RFC 4954) as a pure state machine: it chooses a mechanism from the relay's
// EHLO list (PLAIN, else LOGIN), gives the command lines to send and takes the replies.
// The lines it gives carry the password (base64 is not encryption): the session writes
// them and never logs them, and nothing this machine returns for errors contains them.

public struct AuthenticationExchange: Sendable {
    public enum Mechanism: String, Sendable, CaseIterable {
        /// RFC 4616, with the initial response on the AUTH line: one round trip.
        case plain = "PLAIN"
        /// The old two-prompt mechanism, for relays that offer nothing better.
        case login = "LOGIN"

        /// The mechanism to use from the relay's advertised ones, in our order of preference.
        public static func preferred(from offered: [String]) -> Mechanism? {
            let upper = Set(offered.map { $0.uppercased() })
            return allCases.first { upper.contains($0.rawValue) }
        }
    }

    public enum Step: Sendable, Equatable {
        /// Write this line (it may hold the password) and pass the reply to `receive`.
        case send(String)
        /// 235: authenticated.
        case succeeded
        /// The relay said no (535 wrong credentials, 454 try later, 504 …) or the dialogue
        /// went wrong; the reply is the relay's last word.
        case failed(SMTPReply)
    }

    public let mechanism: Mechanism
    private let user: String
    private let password: String
    /// LOGIN: how many 334 prompts have been answered.
    private var promptsAnswered = 0
    private var cancelled = false

    public init(mechanism: Mechanism, user: String, password: String) {
        self.mechanism = mechanism
        self.user = user
        self.password = password
    }

    /// The AUTH command line.
    public func firstLine() -> String {
        switch mechanism {
        case .plain: return "AUTH PLAIN " + Base64.encode([0] + Array(user.utf8) + [0] + Array(password.utf8))
        case .login: return "AUTH LOGIN"
        }
    }

    /// Takes the relay's reply to the last line sent.
    public mutating func receive(_ reply: SMTPReply) -> Step {
        if cancelled { return .failed(reply) }
        if reply.code == 235 { return .succeeded }
        guard reply.code == 334 else { return .failed(reply) }
        switch (mechanism, promptsAnswered) {
        case (.login, 0):
            promptsAnswered = 1
            return .send(Base64.encode(Array(user.utf8)))
        case (.login, 1):
            promptsAnswered = 2
            return .send(Base64.encode(Array(password.utf8)))
        default:
            // A prompt the mechanism has no answer for: cancel (RFC 4954 §4, "*").
            cancelled = true
            return .send("*")
        }
    }
}

/// Base64 (RFC 4648 §4) with padding, for AUTH lines.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension AuthenticationExchange: CustomStringConvertible, CustomReflectable {
    public var description: String { "AUTH \(mechanism.rawValue) as \(user)" }
    public var customMirror: Mirror { Mirror(self, children: ["mechanism": mechanism, "user": user]) }
}
