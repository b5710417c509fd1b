// The Distribute keys, table by table: every valid form of DIST_FORWARD gives the peers and
// weights MISSION.md describes (bare host names, SELF's default weight, 0*SELF, weights
// added), and every invalid form is refused naming the file, the line and the fault.

import Foundation
import XCTest
@testable import SpoolKit

final class DistributeConfigurationTests: XCTestCase {
    private static let head = "SPOOL_DIR=/var/spool/poold\n"
    private static let secret = "DIST_SECRET=/etc/poold/dist.key\n"

    private func settings(_ lines: String, file: StaticString = #filePath, line: UInt = #line) -> DistributeSettings? {
        do {
            return try SiteConfiguration.parse(Self.head + lines, file: "poold.cfg").distribute
        } catch {
            XCTFail("unexpected error: \(error)", file: file, line: line)
            return nil
        }
    }

    func testEveryValidFormOfDistForwardGivesItsPeersAndWeightsInStableOrder() {
        let cases: [(String, String)] = [
            ("SELF 2*poold@dist1.test dist2.test", "SELF 2*poold@dist1.test poold@dist2.test"),
            ("dist1.example.org", "SELF poold@dist1.example.org"),
            ("\"0*SELF a.example b.example\"", "0*SELF poold@a.example poold@b.example"),
            ("a.example 2*poold@A.EXAMPLE", "SELF 3*poold@a.example"),
            ("list@dist1.example.org 3*SELF", "list@dist1.example.org 3*SELF"),
            ("self x.example", "SELF poold@x.example"),
            ("SELF SELF x.example", "2*SELF poold@x.example"),
            ("0*SELF SELF x.example", "SELF poold@x.example"),
            ("x@[192.0.2.1] [192.0.2.2]", "SELF x@[192.0.2.1] poold@[192.0.2.2]"),
            ("  b.example\t 1000*a.example  ", "SELF poold@b.example 1000*poold@a.example"),
            ("Dist1.Example.ORG", "SELF poold@dist1.example.org"),
            ("Poold@x.example poold@x.example", "SELF Poold@x.example poold@x.example"),
        ]
        for (value, expected) in cases {
            guard let s = settings("DIST_FORWARD=\(value)\n" + Self.secret) else { continue }
            XCTAssertEqual(s.description, expected, value)
            XCTAssertTrue(s.isForwarding, value)
            XCTAssertEqual(s.line, 2, value)
            XCTAssertEqual(s.threshold, 100, value)
            XCTAssertEqual(s.minimumSizeKB, 0, value)
            XCTAssertEqual(s.secretFile, "/etc/poold/dist.key", value)
        }
    }

    func testThresholdMinimumSizeAndSecretAreRead() throws {
        let s = try XCTUnwrap(settings("DIST_FORWARD=x.example\nDIST_FORWARD_THRESHOLD=1\nDIST_FORWARD_MINSIZE=64\n" + Self.secret))
        XCTAssertEqual(s.threshold, 1)
        XCTAssertEqual(s.minimumSizeKB, 64)
        XCTAssertEqual(s.peers, [WeightedPeer(.local, weight: 1), WeightedPeer(.remote(address: "poold@x.example"), weight: 1)])
        XCTAssertEqual(s.localWeight, 1)
        XCTAssertEqual(try XCTUnwrap(settings("DIST_FORWARD=\"0*SELF x.example\"\n" + Self.secret)).localWeight, 0)
    }

    func testAPeerThatOnlyReceivesNeedsDistSecretAndNoDistForward() throws {
        let s = try XCTUnwrap(settings(Self.secret))
        XCTAssertFalse(s.isForwarding)
        XCTAssertEqual(s.secretFile, "/etc/poold/dist.key")
        XCTAssertEqual(try XCTUnwrap(settings("")), DistributeSettings(), "no Distribute key: nothing set")
    }

