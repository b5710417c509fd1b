// The renderer against the contract, byte for byte: substitution in the sender, headers and
// body (values inserted as they are, never scanned again; unknown `&…;` untouched), the
// system fields, conditional blocks with their grammar, and the wire form (a rendered line
// that starts with a dot is stuffed; sizes agree with the bytes streamed).

import Foundation
import XCTest
@testable import SpoolKit

enum MergeRendering {
    static let now = Date(timeIntervalSince1970: 1_763_900_000)
    static let zone = TimeZone(secondsFromGMT: 3600)!
    static let nowText = "Sun, 23 Nov 2025 13:13:20 +0100"

    /// Every row of `text` rendered, as the daemon would: one reader, one renderer, one buffer.
    static func render(_ text: String, stem: String = "A123", helo: String = "mx.example.org",
                       clock: @escaping @Sendable () -> Date = { MergeRendering.now }) throws -> [RenderedMessage] {
        let bytes = Array(text.utf8)
        let job = try MergeReader.parse(bytes)
        let reader = MergeRowReader(bytes: bytes, job: job)
        var renderer = MergeRenderer(job: job, stem: stem, heloName: helo, clock: clock, timeZone: zone)
        var row = MergeRow()
        var message = RenderedMessage()
        var out: [RenderedMessage] = []
        while try reader.next(into: &row) {
            try renderer.render(row, into: &message)
            out.append(message)
        }
        return out
    }

    static func text(_ message: RenderedMessage) -> String { String(decoding: message.bytes, as: UTF8.self) }
}

final class MergeRenderTests: XCTestCase {
    func testTheContractsExampleArrivesByteForByte() throws {
        let job = """
            MERGE
            MAIL FROM:<news-bounces+&*VERP;@lists.example.org> BODY=8BITMIME
            TABLE
            EMAIL,NAME,BALANCE
            alice@example.com,"Smith, Alice",12.50
            bob@example.net,Bob,0
            .
            DATA
            From: News <news@lists.example.org>
            To: &NAME; <&*TO;>
            Subject: Your balance, &NAME;
            Date: &*DATE;
            Message-ID: <&*MSGID;>

            Dear &NAME;,
            ..BB &BALANCE > 0
            you owe &BALANCE;.
            ..ELSE
            nothing is due.
            ..EB
            .

            """
        let messages = try MergeRendering.render(job, stem: "A000123")
        XCTAssertEqual(messages.map(\.sender), ["news-bounces+alice=example.com@lists.example.org", "news-bounces+bob=example.net@lists.example.org"])
        XCTAssertEqual(messages.map(\.recipient), ["alice@example.com", "bob@example.net"])
        XCTAssertEqual(messages.map(\.rowNumber), [1, 2])
        XCTAssertEqual(MergeRendering.text(messages[0]),
                       "From: News <news@lists.example.org>\r\nTo: Smith, Alice <alice@example.com>\r\nSubject: Your balance, Smith, Alice\r\n"
                       + "Date: \(MergeRendering.nowText)\r\nMessage-ID: <A000123.1@mx.example.org>\r\n\r\nDear Smith, Alice,\r\nyou owe 12.50.\r\n")
        XCTAssertEqual(MergeRendering.text(messages[1]),
                       "From: News <news@lists.example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: Your balance, Bob\r\n"
                       + "Date: \(MergeRendering.nowText)\r\nMessage-ID: <A000123.2@mx.example.org>\r\n\r\nDear Bob,\r\nnothing is due.\r\n")
        for m in messages {
            XCTAssertEqual(m.wireBytes, m.bytes, "no line starts with a dot: the wire form is the message")
            XCTAssertEqual(m.wireSize, Int64(m.bytes.count))
            XCTAssertEqual(m.unstuffedSize, Int64(m.bytes.count))
        }
    }

