import XCTest
@testable import SpoolKit

final class BSMTPReaderTests: XCTestCase {
    func parse(_ text: String) throws -> BSMTPJob { try BSMTPReader.parse(Array(text.utf8)) }

    func testAListPostingWithHeloQuitAndLFLines() throws {
        let job = try parse("HELO list.example.org\nMAIL FROM:<owner-l@example.org> BODY=8BITMIME\nRCPT TO:<a@example.com>\nRCPT TO:<b@example.net> NOTIFY=FAILURE\nDATA\nSubject: x\n\n..starts with a dot\n.\nQUIT\n")
        XCTAssertEqual(job.transactions.count, 1)
        let tx = job.transactions[0]
        XCTAssertEqual(tx.sender, "owner-l@example.org")
        XCTAssertEqual(tx.senderParameters, ["BODY=8BITMIME"])
        XCTAssertEqual(tx.recipients, [Recipient(address: "a@example.com"), Recipient(address: "b@example.net", parameters: ["NOTIFY=FAILURE"])])
        // "Subject: x", "", "..starts with a dot" with CRLF on the wire
        XCTAssertEqual(tx.wireSize, Int64("Subject: x\r\n\r\n..starts with a dot\r\n".utf8.count))
    }

    func testSeveralTransactionsCRLFAndNullSender() throws {
        let job = try parse("MAIL FROM:<>\r\nRCPT TO:<a@x.org>\r\nDATA\r\nbody\r\n.\r\nmail from:<s@x.org>\r\nrcpt to:<postmaster>\r\ndata\r\n\r\n.\r\n")
        XCTAssertEqual(job.transactions.map(\.sender), ["", "s@x.org"])
        XCTAssertTrue(job.transactions[0].isNullSender)
        XCTAssertEqual(job.transactions[1].recipients.map(\.address), ["postmaster"])
        XCTAssertEqual(job.transactions[1].wireSize, 2)
    }

    func testMessageStreamsExactlyAsOnTheWire() throws {
        let text = "MAIL FROM:<s@x.org>\nRCPT TO:<a@x.org>\nDATA\nline one\r\n..dot\nbare\rcr\n\n.\n"
        let dir = NSTemporaryDirectory() + "bsmtp-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/A1.MAIL"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let job = try BSMTPReader.read(path: path)
        var wire: [UInt8] = []
        try MessageReader(path: path, transaction: job.transactions[0]).stream { wire += $0 }
        XCTAssertEqual(String(decoding: wire, as: UTF8.self), "line one\r\n..dot\r\nbare\rcr\r\n\r\n")
        XCTAssertEqual(Int64(wire.count), job.transactions[0].wireSize)
        // A small job is read once and sent from memory: the same bytes.
        let (loaded, bytes) = try BSMTPReader.load(path: path)
        XCTAssertNotNil(bytes)
        var fromMemory: [UInt8] = []
        try MessageReader(path: path, transaction: loaded.transactions[0], bytes: bytes).stream { fromMemory += $0 }
        XCTAssertEqual(fromMemory, wire)
    }

    /// Every kind of malformed job, with the line the error must name.
    func testBadJobsNameTheLineAndTheFault() {
        let long = String(repeating: "a", count: 3000)
        let table: [(String, String, Int, String)] = [
            ("empty", "", 1, "empty file"),
            ("blank lines only", "\n\n\n", 3, "no transaction"),
            ("binary", "\u{7f}ELF\u{01}\u{02}\n", 1, "unknown command"),
            ("NUL byte in the body", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nab\u{0}c\n.\n", 4, "NUL byte"),
            ("RCPT before MAIL", "RCPT TO:<d@e.f>\n", 1, "RCPT TO before MAIL FROM"),
            ("DATA before MAIL", "DATA\n", 1, "DATA before MAIL FROM"),
            ("no DATA", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\n", 2, "no DATA"),
            ("DATA without RCPT", "MAIL FROM:<a@b.c>\nDATA\n", 2, "DATA without any RCPT TO"),
            ("no final dot", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nhello\n", 4, "no final '.'"),
            ("truncated mid-line", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e", 2, "middle of a line"),
            ("space in address", "MAIL FROM:<a b@c.d>\n", 1, "space in address"),
            ("CR inside address", "MAIL FROM:<a\rb@c.d>\n", 1, "CR"),
            ("missing brackets", "MAIL FROM:a@b.c\n", 1, "<like@this>"),
            ("unclosed bracket", "MAIL FROM:<a@b.c\n", 1, "no closing"),
            ("no domain", "MAIL FROM:<a@b.c>\nRCPT TO:<bob>\n", 2, "no @domain"),
            ("empty domain", "MAIL FROM:<a@>\n", 1, "empty domain"),
            ("empty recipient", "MAIL FROM:<a@b.c>\nRCPT TO:<>\n", 2, "empty address"),
            ("over-long envelope line", "MAIL FROM:<a@b.c>\nRCPT TO:<\(long)@x.org>\n", 2, "longer than"),
            ("over-long address", "MAIL FROM:<\(String(repeating: "a", count: 300))@b.c>\n", 1, "longer than 254"),
            ("unknown command", "MAIL FROM:<a@b.c>\nVRFY bob\n", 2, "unknown command 'VRFY bob'"),
            ("MAIL inside a transaction", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nMAIL FROM:<a@b.c>\n", 3, "inside a transaction"),
            ("text after QUIT", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nx\n.\nQUIT\nMAIL FROM:<a@b.c>\n", 7, "after QUIT"),
            ("HELO later", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nx\n.\nHELO x\n", 6, "first line"),
            ("bad parameter", "MAIL FROM:<a@b.c> =x\n", 1, "malformed parameter"),
            ("text glued to the address", "MAIL FROM:<a@b.c>SIZE=1\n", 1, "right after"),
            ("DATA with an argument", "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA now\n", 3, "takes no argument"),
        ]
        XCTAssertGreaterThanOrEqual(table.count, 20)
        for (what, text, line, fragment) in table {
            do {
                _ = try parse(text)
                XCTFail("\(what): accepted")
            } catch let error as BSMTPError {
                XCTAssertEqual(error.line, line, "\(what): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "\(what): '\(error.message)' lacks '\(fragment)'")
            } catch {
                XCTFail("\(what): \(error)")
            }
        }
    }

    func testJobNames() {
        let a = JobName("A00012345.MAIL")!
        XCTAssertEqual(a.pool, Pool("A"))
        XCTAssertEqual(a.spoolID, 12345)
        let d = JobName("00012345.MAIL")!
        XCTAssertEqual(d.pool, .default)
        XCTAssertEqual(d.id, "00012345")
        XCTAssertEqual(d.spoolID, 12345)
        XCTAssertNil(JobName("-abc.MAIL")!.spoolID)
        XCTAssertEqual(JobName("-abc.MAIL")!.pool, .default)
        XCTAssertEqual(JobName("x17.MAIL")!.pool, .default)
        XCTAssertNil(JobName("x17.MAIL")!.spoolID)
        XCTAssertNil(JobName("A1.mail"))
        XCTAssertNil(JobName(".tmp.1.A1.MAIL.part"))
        XCTAssertNil(JobName(".MAIL"))
    }
}
