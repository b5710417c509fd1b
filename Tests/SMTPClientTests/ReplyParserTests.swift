import XCTest
@testable import SMTPClient

/// Server dialogues, byte for byte, and the replies the parser must cut out of them.
final class ReplyParserTests: XCTestCase {
    func parse(_ text: String, chunk: Int = 1000) throws -> [SMTPReply] {
        var parser = ReplyParser()
        var replies: [SMTPReply] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            parser.feed(Array(bytes[i..<min(i + chunk, bytes.count)]))
            while let r = try parser.next() { replies.append(r) }
            i += chunk
        }
        return replies
    }

    func testTable() throws {
        let table: [(String, [SMTPReply])] = [
            ("250 OK\r\n", [SMTPReply(250, "OK")]),
            ("250 \r\n", [SMTPReply(code: 250, lines: [""])]),                      // smtp-sink's empty text
            ("250\r\n", [SMTPReply(code: 250, lines: [""])]),                       // bare code
            ("220 hi\n", [SMTPReply(220, "hi")]),                                   // LF only
            ("250-a\r\n250-PIPELINING\r\n250 SIZE 100\r\n", [SMTPReply(code: 250, lines: ["a", "PIPELINING", "SIZE 100"])]),
            ("250 ok\r\n250 ok\r\n354 go\r\n", [SMTPReply(250, "ok"), SMTPReply(250, "ok"), SMTPReply(354, "go")]),
            ("452 4.5.3 too many\r\n", [SMTPReply(452, "4.5.3 too many")]),
            ("421 4.3.2 bye\r\n", [SMTPReply(421, "4.3.2 bye")]),
            ("250-a\r\n", []),                                                      // incomplete
        ]
        for (text, expected) in table {
            XCTAssertEqual(try parse(text), expected, text.debugDescription)
            XCTAssertEqual(try parse(text, chunk: 1), expected, "byte by byte: " + text.debugDescription)
        }
    }

    func testRepeatedTextsComeBackUnchangedAmongOthers() throws {
        // The parser reuses the lines of recent one-line replies: the same text must still
        // be itself, and a different text of the same length must not pass for it.
        var text = ""
        var expected: [SMTPReply] = []
        for i in 0..<12 {
            for reply in [SMTPReply(250, "2.1.0 Ok"), SMTPReply(250, "2.1.5 Ok"), SMTPReply(354, "End data"),
                          SMTPReply(250, "2.0.0 Ok: queued as \(i % 3)"), SMTPReply(250, ""), SMTPReply(550, "5.1.1 no\u{7}")] {
                text += "\(reply.code) \(reply.lines[0])\r\n"
                expected.append(reply.lines[0].contains("\u{7}") ? SMTPReply(550, "5.1.1 no?") : reply)
            }
        }
        XCTAssertEqual(try parse(text), expected)
        XCTAssertEqual(try parse(text, chunk: 7), expected)
    }

    func testEnhancedCodeIsReadAsTheStringRulesSay() {
        for text in ["2.0.0 Ok", "5.1.1 no such user", "4.7.0", "  2.1.5 ok", "5.01.1 x", "2.0.0, ok", "3.0.0 x", "5.1 x", "5.1.1234 x", "no", ""] {
            let reply = SMTPReply(250, text)
            XCTAssertEqual(reply.enhancedCode, reply.enhancedStatus.flatMap { EnhancedStatus($0) }, text)
        }
    }

    func testGarbageIsRefused() {
        for text in ["HELLO THIS IS NOT SMTP\r\n", "25\r\n", "250xok\r\n", "650 nope\r\n", "250-a\r\n251 b\r\n"] {
            XCTAssertThrowsError(try parse(text), text.debugDescription)
        }
        XCTAssertThrowsError(try parse(String(repeating: "2", count: 5000)))
    }

    func testEnhancedStatus() {
        XCTAssertEqual(SMTPReply(550, "5.1.1 no such user").enhancedStatus, "5.1.1")
        XCTAssertNil(SMTPReply(550, "no such user").enhancedStatus)
    }

    func testCapabilities() {
        let ehlo = SMTPReply(code: 250, lines: ["relay.example", "PIPELINING", "SIZE 10240000", "8BITMIME", "CHUNKING", "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES"])
        let c = Capabilities(ehlo: ehlo)
        XCTAssertTrue(c.pipelining)
        XCTAssertEqual(c.size, 10_240_000)
        XCTAssertTrue(c.eightBitMIME && c.chunking && c.enhancedStatusCodes)
        XCTAssertEqual(c.authMechanisms, ["PLAIN", "LOGIN"])
        XCTAssertFalse(Capabilities(ehlo: SMTPReply(code: 250, lines: ["x"])).pipelining)
    }
}