    /// One line of template against one row: what the line becomes.
    func testSubstitution() throws {
        let table = "email,Name,NOTE,EMPTY\na@example.com,\"Zoë \"\"Z\"\"\",&NAME; &amp; &*TO;,\n"
        let cases: [(String, String)] = [
            ("Hello &NAME;!", "Hello Zoë \"Z\"!"),
            ("&name; &NaMe;", "Zoë \"Z\" Zoë \"Z\""),
            ("note: &NOTE;", "note: &NAME; &amp; &*TO;"),            // a value is never scanned again
            ("&amp; &nbsp; &lt;b&gt; &NOPE; &*NOPE;", "&amp; &nbsp; &lt;b&gt; &NOPE; &*NOPE;"),
            ("&&NAME;; & NAME; &NAME &NAME ;", "&Zoë \"Z\"; & NAME; &NAME &NAME ;"),
            ("[&EMPTY;]", "[]"),
            ("&EMAIL; &*to; &*VERP; &*ROW; &*msgid;", "a@example.com a@example.com a=example.com 1 A123.1@mx.example.org"),
            ("Date: &*DATE;", "Date: \(MergeRendering.nowText)"),
            ("", ""),
        ]
        for (line, expected) in cases {
            let message = try XCTUnwrap(MergeRendering.render(mergeJobText(table: table, template: "\(line)\n")).first)
            XCTAssertEqual(MergeRendering.text(message), expected + "\r\n", line)
        }
    }

    func testAValueThatPutsADotAtTheStartOfALineIsStuffedOnTheWire() throws {
        let table = "EMAIL,LEAD\na@example.com,.hidden\nb@example.com,plain\n"
        let template = "Subject: x\n\n&LEAD; text\n.literal dot\n..\nend\n"
        let messages = try MergeRendering.render(mergeJobText(table: table, template: template))
        XCTAssertEqual(MergeRendering.text(messages[0]), "Subject: x\r\n\r\n.hidden text\r\n.literal dot\r\n..\r\nend\r\n")
        XCTAssertEqual(String(decoding: messages[0].wireBytes, as: UTF8.self), "Subject: x\r\n\r\n..hidden text\r\n..literal dot\r\n...\r\nend\r\n")
        XCTAssertEqual(messages[0].wireSize, Int64(messages[0].bytes.count + 3))
        XCTAssertEqual(messages[0].unstuffedSize, Int64(messages[0].bytes.count))
        XCTAssertEqual(String(decoding: messages[1].wireBytes, as: UTF8.self), "Subject: x\r\n\r\nplain text\r\n..literal dot\r\n...\r\nend\r\n")
        var pieces: [[UInt8]] = []
        try messages[0].stream { pieces.append(Array($0)) }
        XCTAssertEqual(pieces.flatMap { $0 }, messages[0].wireBytes)
        XCTAssertEqual(Int64(pieces.reduce(0) { $0 + $1.count }), messages[0].wireSize)
        // A message whose first line starts with a dot.
        let first = try XCTUnwrap(MergeRendering.render(mergeJobText(table: table, template: "&LEAD;\n")).first)
        XCTAssertEqual(first.wireBytes, Array("..hidden\r\n".utf8))
        var count = 0
        try MergeRendering.render(mergeJobText(table: table, template: "no dots\nhere\n"))[0].stream { _ in count += 1 }
        XCTAssertEqual(count, 1, "without dots the message goes in one piece")
    }

