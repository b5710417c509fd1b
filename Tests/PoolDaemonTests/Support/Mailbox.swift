// What a real MTA delivered: the files scripts/relays/store_message.sh wrote (one per
// delivery), read back as envelope + message, with the relay's own trace headers taken
// off so the rest can be compared byte for byte with what the job held.
//
// Two forms, both whole files (the script writes a dot-file and renames it):
//   - Batch SMTP (Exim's pipe transport with use_bsmtp, CRLF): MAIL FROM, RCPT TO…,
//     DATA, the message dot-stuffed, "."; possibly several transactions.
//   - "<sender> <rcpt>…" on the first line, then the message as the MTA hands it to a
//     delivery agent (Postfix's pipe and OpenSMTPD's mda: LF line ends, no stuffing).
// Line ends come back as CRLF, as they went out. The null sender reads as "".

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

struct Mailbox {
    let directory: String

    struct Delivery {
        var sender: String
        var recipients: [String]
        /// The message as the relay stored it (its trace headers still in), CRLF line ends.
        var message: [UInt8]
        var file: String
    }

    /// Every finished delivery file, oldest first.
    func deliveries() throws -> [Delivery] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }.sorted()
        var result: [Delivery] = []
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
            if bytes.starts(with: Array("MAIL FROM:".utf8)) {
                result += try Mailbox.batchSMTP(bytes, file: name)
            } else {
                result.append(try Mailbox.envelopeFirst(bytes, file: name))
            }
        }
        return result
    }

    /// Deliveries tagged by X-Test-Id with the trace headers removed, for `assertExactlyOnce`.
    /// Message-ID and Date count as the relay's only when the job's message had none.
    func received(comparedWith expected: GeneratedJobs? = nil) throws -> [ReceivedMessage] {
        try deliveries().map { delivery in
            let tag = GeneratedJobs.tag(of: delivery.message)
            let original = tag.flatMap { expected?.messages[$0] }
            let data = TraceHeaders.strip(delivery.message, original: original)
            return (tag, delivery.sender, delivery.recipients, data)
        }
    }

    /// Files a delivery agent is still writing (dot-files).
    func filesInProgress() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(".") }.count
    }

    // MARK: - the two forms

    struct Malformed: Error, CustomStringConvertible { var description: String }

    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for i in bytes.indices where bytes[i] == 10 {
            var end = i
            if end > start && bytes[end - 1] == 13 { end -= 1 }
            lines.append(bytes[start..<end])
            start = i + 1
        }
        if start < bytes.count { lines.append(bytes[start...]) }
        return lines
    }

    static func address(_ text: String, after prefix: String) -> String? {
        guard text.uppercased().hasPrefix(prefix), let open = text.firstIndex(of: "<"), let close = text.firstIndex(of: ">") else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    static func batchSMTP(_ bytes: [UInt8], file: String) throws -> [Delivery] {
        var result: [Delivery] = []
        var current: Delivery?
        var inData = false
        for line in lines(bytes) {
            if inData {
                if line.elementsEqual([UInt8(ascii: ".")]) {
                    if let done = current { result.append(done) }
                    current = nil
                    inData = false
                } else {
                    let unstuffed = line.first == UInt8(ascii: ".") ? line.dropFirst() : line
                    current?.message += unstuffed + [13, 10]
                }
                continue
            }
            let text = String(decoding: line, as: UTF8.self)
            if let sender = address(text, after: "MAIL FROM:") {
                current = Delivery(sender: sender, recipients: [], message: [], file: file)
            } else if let recipient = address(text, after: "RCPT TO:") {
                current?.recipients.append(recipient)
            } else if text.uppercased() == "DATA" {
                inData = true
            } else if !text.isEmpty {
                throw Malformed(description: "\(file): not Batch SMTP: \(text)")
            }
        }
        guard current == nil, !inData else { throw Malformed(description: "\(file): Batch SMTP ends inside a transaction") }
        return result
    }

    static func envelopeFirst(_ bytes: [UInt8], file: String) throws -> Delivery {
        guard let newline = bytes.firstIndex(of: 10) else { throw Malformed(description: "\(file): no envelope line") }
        let envelope = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ").map { word in
            String(word.dropFirst().dropLast())
        }
        guard let sender = envelope.first, envelope.count >= 2 else { throw Malformed(description: "\(file): bad envelope line") }
        // The delivery agent got LF line ends: give the message its CRLF back.
        var message: [UInt8] = []
        let body = bytes[(newline + 1)...]
        message.reserveCapacity(body.count + body.count / 20)
        var previous: UInt8 = 0
        for byte in body {
            if byte == 10 && previous != 13 { message.append(13) }
            message.append(byte)
            previous = byte
        }
        return Delivery(sender: sender, recipients: Array(envelope.dropFirst()), message: message, file: file)
    }
}

/// The header fields a relay adds on the way, which are not part of what poold sent.
enum TraceHeaders {
    static let always: Set<String> = ["received", "return-path", "delivered-to", "x-original-to", "envelope-to"]
    static let ifAdded: Set<String> = ["message-id", "date"]

    /// `message` without the trace fields; Message-ID and Date go too when `original`
    /// (the job's message) has none. The body and every other field stay byte for byte.
    static func strip(_ message: [UInt8], original: [UInt8]?) -> [UInt8] {
        let originalNames = original.map { Set(fields(of: $0).fields.map(\.name)) } ?? []
        let drop = always.union(ifAdded.subtracting(originalNames))
        let (parsed, bodyStart) = fields(of: message)
        var result: [UInt8] = []
        result.reserveCapacity(message.count)
        for field in parsed where !drop.contains(field.name) { result += message[field.range] }
        result += message[bodyStart...]
        return result
    }

    /// The header fields (lower-cased name, byte range with continuation lines and CRLF)
    /// and where the header's end (the empty line) starts.
    static func fields(of message: [UInt8]) -> (fields: [(name: String, range: Range<Int>)], bodyStart: Int) {
        var fields: [(name: String, range: Range<Int>)] = []
        var i = 0
        while i < message.count {
            let end = (message[i...].firstIndex(of: 10) ?? message.count - 1) + 1
            let line = message[i..<end]
            if line.first == 13 || line.first == 10 { return (fields, i) }  // the empty line
            if (line.first == 32 || line.first == 9), let last = fields.indices.last {
                fields[last].range = fields[last].range.lowerBound..<end
            } else {
                let name = String(decoding: line.prefix { $0 != UInt8(ascii: ":") }, as: UTF8.self).lowercased()
                fields.append((name, i..<end))
            }
            i = end
        }
        return (fields, message.count)
    }
}

/// Runs `body` with this process's stderr (where poold's `Log` writes) going to a file;
/// returns what was written.
func capturingDaemonLog(in directory: String, _ body: () throws -> Void) rethrows -> String {
    let path = directory + "/poold-stderr.log"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    let saved = dup(2)
    dup2(fd, 2)
    close(fd)
    defer {
        dup2(saved, 2)
        close(saved)
    }
    try body()
    return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}
