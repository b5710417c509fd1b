// EightBitDowngrade, table-driven: each message is converted and checked three ways —
// the exact output where it matters, every octet 7-bit, and (with a small MIME reader of
// the test's own, independent of the converter) the decoded leaf bodies of the output
// equal those of the input, in order. Refusals name their reason, line and 5.6.3.

import XCTest
@testable import SMTPClient

final class EightBitDowngradeTests: XCTestCase {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func converted(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        converted(bytes(text), file: file, line: line)
    }

    /// Converts, checks the output is 7-bit and decodes to the same leaves; the output as text.
    func converted(_ input: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> String? {
        switch EightBitDowngrade.convert(input) {
        case .failure(let failure):
            XCTFail("refused: \(failure)", file: file, line: line)
            return nil
        case .success(let output):
            XCTAssertFalse(output.contains { $0 >= 0x80 }, "8-bit octets remain", file: file, line: line)
            XCTAssertFalse(MIMEReader.leaves(input).isEmpty, "the test's reader found no leaf", file: file, line: line)
            XCTAssertEqual(MIMEReader.leaves(output).map(\.decoded), MIMEReader.leaves(input).map(\.decoded),
                           "decoded leaf bodies differ", file: file, line: line)
            return String(decoding: output, as: UTF8.self)
        }
    }

    // MARK: - exact outputs

    func testTheTable() {
        let table: [(name: String, input: String, output: String)] = [
            ("no MIME at all: MIME-Version, Content-Type with unknown-8bit and quoted-printable are added",
             "From: a@example.org\r\nSubject: hi\r\n\r\nGrüße\r\n",
             "From: a@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                + "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"),
            ("declared 8bit text: only the encoding and the body change",
             "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-After: kept\r\n\r\ncafé\r\n",
             "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nX-After: kept\r\n\r\ncaf=C3=A9\r\n"),
            ("MIME without Content-Transfer-Encoding: it is added at the end of the header",
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnaïve\r\n",
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve\r\n"),
            ("multipart/alternative with one 8-bit part: the other part and the boundaries stay",
             "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nü\r\n--b1\r\n"
                + "Content-Type: text/html\r\n\r\n<p>&uuml;</p>\r\n--b1--\r\nepilogue\r\n",
             "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=BC\r\n--b1\r\n"
                + "Content-Type: text/html\r\n\r\n<p>&uuml;</p>\r\n--b1--\r\nepilogue\r\n"),
            ("a line that starts with a dot or \"From \", and trailing white space",
             "Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n.é\r\nFrom é\r\né \r\né\t\r\n",
             "Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                + "=2E=C3=A9\r\n=46rom =C3=A9\r\n=C3=A9=20\r\n=C3=A9=09\r\n"),
            ("'=' is escaped, and a body without a final line break keeps none",
             "MIME-Version: 1.0\r\n\r\na=b é",
             "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db =C3=A9"),
            ("not text: base64, lines of 76, the last line break kept",
             "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\u{FF}\u{FE}\r\n",
             "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nw7/Dvg0K\r\n"),
        ]
        for row in table {
            XCTAssertEqual(converted(row.input), row.output, row.name)
        }
    }

    func testAMessageWithout8BitOctetsComesBackUnchanged() {
        let input = bytes("Subject: plain\r\n\r\nhello\n.\r\n")
        XCTAssertFalse(EightBitDowngrade.needsConversion(input))
        XCTAssertEqual(try EightBitDowngrade.convert(input).get(), input)
        XCTAssertTrue(EightBitDowngrade.needsConversion(bytes("Subject: x\r\n\r\né\r\n")))
    }

    // MARK: - structure

    func testNestedMultipartsAreFollowedAndOnlyTheirEightBitLeavesChange() {
        let base64Part = "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
            + "Content-Type: multipart/alternative; boundary=\"inner\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n--inner\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n\r\nÄrger\r\n--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<b>Ärger</b>\r\n--inner--\r\n"
            + "--outer\r\n" + base64Part + "--outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%PDF \u{E9}\r\n--outer--\r\n"
        XCTAssertEqual(MIMEReader.leaves(bytes(input)).map(\.contentType), ["text/plain", "text/html", "image/png", "application/pdf"])
        guard let output = converted(input) else { return }
        XCTAssertTrue(output.contains("Content-Type: multipart/alternative; boundary=\"inner\"\r\nContent-Transfer-Encoding: 7bit\r\n"), output)
        XCTAssertTrue(output.contains("--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=84rger\r\n--inner\r\n"), output)
        XCTAssertTrue(output.contains("--outer\r\n" + base64Part + "--outer\r\n"), "the base64 part is untouched")
        XCTAssertTrue(output.contains("Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"), output)
        XCTAssertFalse(output.contains("MIME-Version: 1.0\r\nMIME-Version"), output)
    }

    func testAMessageRFC822PartIsConvertedInsideAndSays7bit() {
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n"
            + "Content-Transfer-Encoding: 8bit\r\n\r\nFrom: x@example.org\r\nSubject: inner\r\n\r\nGrüße aus Köln\r\n--m--\r\n"
        guard let output = converted(input) else { return }
        XCTAssertTrue(output.contains("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nFrom: x@example.org\r\nSubject: inner\r\n"
                                        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                                        + "Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n--m--\r\n"), output)
    }

    func testMessageGlobalIsEncodedAsAWhole() {
        let input = "MIME-Version: 1.0\r\nContent-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: ✓\r\n\r\nbody\r\n"
        XCTAssertTrue(converted(input)?.contains("Content-Transfer-Encoding: base64\r\n\r\n") == true)
    }

    func testLineEndsOutsideConvertedBodiesStayAsTheyWere() {
        // LF-only lines in the 7-bit part and the preamble are copied as they are.
        let input = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\npre\nmore\r\n--z\r\nContent-Type: text/plain\r\n\r\nlf\nonly\n\r\n"
            + "--z\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\u{E9}\r\n--z--\r\n"
        guard let output = converted(input) else { return }
        XCTAssertTrue(output.hasPrefix("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\npre\nmore\r\n--z\r\nContent-Type: text/plain\r\n\r\nlf\nonly\n\r\n--z\r\n"), output)
    }

    func testLongLinesGetSoftBreaksWithinSeventySixCharacters() {
        let long = String(repeating: "Grüße aus der schönen Stadt, ", count: 12) + " end"
        guard let output = converted("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(long)\r\n") else { return }
        let body = output.components(separatedBy: "\r\n\r\n")[1]
        let lines = body.components(separatedBy: "\r\n").dropLast()
        XCTAssertGreaterThan(lines.count, 5)
        XCTAssertTrue(lines.allSatisfy { $0.utf8.count <= 76 }, "\(lines.map(\.utf8.count))")
        XCTAssertTrue(lines.dropLast().allSatisfy { $0.hasSuffix("=") }, "soft breaks")
    }

    func testTextThatQuotedPrintableWouldBloatGoesAsBase64() {
        let russian = String(repeating: "Привет, мир! ", count: 20)
        let output = converted("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(russian)\r\n")
        XCTAssertTrue(output?.contains("Content-Transfer-Encoding: base64\r\n") == true, output ?? "")
    }

    func testAQuotedPrintablePartWithRaw8BitOctetsIsEncodedAgain() {
        let input = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoft=\r\nbreak =3D é\r\n"
        XCTAssertEqual(converted(input), "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nsoftbreak =3D =C3=A9\r\n")
    }

    func testRandomMessagesComeOutSevenBitAndDecodeBackToTheirBodies() {
        var seed: UInt64 = 0x5EED
        func next(_ bound: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(bound))
        }
        let pieces = ["a", " ", "\t", ".", "From ", "=", "é", "ß", "Привет", "\u{FF}", "x", "--", "€"]
        func body() -> String {
            (0..<next(6) + 1).map { _ in (0..<next(120)).map { _ in pieces[next(pieces.count)] }.joined() }.joined(separator: "\r\n") + "\r\n"
        }
        let types = ["text/plain; charset=utf-8", "text/html; charset=utf-8", "application/octet-stream", "image/gif"]
        let encodings = ["", "Content-Transfer-Encoding: 8bit\r\n", "Content-Transfer-Encoding: binary\r\n", "Content-Transfer-Encoding: 7bit\r\n"]
        for _ in 0..<200 {
            var message = "From: list@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"r-1\"\r\n\r\n"
            for _ in 0..<next(4) + 1 {
                message += "--r-1\r\nContent-Type: \(types[next(types.count)])\r\n\(encodings[next(encodings.count)])\r\n\(body())"
            }
            message += "--r-1--\r\n"
            XCTAssertNotNil(converted(message), message)
        }
    }

    // MARK: - refusals

    func testWhatCannotBeConvertedIsRefusedWith563NamingTheLine() {
        let table: [(name: String, input: String, reason: DowngradeFailure.Reason, line: Int)] = [
            ("8-bit in the subject", "From: a@example.org\r\nSubject: Grüße\r\n\r\nbody\r\n", .eightBitHeader, 2),
            ("8-bit in a folded header line", "Subject: x\r\n y\r\nX-Name: a\r\n é\r\n\r\nb\r\n", .eightBitHeader, 4),
            ("8-bit in a part's header", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
                + "Content-Disposition: attachment; filename=\"é.txt\"\r\n\r\nx\r\n--q--\r\n", .eightBitHeader, 5),
            ("8-bit in the header of an enclosed message", "MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: é\r\n\r\nx\r\n",
             .eightBitHeader, 4),
            ("message/partial", "MIME-Version: 1.0\r\nContent-Type: message/partial; id=\"x\"; number=1\r\n\r\nSubject: s\r\n\r\né\r\n",
             .messagePartNotConvertible("message/partial"), 6),
            ("message/delivery-status", "MIME-Version: 1.0\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; é\r\n",
             .messagePartNotConvertible("message/delivery-status"), 4),
            ("a base64 body with raw 8-bit octets", "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\né\r\n",
             .eightBitInBase64Body, 5),
            ("8-bit in the preamble", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\nprélude\r\n--p\r\n\r\nx\r\n--p--\r\n",
             .eightBitOutsideParts, 4),
            ("8-bit in the epilogue", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n--p\r\n\r\nx\r\n--p--\r\nfin é\r\n",
             .eightBitOutsideParts, 8),
            ("a multipart without boundary", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\né\r\n", .multipartWithoutBoundary, 2),
        ]
        for row in table {
            switch EightBitDowngrade.convert(bytes(row.input)) {
            case .success(let output):
                XCTFail("\(row.name): converted to \(String(decoding: output, as: UTF8.self))")
            case .failure(let failure):
                XCTAssertEqual(failure.reason, row.reason, row.name)
                XCTAssertEqual(failure.line, row.line, row.name)
                XCTAssertEqual(failure.status, "5.6.3", row.name)
                XCTAssertTrue(failure.description.hasPrefix("5.6.3 ") && failure.description.hasSuffix("(line \(row.line))"), failure.description)
            }
        }
    }

    func testNestingDeeperThanTheLimitIsRefused() {
        var message = "MIME-Version: 1.0\r\n"
        for level in 0...EightBitDowngrade.maximumNesting { message += "Content-Type: multipart/mixed; boundary=b\(level)\r\n\r\n--b\(level)\r\n" }
        message += "\r\né\r\n"
        guard case .failure(let failure) = EightBitDowngrade.convert(bytes(message)) else { return XCTFail("converted") }
        XCTAssertEqual(failure.reason, .nestedTooDeep)
    }
}
