// The merge checker against the contract (MISSION.md, "Mail-merge jobs"): the job forms it
// accepts, RFC 4180 quoting, the MERGE parameters, and every invalid form with the line
// (and row) its error must name.

import XCTest
@testable import SpoolKit

/// A small job around a table (written as in the file) and a template (written as it is
/// once dot-stuffing is undone: `.BB` here is `..BB` in the file), LF line ends: MERGE is
/// line 1, MAIL FROM 2, TABLE 3, the header 4, rows from 5; DATA follows the table's dot.
func mergeJobText(merge: String = "MERGE", sender: String = "news@lists.example.org",
                  table: String = "EMAIL,NAME\na@example.com,A\n", template: String = "Hello &NAME;\n") -> String {
    let stuffed = template.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\n")
    return "\(merge)\nMAIL FROM:<\(sender)>\nTABLE\n\(table).\nDATA\n\(stuffed).\n"
}

final class MergeReaderTests: XCTestCase {
    func parse(_ text: String) throws -> MergeJob { try MergeReader.parse(Array(text.utf8)) }

    func rows(_ text: String) throws -> [[String]] {
        let bytes = Array(text.utf8)
        let job = try MergeReader.parse(bytes)
        let reader = MergeRowReader(bytes: bytes, job: job)
        var row = MergeRow()
        var out: [[String]] = []
        while try reader.next(into: &row) { out.append((0..<row.fieldCount).map { row.text($0) }) }
        return out
    }

    func testTheContractsExampleWithHeloQuitCRLFAndBlankLinesBetweenCommands() throws {
        let text = "HELO lists.example.org\r\n\r\nMERGE\r\nMAIL FROM:<news-bounces+&*VERP;@lists.example.org> BODY=8BITMIME\r\n"
            + "TABLE\r\nEMAIL,NAME,BALANCE\r\nalice@example.com,\"Smith, Alice\",12.50\r\nbob@example.net,Bob,0\r\n.\r\n"
            + "DATA\r\nSubject: Your balance, &NAME;\r\n\r\nDear &NAME;,\r\n..BB &BALANCE > 0\r\nyou owe &BALANCE;.\r\n..ELSE\r\n"
            + "nothing is due.\r\n..EB\r\n.\r\n\r\nQUIT\r\n"
        let job = try parse(text)
        XCTAssertEqual(job.sender, "news-bounces+&*VERP;@lists.example.org")
        XCTAssertEqual(job.senderParameters, ["BODY=8BITMIME"])
        XCTAssertEqual(job.columns, ["EMAIL", "NAME", "BALANCE"])
        XCTAssertEqual(job.addressColumn, 0)
        XCTAssertEqual(job.rowCount, 2)
        XCTAssertEqual(job.headerLine, 6)
        XCTAssertEqual(job.templateLine, 11)
        XCTAssertEqual(job.rowNumbers, 1...2)
        XCTAssertEqual(job.template.blockCount, 1)
        XCTAssertEqual(job.template.messageLines, 5)
        XCTAssertEqual(job.parameters, MergeParameters())
        XCTAssertEqual(try rows(text), [["alice@example.com", "Smith, Alice", "12.50"], ["bob@example.net", "Bob", "0"]])
        let bytes = Array(text.utf8)
        XCTAssertEqual(String(decoding: bytes[Int(job.headerRange.lowerBound)..<Int(job.headerRange.upperBound)], as: UTF8.self), "EMAIL,NAME,BALANCE\r\n")
        XCTAssertTrue(String(decoding: bytes[Int(job.templateRange.lowerBound)..<Int(job.templateRange.upperBound)], as: UTF8.self)
            .hasPrefix("Subject: Your balance, &NAME;\r\n"))
    }