    /// Conditions against one row: `.BB cond` / T / `.ELSE` / F / `.EB`.
    func testConditions() throws {
        let table = "EMAIL,NAME,BALANCE,COUNT,CITY,CODE,NEG,ZERO,BIG,DEC,TOWN\n"
            + "a@x.org,Alice,12.50,9,,010,-3,0,100000000000000000000,0.10,ZÜRICH\n"
        let cases: [(String, Bool)] = [
            ("&BALANCE > 0", true), ("&BALANCE = 12.5", true), ("&BALANCE >= 12.500", true), ("&BALANCE = '12.5'", true),
            ("&COUNT < 10", true), ("&COUNT < '10'", true), ("&COUNT > 10", false),          // numbers, not text ("9" > "10")
            ("&CODE = 10", true), ("&CODE = 'x10'", false), ("&NAME = 12", false),
            ("&NEG < -2.5", true), ("&NEG > -1", false), ("&ZERO = -0", true), ("&ZERO = 0.000", true),
            ("&BIG > 99999999999999999999", true), ("&DEC = 0.1", true), ("&DEC < 0.11", true), ("&DEC > 0.09", true),
            ("&NAME = 'alice'", true), ("&NAME = \"ALICE\"", true), ("&NAME <> \"ALICE\"", false), ("&NAME ^= 'bob'", true),
            ("&NAME < 'bob'", true), ("&NAME >= 'ALICE'", true), ("&NAME > 'alice'", false), ("&NAME <= 'alicf'", true),
            ("&NAME = 'Alice '", false), ("&TOWN = 'zürich'", true), ("&TOWN <> 'zurich'", true),
            ("&CITY", false), ("&NAME", true), ("NOT &CITY", true), ("not not &NAME", true), ("&CITY = ''", true),
            ("&CITY OR &NAME AND &BALANCE > 100", false),                  // AND binds tighter
            ("(&CITY OR &NAME) AND &BALANCE > 100", false),
            ("(&CITY OR &NAME) AND NOT &BALANCE > 100", true),
            ("&NAME AND &BALANCE > 100 OR &COUNT = 9", true),
            ("NOT (&CITY OR &NAME)", false), ("((&NAME))", true),
            ("&BALANCE = &COUNT", false), ("&COUNT = &COUNT", true), ("&COUNT<&BALANCE", true),
            ("&*ROW = 1", true), ("&*TO = 'A@X.ORG'", true), ("&email; = &*to", true), ("&*VERP = 'a=x.org'", true),
        ]
        for (condition, expected) in cases {
            let template = ".BB \(condition)\nT\n.ELSE\nF\n.EB\n"
            let message = try XCTUnwrap(MergeRendering.render(mergeJobText(table: table, template: template)).first)
            XCTAssertEqual(MergeRendering.text(message), expected ? "T\r\n" : "F\r\n", condition)
        }
    }

    func testNestedBlocksCommentsAndDirectivesInAnyCaseNeverReachTheMessage() throws {
        let table = "EMAIL,KIND,LEVEL\na@x.org,gold,3\nb@x.org,gold,1\nc@x.org,basic,5\nd@x.org,,0\n"
        let template = """
            Hi
            .* a comment: not sent, even with &KIND; in it
            .bb &KIND = 'gold'
            gold
            .BB &LEVEL >= 2
            gold, level &LEVEL;
            .Else
            gold, low
            .eB
            .ELSE
            .BB &KIND
            other: &KIND;
            .ELSE
            nothing
            .EB
            .EB
            Bye

            """
        let texts = try MergeRendering.render(mergeJobText(table: table, template: template)).map(MergeRendering.text)
        XCTAssertEqual(texts, [
            "Hi\r\ngold\r\ngold, level 3\r\nBye\r\n",
            "Hi\r\ngold\r\ngold, low\r\nBye\r\n",
            "Hi\r\nother: basic\r\nBye\r\n",
            "Hi\r\nnothing\r\nBye\r\n",
        ])
    }

    func testMergeParametersGiveTheRowNumbersStemAndHeloOfTheWholeJob() throws {
        let text = mergeJobText(merge: "MERGE STEM=B777 FIRSTROW=1001 HELO=primary.example.org SHARE=2/2",
                                sender: "bounce+&*ROW;@example.org",
                                table: "EMAIL\na@example.com\nb@example.com\n", template: "&*ROW; <&*MSGID;>\n")
        let messages = try MergeRendering.render(text, stem: "C5", helo: "local.example.net")
        XCTAssertEqual(messages.map(MergeRendering.text), ["1001 <B777.1001@primary.example.org>\r\n", "1002 <B777.1002@primary.example.org>\r\n"])
        XCTAssertEqual(messages.map(\.sender), ["bounce+1001@example.org", "bounce+1002@example.org"])
        let local = try MergeRendering.render(mergeJobText(template: "<&*MSGID;>\n"), stem: "C5", helo: "local.example.net")
        XCTAssertEqual(local.map(MergeRendering.text), ["<C5.1@local.example.net>\r\n"])
        let job = try MergeReader.parse(Array(mergeJobText(template: "<&*MSGID;>\n").utf8))
        var renderer = MergeRenderer(job: job, name: try XCTUnwrap(JobName("-00042.MAIL")), heloName: "h.example")
        var row = MergeRow()
        XCTAssertNil(Array("a@example.com,A".utf8).withUnsafeBytes { row.parse($0, maxFields: 2) })
        row.number = 1
        var message = RenderedMessage()
        try renderer.render(row, into: &message)
        XCTAssertEqual(MergeRendering.text(message), "<-00042.1@h.example>\r\n", "the stem is the file name without .MAIL")
    }