    func testEveryInvalidFormIsRefusedNamingTheFileTheLineAndTheFault() {
        let cases: [(String, String)] = [
            ("DIST_FORWARD=\n", "poold.cfg:2: DIST_FORWARD: the value is empty"),
            ("DIST_FORWARD=SELF\n", "poold.cfg:2: DIST_FORWARD: no peer but SELF: name at least one other instance (an address or a host name)"),
            ("DIST_FORWARD=0*SELF\n", "poold.cfg:2: DIST_FORWARD: no peer but SELF: name at least one other instance (an address or a host name)"),
            ("DIST_FORWARD=0*x.example\n", "poold.cfg:2: DIST_FORWARD: '0*x.example': only SELF may have weight 0 (leave a peer out instead)"),
            ("DIST_FORWARD=*x.example\n", "poold.cfg:2: DIST_FORWARD: '*x.example': the weight before '*' must be a number 0...1000"),
            ("DIST_FORWARD=-1*x.example\n", "poold.cfg:2: DIST_FORWARD: '-1*x.example': the weight before '*' must be a number 0...1000"),
            ("DIST_FORWARD=1001*x.example\n", "poold.cfg:2: DIST_FORWARD: '1001*x.example': the weight before '*' must be a number 0...1000"),
            ("DIST_FORWARD=1.5*x.example\n", "poold.cfg:2: DIST_FORWARD: '1.5*x.example': the weight before '*' must be a number 0...1000"),
            ("DIST_FORWARD=2*\n", "poold.cfg:2: DIST_FORWARD: '2*' names no peer after '*'"),
            ("DIST_FORWARD=600*x.example 600*poold@x.example\n", "poold.cfg:2: DIST_FORWARD: poold@x.example weighs 1200 in all, more than 1000"),
            ("DIST_FORWARD=a.example b@\n", "poold.cfg:2: DIST_FORWARD: 'b@' is not an address: address has an empty domain"),
            ("DIST_FORWARD=@b.example\n", "poold.cfg:2: DIST_FORWARD: '@b.example' is not an address: address has an empty local part"),
            ("DIST_FORWARD=SELF 2*bad@@b.example\n", "poold.cfg:2: DIST_FORWARD: 'bad@@b.example' is not an address: 'bad@' is not a local part"),
            ("DIST_FORWARD=bad_host!\n", "poold.cfg:2: DIST_FORWARD: 'bad_host!' is not a peer: 'bad_host!' is not a host name (write SELF, an address or a host name)"),
            ("DIST_FORWARD=x@bad..example\n", "poold.cfg:2: DIST_FORWARD: 'x@bad..example' is not a peer: 'bad..example' is not a host name (write SELF, an address or a host name)"),
            ("DIST_FORWARD=x@[300.1.1.1]\n", "poold.cfg:2: DIST_FORWARD: 'x@[300.1.1.1]' is not a peer: '[300.1.1.1]' is not a host name (write SELF, an address or a host name)"),
            ("DIST_FORWARD=jürgen@x.example\n", "poold.cfg:2: DIST_FORWARD: 'jürgen@x.example': a peer's address must be ASCII (it travels in a header of every share)"),
            ("DIST_FORWARD=x.example\n", "poold.cfg:2: DIST_FORWARD: needs DIST_SECRET= (the file holding the key shared with the peers)"),
            ("DIST_FORWARD=x.example\nDIST_FORWARD=y.example\n", "poold.cfg:3: DIST_FORWARD: given twice (lines 2 and 3)"),
            ("DIST_FORWARD_THRESHOLD=0\n", "poold.cfg:2: DIST_FORWARD_THRESHOLD: '0' is not a positive whole number"),
            ("DIST_FORWARD_THRESHOLD=ten\n", "poold.cfg:2: DIST_FORWARD_THRESHOLD: 'ten' is not a positive whole number"),
            ("DIST_FORWARD_MINSIZE=-1\n", "poold.cfg:2: DIST_FORWARD_MINSIZE: '-1' is not a size in kB (a whole number, 0 for no minimum)"),
            ("DIST_FORWARD_MINSIZE=1.5\n", "poold.cfg:2: DIST_FORWARD_MINSIZE: '1.5' is not a size in kB (a whole number, 0 for no minimum)"),
            ("DIST_FORWARD_MINSIZE=64kB\n", "poold.cfg:2: DIST_FORWARD_MINSIZE: '64kB' is not a size in kB (a whole number, 0 for no minimum)"),
            ("DIST_SECRET=\"\"\n", "poold.cfg:2: DIST_SECRET: the value is empty"),
            ("DIST_SECRET=/a\nDIST_SECRET=/b\n", "poold.cfg:3: DIST_SECRET: given twice (lines 2 and 3)"),
            ("DIST_FORWARDS=x.example\n", "poold.cfg:2: unknown key 'DIST_FORWARDS'"),
        ]
        for (lines, expected) in cases {
            do {
                _ = try SiteConfiguration.parse(Self.head + lines, file: "poold.cfg")
                XCTFail("accepted: \(lines)")
            } catch {
                XCTAssertEqual(error.description, expected, lines)
            }
        }
    }