    func testCSVQuotingKeepsCommasQuotesSpacesUTF8AndEmptyValues() throws {
        let table = "EMAIL,NAME,NOTE\n"
            + "a@example.com,\"Smith, Alice\",\"He said \"\"hi\"\"\"\n"
            + "b@example.com,  Bob  ,\n"
            + "c@example.com,Zoë Ångström,\"\"\n"
            + "d@example.com,,\"&NAME; & &amp;\"\n"
            + "\"e@example.com\",\",\",\"\"\"\"\n"
            + "..dot@example.com,.lead,..\n"
        XCTAssertEqual(try rows(mergeJobText(table: table)), [
            ["a@example.com", "Smith, Alice", "He said \"hi\""],
            ["b@example.com", "  Bob  ", ""],
            ["c@example.com", "Zoë Ångström", ""],
            ["d@example.com", "", "&NAME; & &amp;"],
            ["e@example.com", ",", "\""],
            [".dot@example.com", ".lead", ".."],
        ])
    }

    func testTheAddressColumnIsEMAILOrStarTOInAnyCaseAndMayBeAnywhere() throws {
        XCTAssertEqual(try parse(mergeJobText(table: "name,email\nA,a@example.com\n")).addressColumn, 1)
        XCTAssertEqual(try parse(mergeJobText(table: "NAME,*to\nA,a@example.com\n")).addressColumn, 1)
        XCTAssertEqual(try parse(mergeJobText(table: "\"EMAIL\",\"first_name-2\"\na@example.com,A\n")).columns, ["EMAIL", "first_name-2"])
        XCTAssertEqual(try parse(mergeJobText(table: "EMAIL\npostmaster\n")).rowCount, 1, "postmaster needs no domain")
    }

    func testSenderForms() throws {
        XCTAssertTrue(try parse(mergeJobText(sender: "")).isNullSender)
        XCTAssertEqual(try parse(mergeJobText(sender: "&NAME;@example.org", table: "EMAIL,NAME\na@example.com,owner\n")).sender, "&NAME;@example.org")
        XCTAssertEqual(try parse(mergeJobText(sender: "b+&*ROW;-&unknown;@example.org")).sender, "b+&*ROW;-&unknown;@example.org")
    }

    func testMergeParameters() throws {
        let share = try parse(mergeJobText(merge: "MERGE stem=A000123 FIRSTROW=1001 HELO=mx1.example.org SHARE=2/3"))
        XCTAssertEqual(share.parameters, MergeParameters(stem: "A000123", firstRow: 1001, heloName: "mx1.example.org", share: .init(index: 2, count: 3)))
        XCTAssertEqual(share.rowNumbers, 1001...1001)
        XCTAssertEqual(share.parameters.lineArguments, " STEM=A000123 FIRSTROW=1001 HELO=mx1.example.org SHARE=2/3")
        XCTAssertEqual(try parse(mergeJobText(merge: "MERGE HELO=[192.0.2.1]")).parameters.heloName, "[192.0.2.1]")
        XCTAssertEqual(try parse(mergeJobText(merge: "merge\tFIRSTROW=7")).firstRowNumber, 7)
    }

