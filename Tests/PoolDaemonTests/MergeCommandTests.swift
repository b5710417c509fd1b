// `poolctl submit --merge` and `poolctl preview` as an operator runs them: a spreadsheet
// export (byte order mark, CRLF, blank lines at the end) and a template become one checked
// job; preview prints a row exactly as the relay will receive it; a bad table or template
// is refused naming the CSV's or the template's own line, and leaves nothing behind.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SpoolKit

final class MergeCommandTests: XCTestCase {
    func poolctl(_ fixture: SpoolFixture, _ arguments: [String], stdin: [UInt8] = []) throws -> (status: Int32, out: [UInt8], err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestTools.binDirectory + "/poolctl")
        process.arguments = ["--config", fixture.configPath] + arguments
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        input.fileHandleForWriting.write(Data(stdin))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, Array(out), String(decoding: err, as: UTF8.self))
    }

    let template = Array("""
        From: News <news@lists.example.org>
        To: &NAME; <&*TO;>
        Message-ID: <&*MSGID;>

        .BB &BALANCE > 0 AND NOT &CITY = 'Paris'
        you owe &BALANCE;.
        .ELSE
        nothing is due.
        .EB
        .&NAME;

        """.utf8)

    func testSubmitMergeBuildsACheckedJobAndPreviewShowsARowAsTheRelayGetsIt() throws {
        let fixture = try SpoolFixture("merge-submit")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25", "HELO_NAME=mx.example.org"])
        let csv = fixture.directory + "/members.csv"
        try Data([0xEF, 0xBB, 0xBF] + Array("EMAIL,NAME,BALANCE,CITY\r\nalice@example.com,\"Smith, Alice\",12.50,Oslo\r\nbob@example.net,Bob,3,Paris\r\n.dot@example.org,.Dot,0,\r\n\r\n\r\n".utf8))
            .write(to: URL(fileURLWithPath: csv))
        let submitted = try poolctl(fixture, ["submit", "--merge", "--pool", "C", "--from", "bounces+&*VERP;@lists.example.org", "--table", csv], stdin: template)
        XCTAssertEqual(submitted.status, 0, submitted.err)
        let name = try XCTUnwrap(String(decoding: submitted.out, as: UTF8.self).split(separator: "\n").last.map(String.init))
        XCTAssertEqual(JobName(name)?.pool, Pool("C"))
        let path = fixture.spoolDirectory + "/" + name
        let expected = MergeJobWriter.job(sender: "bounces+&*VERP;@lists.example.org",
                                          table: Array("EMAIL,NAME,BALANCE,CITY\nalice@example.com,\"Smith, Alice\",12.50,Oslo\nbob@example.net,Bob,3,Paris\n.dot@example.org,.Dot,0,\n".utf8),
                                          template: template)
        XCTAssertEqual(try FileSystem.readAll(path), expected, "dot-stuffed, CRLF, no byte order mark, no trailing blank rows")
        guard case .merge(let job) = try JobReader.read(path: path) else { return XCTFail("\(name) is not a merge job") }
        XCTAssertEqual(job.rowCount, 3)
        XCTAssertFalse(try FileSystem.names(in: fixture.spoolDirectory).contains { $0.hasPrefix(".tmp.") }, "no temporary file left")

        let stem = String(name.dropLast(5))
        let previews: [(Int, String, String)] = [
            (1, "To: Smith, Alice <alice@example.com>\r\nMessage-ID: <\(stem).1@mx.example.org>\r\n\r\nyou owe 12.50.\r\n.Smith, Alice\r\n",
             "MAIL FROM:<bounces+alice=example.com@lists.example.org> RCPT TO:<alice@example.com>"),
            (2, "To: Bob <bob@example.net>\r\nMessage-ID: <\(stem).2@mx.example.org>\r\n\r\nnothing is due.\r\n.Bob\r\n",
             "MAIL FROM:<bounces+bob=example.net@lists.example.org> RCPT TO:<bob@example.net>"),
            (3, "To: .Dot <.dot@example.org>\r\nMessage-ID: <\(stem).3@mx.example.org>\r\n\r\nnothing is due.\r\n..Dot\r\n",
             "MAIL FROM:<bounces+.dot=example.org@lists.example.org> RCPT TO:<.dot@example.org>"),
        ]
        for (row, body, envelope) in previews {
            let preview = try poolctl(fixture, ["preview", name, "--row", "\(row)"])
            XCTAssertEqual(preview.status, 0, preview.err)
            XCTAssertEqual(String(decoding: preview.out, as: UTF8.self), "From: News <news@lists.example.org>\r\n" + body)
            XCTAssertTrue(preview.err.contains(envelope), preview.err)
        }
        XCTAssertEqual(try poolctl(fixture, ["preview", path]).out, try poolctl(fixture, ["preview", name, "--row", "1"]).out, "a path works, row 1 is the default")

        let show = try poolctl(fixture, ["show", name])
        XCTAssertEqual(show.status, 0, show.err)
        XCTAssertTrue(String(decoding: show.out, as: UTF8.self).contains("merge job: 3 rows (rows 1...3), columns EMAIL,NAME,BALANCE,CITY"))

        let missingRow = try poolctl(fixture, ["preview", name, "--row", "4"])
        XCTAssertEqual(missingRow.status, 1)
        XCTAssertTrue(missingRow.err.contains("there is no row 4 in this job (rows 1...3)"), missingRow.err)
        let plain = try poolctl(fixture, ["submit", "--from", "a@example.org", "--to", "b@example.org"], stdin: Array("Subject: x\n\nx\n".utf8))
        let plainName = String(decoding: plain.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let notMerge = try poolctl(fixture, ["preview", plainName])
        XCTAssertEqual(notMerge.status, 1)
        XCTAssertTrue(notMerge.err.contains("is a BSMTP job, not a merge job"), notMerge.err)
        XCTAssertTrue(try poolctl(fixture, ["preview", "Z999.MAIL"]).err.contains("no job Z999.MAIL in"))

        // A merge job written by list software goes in through --bsmtp as it stands.
        let asIs = try poolctl(fixture, ["submit", "--bsmtp"], stdin: expected)
        XCTAssertEqual(asIs.status, 0, asIs.err)
    }

    func testABadTableOrTemplateIsRefusedNamingItsOwnLineAndNothingIsWritten() throws {
        let fixture = try SpoolFixture("merge-refuse")
        try fixture.configure(["SMTP_FORWARD_1=127.0.0.1:25"])
        let csv = fixture.directory + "/t.csv"
        let cases: [(String, [String], [UInt8], String)] = [
            ("EMAIL,NAME\na@example.com,A\nb@example.com,\"B\n", [], template, "t.csv line 3 (row 2): column NAME: a quoted field is not closed on its line"),
            ("EMAIL,NAME\na@example.com,A\nnot an address,B\n", [], template, "t.csv line 3 (row 2): invalid address <not an address> in column EMAIL: space in address"),
            ("NAME\nA\n", [], template, "t.csv line 1: no EMAIL (or *TO) column"),
            ("EMAIL,NAME\n", [], template, "the table has no rows after its header"),
            ("EMAIL,NAME,BALANCE,CITY\na@example.com,A,1,X\n", [], Array("x\n.BB &BALANCE >\n.EB\n".utf8),
             "the template, line 2: the condition does not parse"),
            ("EMAIL,NAME,BALANCE,CITY\na@example.com,A,1,X\n", [], Array("x\n.BB &BALANCE\n".utf8), "the template, line 2: the block begun by this .BB is not closed"),
            ("EMAIL,NAME\na@example.com,x y\n", ["--from", "&NAME;@example.org"], template,
             "t.csv line 2 (row 1): the sender renders as <x y@example.org>, not an address"),
            ("EMAIL,NAME\na@example.com,A\n", ["--from", "nobody"], template, "--from: the sender <nobody>: address has no @domain"),
            ("EMAIL,NAME\na@example.com,A\n", [], [], "the template on standard input is empty"),
        ]
        for (table, options, stdin, message) in cases {
            try Data(table.utf8).write(to: URL(fileURLWithPath: csv))
            let from = options.isEmpty ? ["--from", "a@example.org"] : options
            let result = try poolctl(fixture, ["submit", "--merge", "--table", csv] + from, stdin: stdin)
            XCTAssertEqual(result.status, 1, message)
            XCTAssertTrue(result.err.contains(message), "expected '\(message)', got: \(result.err)")
        }
        for usage in [["submit", "--merge", "--from", "a@example.org"], ["submit", "--merge", "--table", csv],
                      ["submit", "--merge", "--bsmtp", "--from", "a@example.org", "--table", csv],
                      ["submit", "--merge", "--from", "a@example.org", "--table", csv, "--to", "b@example.org"],
                      ["submit", "--from", "a@example.org", "--to", "b@example.org", "--table", csv]] {
            XCTAssertEqual(try poolctl(fixture, usage, stdin: template).status, 64, "\(usage)")
        }
        XCTAssertEqual(try FileSystem.names(in: fixture.spoolDirectory), [], "nothing written, no temporary file left")
    }
}