    func testThresholdAndMinimumSizeWithoutDistForwardAreWarnedAbout() throws {
        let config = try SiteConfiguration.parse(Self.head + "SMTP_FORWARD_1=relay.example\nDIST_FORWARD_THRESHOLD=5\nDIST_FORWARD_MINSIZE=1\n", file: "poold.cfg")
        XCTAssertEqual(config.warnings, ["DIST_FORWARD_THRESHOLD (line 3) is ignored without DIST_FORWARD",
                                         "DIST_FORWARD_MINSIZE (line 4) is ignored without DIST_FORWARD"])
    }

    // MARK: the key file

    func testTheKeyFileIsRefusedWhenMissingEmptyShortOrReadableByOthers() throws {
        let directory = NSTemporaryDirectory() + "dist-key-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func key(_ name: String, _ content: String, mode: Int) throws -> String {
            let path = directory + "/" + name
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            return path
        }
        let good = try key("good", "0123456789abcdef0123456789abcdef\r\nsecond line ignored\n", mode: 0o600)
        XCTAssertEqual(try ShareKey.load(path: good).length, 32, "the first line, CR dropped")
        XCTAssertEqual(try ShareKey.load(path: try key("ro", "0123456789abcdef", mode: 0o400)).length, 16)
        let cases: [(String, String)] = [
            (directory + "/missing", "cannot be read: stat \(directory)/missing: No such file or directory"),
            (directory, "is not a file"),
            (try key("group", "0123456789abcdef0123", mode: 0o640), "can be read or written by group or others (mode 640): chmod 600 it"),
            (try key("other", "0123456789abcdef0123", mode: 0o604), "can be read or written by group or others (mode 604): chmod 600 it"),
            (try key("empty", "", mode: 0o600), "is empty (its first line must be the key)"),
            (try key("blank", "\nkey on the second line\n", mode: 0o600), "is empty (its first line must be the key)"),
            (try key("short", "tooshort\n", mode: 0o600), "holds a key of 8 bytes, fewer than 16 (make one with: openssl rand -base64 32)"),
        ]
        for (path, problem) in cases {
            XCTAssertThrowsError(try ShareKey.load(path: path), path) { error in
                XCTAssertEqual("\(error)", "DIST_SECRET \(path) \(problem)")
            }
        }
        var config = try SiteConfiguration.parse(Self.head + "DIST_FORWARD=x.example\nDIST_SECRET=\(good)\n", file: "poold.cfg")
        if ShareKey.isSigningAvailable {
            XCTAssertEqual(try config.checkDistribute()?.length, 32)
        } else {
            XCTAssertThrowsError(try config.checkDistribute()) { XCTAssertEqual($0 as? DistributeError, .signingUnavailable) }
        }
        config.distribute.peers = []
        XCTAssertEqual(try config.checkDistribute()?.length, 32, "a peer that only receives has its key checked too")
        config.distribute.secretFile = directory + "/missing"
        XCTAssertThrowsError(try config.checkDistribute())
    }
}