    func testJobReaderTellsAMergeJobFromABSMTPJob() throws {
        let merge = Array(mergeJobText().utf8)
        let bsmtp = Array("HELO x\nMAIL FROM:<a@b.org>\nRCPT TO:<c@d.org>\nDATA\nMERGE\n.\n".utf8)
        XCTAssertTrue(JobReader.isMerge(merge))
        XCTAssertTrue(JobReader.isMerge(Array("\r\n  \nEHLO x\r\n\r\nmerge STEM=a\r\n".utf8)))
        XCTAssertFalse(JobReader.isMerge(bsmtp))
        XCTAssertFalse(JobReader.isMerge(Array("HELO x\nHELO y\nMERGE\n".utf8)))
        XCTAssertFalse(JobReader.isMerge(Array("MERGED\n".utf8)))
        XCTAssertFalse(JobReader.isMerge([]))
        guard case .merge(let job) = try JobReader.parse(merge) else { return XCTFail("not read as a merge job") }
        XCTAssertEqual(job.rowCount, 1)
        guard case .bsmtp(let plain, _) = try JobReader.parse(bsmtp) else { return XCTFail("not read as BSMTP") }
        XCTAssertEqual(plain.recipientCount, 1)
        XCTAssertThrowsError(try BSMTPReader.parse(merge), "BSMTPReader itself still refuses MERGE")

        let directory = NSTemporaryDirectory() + "merge-jobreader-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Small files are read once; a large one (past BSMTPReader.inMemoryLimit) streams.
        let large = Array(mergeJobText(table: "EMAIL,PAD\n" + String(repeating: "a@example.com,\(String(repeating: "x", count: 100))\n", count: 4000)).utf8)
        for (name, bytes) in [("A1.MAIL", merge), ("A2.MAIL", bsmtp), ("A3.MAIL", large)] {
            try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        guard case .merge = try JobReader.read(path: directory + "/A1.MAIL") else { return XCTFail("A1 is a merge job") }
        guard case .bsmtp(_, let kept) = try JobReader.read(path: directory + "/A2.MAIL") else { return XCTFail("A2 is BSMTP") }
        XCTAssertEqual(kept, bsmtp)
        guard case .merge(let big) = try JobReader.read(path: directory + "/A3.MAIL") else { return XCTFail("A3 is a merge job") }
        XCTAssertEqual(big.rowCount, 4000)
        XCTAssertThrowsError(try JobReader.read(path: directory + "/missing.MAIL")) { XCTAssertTrue($0 is SystemError) }
    }

    /// Every invalid form, with the line and row its error must name.
    func testInvalidJobsNameTheLineTheRowAndTheFault() {
        let cases: [(String, String, Int, Int?, String)] = [
            // the table
            ("empty row", mergeJobText(table: "EMAIL,NAME\na@example.com,A\n\nb@example.com,B\n"), 6, 2, "empty row"),
            ("too many fields", mergeJobText(table: "EMAIL,NAME\na@example.com,A\nb@example.com,B,C\n"), 6, 2, "3 fields, the header has 2"),
            ("too few fields", mergeJobText(table: "EMAIL,NAME\na@example.com\n"), 5, 1, "1 field, the header has 2"),
            ("no @domain", mergeJobText(table: "EMAIL,NAME\nnobody,A\n"), 5, 1, "invalid address <nobody> in column EMAIL: address has no @domain"),
            ("space in address", mergeJobText(table: "EMAIL,NAME\n\"a b@example.com\",A\n"), 5, 1, "space in address"),
            ("empty address", mergeJobText(table: "EMAIL,NAME\n,A\n"), 5, 1, "empty address"),
            ("angle bracket", mergeJobText(table: "EMAIL,NAME\na>b@example.com,A\n"), 5, 1, "angle bracket"),
            ("control character in address", mergeJobText(table: "EMAIL,NAME\na\u{7}@example.com,A\n"), 5, 1, "control character in address"),
            ("CR in a quoted value", mergeJobText(table: "EMAIL,NAME\na@example.com,\"A\rB\"\n"), 5, 1, "column NAME: a CR in a value"),
            ("CR in a plain value", mergeJobText(table: "EMAIL,NAME\na@example.com,A\rB\n"), 5, 1, "column NAME: a CR in a value"),
            ("NUL in a value", mergeJobText(table: "EMAIL,NAME\na@example.com,A\u{0}B\n"), 5, 1, "column NAME: a NUL byte in a value"),
            ("line break in a field", mergeJobText(table: "EMAIL,NAME\na@example.com,\"A\nB\"\n"), 5, 1, "not closed on its line"),
            ("quote in an unquoted field", mergeJobText(table: "EMAIL,NAME\na@example.com,O\"Brien\n"), 5, 1, "a quote inside an unquoted field"),
            ("text after a closing quote", mergeJobText(table: "EMAIL,NAME\na@example.com,\"A\" B\n"), 5, 1, "text after the closing quote"),
            ("no address column", mergeJobText(table: "MAIL,NAME\na@example.com,A\n"), 4, nil, "no EMAIL (or *TO) column"),
            ("bad column name", mergeJobText(table: "EMAIL,FIRST NAME\na@example.com,A\n"), 4, nil, "column name 'FIRST NAME' is not made of"),
            ("empty column name", mergeJobText(table: "EMAIL,,X\na@example.com,A,B\n"), 4, nil, "column name '' is not made of"),
            ("duplicate column", mergeJobText(table: "EMAIL,Name,NAME\na@example.com,A,B\n"), 4, nil, "column NAME appears twice"),
            ("two address columns", mergeJobText(table: "EMAIL,*TO\na@example.com,b@example.com\n"), 4, nil, "two address columns, EMAIL and *TO"),
            ("byte order mark", mergeJobText(table: "\u{FEFF}EMAIL,NAME\na@example.com,A\n"), 4, nil, "byte order mark"),
            ("empty header", mergeJobText(table: "\na@example.com\n"), 4, nil, "the header row is empty"),
            ("no header", mergeJobText(table: ""), 4, nil, "the table has no header row"),
            ("no rows", mergeJobText(table: "EMAIL,NAME\n"), 5, nil, "the table has no rows"),
            ("table line too long", mergeJobText(table: "EMAIL,NAME\na@example.com," + String(repeating: "x", count: MergeReader.maxLineLength + 10) + "\n"), 5, nil, "line longer than"),
            // the sender
            ("sender renders to no address", mergeJobText(sender: "&NAME;@example.org", table: "EMAIL,NAME\na@example.com,ok\nb@example.com,not ok\n"), 6, 2,
             "the sender renders as <not ok@example.org>, not an address: space in address"),
            ("sender renders empty", mergeJobText(sender: "&NAME;", table: "EMAIL,NAME\na@example.com,\n"), 5, 1, "empty address"),
            ("fixed sender invalid", mergeJobText(sender: "nobody"), 2, nil, "the sender <nobody>: address has no @domain"),
            ("space in the sender", mergeJobText(sender: "a b@example.org"), 2, nil, "the sender holds a space"),
            ("date in the sender", mergeJobText(sender: "x&*DATE;@example.org"), 2, nil, "the sender cannot hold &*DATE;"),
            ("message id in the sender", mergeJobText(sender: "x&*msgid;@example.org"), 2, nil, "the sender cannot hold &*MSGID;"),
            ("bad sender parameter", "MERGE\nMAIL FROM:<a@example.org> BODY=\nTABLE\nEMAIL\na@example.com\n.\nDATA\nx\n.\n", 2, nil, "empty value for parameter BODY"),
            ("sender without brackets", "MERGE\nMAIL FROM:a@example.org\n", 2, nil, "the sender must be written <like@this>"),
            // the template
            (".ELSE without .BB", mergeJobText(template: "a\n.ELSE\nb\n"), 9, nil, ".ELSE without a .BB"),
            (".EB without .BB", mergeJobText(template: ".bb &NAME\na\n.eb\n.EB\n"), 11, nil, ".EB without a .BB"),
            ("unclosed block", mergeJobText(template: "a\n.BB &NAME\nb\n.BB &NAME = 'x'\n.EB\n"), 9, nil, "the block begun by this .BB is not closed (no .EB before the end of the template)"),
            ("second .ELSE", mergeJobText(template: ".BB &NAME\na\n.ELSE\nb\n.ELSE\nc\n.EB\n"), 12, nil, "a second .ELSE in the block begun on line 8"),
            ("condition without a value", mergeJobText(template: ".BB &NAME >\nx\n.EB\n"), 8, nil, "the condition does not parse: the condition ends where a value was expected"),
            ("unknown field in a condition", mergeJobText(template: ".BB &NOPE = 1\nx\n.EB\n"), 8, nil, "unknown field &NOPE"),
            ("unquoted word", mergeJobText(template: ".BB &NAME = yes\nx\n.EB\n"), 8, nil, "unexpected word 'yes'"),
            ("unclosed parenthesis", mergeJobText(template: ".BB (&NAME OR &EMAIL\nx\n.EB\n"), 8, nil, "'(' is not closed"),
            ("dangling AND", mergeJobText(template: ".BB &NAME AND\nx\n.EB\n"), 8, nil, "the condition ends where a field, NOT or '(' was expected"),
            ("literal first", mergeJobText(template: ".BB 'x' = &NAME\nx\n.EB\n"), 8, nil, "a comparison starts with &FIELD"),
            ("unclosed quote", mergeJobText(template: ".BB &NAME = 'x\nx\n.EB\n"), 8, nil, "is not closed"),
            ("no condition", mergeJobText(template: ".BB\nx\n.EB\n"), 8, nil, "a .BB line without a condition"),
            ("text after .EB", mergeJobText(template: ".BB &NAME\nx\n.EB end\n"), 10, nil, "text after .EB"),
            ("nested too deep", mergeJobText(template: ".BB " + String(repeating: "(", count: 100) + "&NAME" + String(repeating: ")", count: 100) + "\n.EB\n"), 8, nil, "nested more than"),
            ("NUL in the template", mergeJobText(template: "a\u{0}b\n"), 8, nil, "NUL byte in the template"),
            // the file's structure
            ("table not ended", "MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\na@example.com\n", 5, nil, "the file ends inside the table begun on line 3"),
            ("template not ended", "MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\na@example.com\n.\nDATA\nHello\n", 8, nil, "the file ends inside the template begun on line 8"),
            ("truncated final dot", "MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\na@example.com\n.\nDATA\nHello\n.", 9, nil, "the file ends inside the template"),
            ("no template", "MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\na@example.com\n.\n", 6, nil, "the file ends before DATA"),
            ("two templates", mergeJobText() + "DATA\nx\n.\n", 10, nil, "text after the template's final '.'"),
            ("text after QUIT", mergeJobText() + "QUIT\nMERGE\n", 11, nil, "text after QUIT"),
            ("truncated QUIT", mergeJobText() + "QUIT", 10, nil, "the file ends in the middle of a line"),
            ("RCPT TO", "MERGE\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\n", 3, nil, "RCPT TO has no place in a merge job"),
            ("DATA before TABLE", "MERGE\nMAIL FROM:<a@example.org>\nDATA\n", 3, nil, "expected TABLE after MAIL FROM"),
            ("TABLE with an argument", "MERGE\nMAIL FROM:<a@example.org>\nTABLE x\n", 3, nil, "TABLE takes no argument"),
            ("no MAIL FROM", "MERGE\nTABLE\n", 2, nil, "expected MAIL FROM:<sender> after MERGE"),
            ("not a merge job", "MAIL FROM:<a@example.org>\n", 1, nil, "a merge job begins with a MERGE line"),
            ("empty file", "", 1, nil, "empty file"),
            ("MERGE only", "MERGE\n", 1, nil, "the file ends before MAIL FROM"),
            ("unknown parameter", mergeJobText(merge: "MERGE ROWS=5"), 1, nil, "unknown MERGE parameter ROWS="),
            ("FIRSTROW zero", mergeJobText(merge: "MERGE FIRSTROW=0"), 1, nil, "FIRSTROW=0 is not a row number"),
            ("FIRSTROW not a number", mergeJobText(merge: "MERGE FIRSTROW=+5"), 1, nil, "FIRSTROW=+5 is not a row number"),
            ("SHARE past its count", mergeJobText(merge: "MERGE STEM=A1 FIRSTROW=1 HELO=h.example SHARE=3/2"), 1, nil, "SHARE=3/2 is not i/n"),
            ("SHARE alone", mergeJobText(merge: "MERGE SHARE=1/2"), 1, nil, "SHARE= needs STEM=, FIRSTROW= and HELO="),
            ("bad HELO", mergeJobText(merge: "MERGE HELO=not_a_host!"), 1, nil, "HELO=: 'not_a_host!' is not a host name"),
            ("bad STEM", mergeJobText(merge: "MERGE STEM=a/b"), 1, nil, "STEM=a/b is not a job stem"),
            ("STEM twice", mergeJobText(merge: "MERGE STEM=a STEM=b"), 1, nil, "STEM= given twice"),
            ("parameter without value", mergeJobText(merge: "MERGE STEM="), 1, nil, "STEM= has no value"),
            ("not KEY=VALUE", mergeJobText(merge: "MERGE now"), 1, nil, "is not KEY=VALUE"),
        ]
        for (label, text, line, row, fragment) in cases {
            XCTAssertThrowsError(try parse(text), label) { error in
                guard let error = error as? MergeError else { return XCTFail("\(label): \(error) is not a MergeError") }
                XCTAssertEqual(error.line, line, "\(label): \(error)")
                XCTAssertEqual(error.row, row, "\(label): \(error)")
                XCTAssertTrue(error.message.contains(fragment), "\(label): '\(error.message)' does not say '\(fragment)'")
            }
        }
    }

    func testAnAddressThatIsNotUTF8IsRefusedEvenWhereReplacementWouldKeepItsLength() {
        // F1 80 80 is a truncated 4-byte sequence: decoding replaces it with one U+FFFD,
        // three bytes long, so only a real validation notices.
        for bad: [UInt8] in [[0xF1, 0x80, 0x80], [0xFF], [0xC3]] {
            let bytes = Array("MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\n".utf8) + bad + Array("@example.com\n.\nDATA\nx\n.\n".utf8)
            XCTAssertThrowsError(try MergeReader.parse(bytes)) { error in
                XCTAssertEqual(error as? MergeError, MergeError(line: 5, row: 1, "invalid address <\(String(decoding: bad, as: UTF8.self))@example.com> in column EMAIL: address is not valid UTF-8"))
            }
        }
        let utf8 = Array("MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\nzoë@exämple.com\n.\nDATA\nx\n.\n".utf8)
        XCTAssertEqual(try MergeReader.parse(utf8).rowCount, 1, "UTF-8 addresses (SMTPUTF8) pass as they do in BSMTP jobs")
    }

    func testTheFastAddressCheckNeverAcceptsWhatEnvelopeSyntaxRefuses() {
        let addresses = ["a@b.c", "a@b", "@b.c", "a@", "a@.b", "a@b.", "a b@c.d", "a<b@c.d", "a@b@c.d", "postmaster", "PostMaster",
                         "x\u{7f}@y.z", "\"q\"@x.y", "a@[1.2.3.4]", String(repeating: "a", count: 250) + "@b.cd", String(repeating: "a", count: 251) + "@b.cd",
                         "", "zoë@x.y", "a@b..c", ".a@b.c"]
        for address in addresses {
            let fast = Array(address.utf8).withUnsafeBytes { MergeAddress.isPlainlyValid($0) }
            let verdict = EnvelopeSyntax.problem(address: address, allowNull: false)
            if fast { XCTAssertNil(verdict, "fast check accepts <\(address)> but EnvelopeSyntax says \(verdict ?? "")") }
            XCTAssertEqual(Array(address.utf8).withUnsafeBytes { MergeAddress.problem($0, allowNull: false) }, verdict, address)
        }
    }

    func testTheFuzzersSeedsAreValidMergeJobs() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fuzz/corpus/merge").standardized.path
        let seeds = try FileManager.default.contentsOfDirectory(atPath: corpus)
        XCTAssertGreaterThanOrEqual(seeds.count, 3)
        for seed in seeds {
            let bytes = try FileSystem.readAll(corpus + "/" + seed)
            XCTAssertNoThrow(try MergeReader.parse(bytes), seed)
        }
    }