    func testTheNullSenderAndAFixedSender() throws {
        XCTAssertEqual(try MergeRendering.render(mergeJobText(sender: "")).map(\.sender), [""])
        XCTAssertEqual(try MergeRendering.render(mergeJobText(sender: "Owner@Example.org")).map(\.sender), ["Owner@Example.org"])
        XCTAssertEqual(try MergeRendering.render(mergeJobText(sender: "x-&NAME;-&amp;@example.org")).map(\.sender), ["x-A-&amp;@example.org"])
    }

    func testTheDateFollowsTheClockAndIsFormattedPerRFC5322() throws {
        final class Ticks: @unchecked Sendable { var seconds = 1_763_900_000.0 }
        let ticks = Ticks()
        let messages = try MergeRendering.render(mergeJobText(table: "EMAIL\na@x.org\nb@x.org\nc@x.org\n", template: "&*DATE;\n"), clock: {
            defer { ticks.seconds += 0.6 }
            return Date(timeIntervalSince1970: ticks.seconds)
        })
        XCTAssertEqual(messages.map(MergeRendering.text), ["Sun, 23 Nov 2025 13:13:20 +0100\r\n", "Sun, 23 Nov 2025 13:13:20 +0100\r\n",
                                                           "Sun, 23 Nov 2025 13:13:21 +0100\r\n"])
        let cases: [(Int64, Int, String)] = [
            (0, 0, "Thu, 1 Jan 1970 00:00:00 +0000"),
            (951_782_399, -19_800, "Mon, 28 Feb 2000 18:29:59 -0530"),
            (951_868_800, 0, "Wed, 1 Mar 2000 00:00:00 +0000"),
            (951_782_400, 0, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (-1, 0, "Wed, 31 Dec 1969 23:59:59 +0000"),
            (4_102_444_800, 20_700, "Fri, 1 Jan 2100 05:45:00 +0545"),
        ]
        for (seconds, offset, expected) in cases {
            XCTAssertEqual(String(decoding: MessageDate.format(seconds: seconds, utcOffset: offset), as: UTF8.self), expected)
        }
    }

    func testARowWhoseAddressOrSenderIsNoLongerValidFailsAloneAndNothingIsRendered() throws {
        let job = try MergeReader.parse(Array(mergeJobText(sender: "&NAME;@example.org").utf8))
        var renderer = MergeRenderer(job: job, stem: "A1", heloName: "h.example")
        var message = RenderedMessage()
        var row = MergeRow()
        row.index = 0
        row.line = 5
        for (line, fragment) in [("bad address,A", "address <bad address>: space in address"),
                                 ("a@example.com,x y", "the rendered sender <x y@example.org> is not an address: space in address"),
                                 ("a@example.com", "1 fields, the header has 2")] {
            XCTAssertNil(Array(line.utf8).withUnsafeBytes { row.parse($0, maxFields: 10) })
            XCTAssertThrowsError(try renderer.render(row, into: &message)) { error in
                XCTAssertEqual((error as? MergeError)?.line, 5)
                XCTAssertEqual((error as? MergeError)?.row, 1)
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    func testTheBuffersAreReusedFromRowToRow() throws {
        let table = "EMAIL,N\n" + (1...200).map { "r\($0)@example.com,\(String(repeating: "n", count: $0 % 7))" }.joined(separator: "\n") + "\n"
        let bytes = Array(mergeJobText(table: table, template: String(repeating: "line &N; of text\n", count: 50)).utf8)
        let job = try MergeReader.parse(bytes)
        let reader = MergeRowReader(bytes: bytes, job: job)
        var renderer = MergeRenderer(job: job, stem: "A1", heloName: "h.example")
        var row = MergeRow()
        var message = RenderedMessage()
        var capacity = 0
        var grew = 0
        while try reader.next(into: &row) {
            try renderer.render(row, into: &message)
            if message.bytes.capacity != capacity { grew += 1; capacity = message.bytes.capacity }
        }
        XCTAssertLessThan(grew, 10, "the message buffer grows a few times at most, not once per row")
    }
}
