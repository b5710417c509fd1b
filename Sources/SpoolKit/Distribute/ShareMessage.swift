// A share as the ordinary RFC 5322 message the primary mails to a peer: plain headers, the
// signed `X-Poold-*` headers (ShareMetadata.swift), and the share's job file in base64 in
// 76-column lines, which any relay passes unchanged:
//   From: poold <postmaster@mx.primary.example>
//   To: <poold@dist1.example.org>
//   Subject: poold share 2/4 rows 251-500 of A123.MAIL
//   Date: …   Message-ID: <share id>   MIME-Version: 1.0
//   Content-Type: application/x-poold-share   Content-Transfer-Encoding: base64
//   X-Poold-Share-Version … X-Poold-To, X-Poold-Signature: hmac-sha256 <64 hex>
// The content is written twice (once into the signature, once into the body): memory stays
// a buffer, whatever the share's size. Every line ends in CRLF; no line starts with a dot.

public struct ShareMessage: Sendable {
    /// The envelope sender (MAIL FROM): who hears of a share the peer's MTA bounces.
    public var sender: String
    /// The envelope recipient (RCPT TO): the peer's address.
    public var recipient: String
    public var metadata: ShareMetadata
    /// The message as the relay must receive it (CRLF, not dot-stuffed).
    public var bytes: [UInt8]

    /// The share's stable id (also its Message-ID).
    public var id: String { metadata.id }

    /// The envelope sender when none is given: `postmaster@<HELO_NAME>`, which RFC 5321
    /// §4.5.1 requires every mail domain to have.
    public static func defaultSender(heloName: String) -> String { "postmaster@\(heloName)" }

    /// The share message for `content`'s peer, signed with `key` at `time` (seconds since
    /// the epoch), in memory.
    public static func build(_ content: ShareContent, key: ShareKey, time: Int64, sender: String? = nil) throws -> ShareMessage {
        var bytes: [UInt8] = []
        let envelope = try envelope(of: content, sender: sender)
        let metadata = try write(content, key: key, time: time, sender: envelope.sender) { bytes.append(contentsOf: $0) }
        return ShareMessage(sender: envelope.sender, recipient: envelope.recipient, metadata: metadata, bytes: bytes)
    }

    /// The envelope of `content`'s share message; SELF's share has none.
    public static func envelope(of content: ShareContent, sender: String? = nil) throws(DistributeError) -> (sender: String, recipient: String) {
        guard case .remote(let address) = content.share.peer else {
            throw .content("share \(content.share.index)/\(content.share.count) is SELF's: it is spooled here, not mailed")
        }
        let from = sender ?? defaultSender(heloName: content.origin.heloName)
        if let problem = EnvelopeSyntax.problem(address: from, allowNull: false) {
            throw .content("the share's sender <\(from)>: \(problem)")
        }
        return (from, address)
    }

    /// Writes the share message (headers and base64 body) to `sink`; returns its metadata.
    @discardableResult
    public static func write(_ content: ShareContent, key: ShareKey, time: Int64, sender: String? = nil,
                             to sink: (UnsafeRawBufferPointer) throws -> Void) throws -> ShareMetadata {
        let envelope = try envelope(of: content, sender: sender)
        let metadata = content.metadata(recipient: envelope.recipient, time: time)
        let signature = try ShareSignature(key: key)
        signature.update(metadata.canonical)
        try content.write { signature.update($0) }
        let mac = try signature.finish()

        var head = [
            ("From", "poold <\(envelope.sender)>"),
            ("To", "<\(envelope.recipient)>"),
            ("Subject", "poold share \(metadata.summary)"),
            ("Date", String(decoding: MessageDate.format(seconds: time, utcOffset: 0), as: UTF8.self)),
            ("Message-ID", "<\(metadata.id)>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "application/x-poold-share"),
            ("Content-Transfer-Encoding", "base64"),
        ]
        head += metadata.headerFields
        head.append((ShareMetadata.Field.signature, "hmac-sha256 \(Hex.encode(mac))"))
        let text = head.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n"
        try Array(text.utf8).withUnsafeBytes { try sink($0) }
        var encoder = Base64Encoder()
        try content.write { try encoder.add($0, sink) }
        try encoder.finish(sink)
        return metadata
    }

    /// Writes the share message as a BSMTP job (`HELO poold-share <id>`, MAIL FROM, RCPT TO,
    /// DATA, the message, `.`), for the primary to spool and send like any job. The HELO
    /// line marks it as a share: it is never distributed again.
    @discardableResult
    public static func writeJob(_ content: ShareContent, key: ShareKey, time: Int64, sender: String? = nil,
                                to sink: (UnsafeRawBufferPointer) throws -> Void) throws -> ShareMetadata {
        let envelope = try envelope(of: content, sender: sender)
        let head = "HELO \(BSMTPJob.shareMarker) \(content.id)\r\nMAIL FROM:<\(envelope.sender)>\r\nRCPT TO:<\(envelope.recipient)>\r\nDATA\r\n"
        try Array(head.utf8).withUnsafeBytes { try sink($0) }
        let metadata = try write(content, key: key, time: time, sender: sender, to: sink)
        try Array(".\r\n".utf8).withUnsafeBytes { try sink($0) }
        return metadata
    }

    /// Spools the share message as a new job in the origin's pool (so windows, rate limits
    /// and TLS apply as to any job); checked before it is linked.
    public static func spool(_ content: ShareContent, key: ShareKey, time: Int64, sender: String? = nil,
                             in spool: Spool) throws -> (name: JobName, metadata: ShareMetadata) {
        var metadata: ShareMetadata?
        let name = try JobWriter.submit(pool: content.origin.name.pool, spool: spool, write: { fd in
            var buffer: [UInt8] = []
            metadata = try writeJob(content, key: key, time: time, sender: sender) { bytes in
                buffer.append(contentsOf: bytes)
                if buffer.count >= 256 * 1024 {
                    try fd.writeAll(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try fd.writeAll(buffer)
        }, check: { path in
            _ = try BSMTPReader.read(path: path)
        })
        guard let metadata else { throw DistributeError.content("the share message for \(content.id) was not written") }
        return (name, metadata)
    }
}