    func testTheErrorReadsAsTheWhyFileSaysIt() {
        XCTAssertEqual(MergeError(line: 7, row: 5, "3 fields, the header has 4").description, "line 7 (row 5): 3 fields, the header has 4")
        XCTAssertEqual(MergeError(line: 2, "the sender <x>: address has no @domain").description, "line 2: the sender <x>: address has no @domain")
    }

    func testATemplateLargerThanTheLimitIsRefusedOnTheLineThatCrossesIt() {
        let line = String(repeating: "x", count: 1023) + "\n"
        let lines = MergeTemplate.maxSize / 1023 + 1
        XCTAssertThrowsError(try parse(mergeJobText(template: String(repeating: line, count: lines)))) { error in
            XCTAssertEqual((error as? MergeError)?.line, 8 + lines - 1)
            XCTAssertTrue("\(error)".contains("larger than 10 MiB"), "\(error)")
        }
    }

    func testUnknownAmpersandNamesAndOrdinaryDotLinesAreNotErrors() throws {
        let job = try parse(mergeJobText(template: "&amp; &nbsp; &NOPE; &*NOPE; & ;\n.Bbq and .EBay\n.\n..dots\n.BBC news\n"))
        XCTAssertEqual(job.template.messageLines, 5)
        XCTAssertEqual(job.template.blockCount, 0)
        // In the file a directive is stuffed like any line that starts with a dot: `.BB`
        // unstuffed is the text "BB".
        XCTAssertEqual(try parse("MERGE\nMAIL FROM:<a@example.org>\nTABLE\nEMAIL\na@example.com\n.\nDATA\n.BB &EMAIL\n.\n").template.blockCount, 0)
    }
}
