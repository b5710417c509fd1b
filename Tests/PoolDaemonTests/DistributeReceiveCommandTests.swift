// `poolctl receive` as a peer's MTA runs it: a share piped in the way Postfix or Exim
// delivers it (LF line ends, trace fields on top, an mbox From line) is spooled once and
// its rows render byte-identical to the primary's (`poolctl preview` on both sides); a
// redelivery exits 0 and spools nothing; a tampered share, a wrong key and a stale share
// exit 77; a key file others can read, and a spool the MTA's user cannot write, exit 75
// (the MTA retries); garbage exits 65. Nothing is spooled by any refusal.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
import SpoolKit

final class DistributeReceiveCommandTests: XCTestCase {
    struct Run {
        var status: Int32
        var out: [UInt8]
        var err: String
    }

    /// Runs poolctl with `arguments`, `stdin` on its standard input; `asUser` runs it
    /// through setpriv as that uid (and gid).
    func poolctl(_ config: String, _ arguments: [String], stdin: [UInt8] = [], asUser uid: UInt32? = nil) throws -> Run {
        let process = Process()
        let binary = try TestTools.binDirectory + "/poolctl"
        if let uid {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", binary, "--config", config] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--config", config] + arguments
        }
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
        return Run(status: process.terminationStatus, out: Array(out), err: String(decoding: err, as: UTF8.self))
    }

    static let keyText = "k3y-shared-by-primary-and-peers-0123456789\n"
    static let template = "From: News <news@lists.example.org>\nTo: &NAME; <&*TO;>\nMessage-ID: <&*MSGID;>\nX-Row: &*ROW;\n\n.BB &BALANCE > 10\nyou owe &BALANCE;.\n.ELSE\n.nothing for &NAME;\n.EB\n"

    var primary: SpoolFixture!
    var peer: SpoolFixture!
    var keyPath = ""

    override func setUpWithError() throws {
        // Shares are signed with libcrypto: the suite runs with the TLS trait (the default).
        XCTAssertTrue(ShareKey.isSigningAvailable, "built without TLS: shares cannot be signed")
        primary = try SpoolFixture("dist-primary")
        peer = try SpoolFixture("dist-peer")
        keyPath = peer.directory + "/dist.key"
        try writeKey(Self.keyText, to: keyPath)
        try primary.configure(["SMTP_FORWARD_1=127.0.0.1:25", "HELO_NAME=mx.primary.test"])
        try peer.configure(["SMTP_FORWARD_1=127.0.0.1:25", "HELO_NAME=mx.peer.test", "DIST_SECRET=\(keyPath)"])
    }

    func writeKey(_ text: String, to path: String, mode: Int = 0o600) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// A 40-row merge job in the primary's spool, split SELF 2*dist1.test dist2.test; the
    /// share for dist1.test (rows 11-30) as its relay hands it over, and the job's name.
    func dist1Share(time: Int64 = Int64(Date().timeIntervalSince1970), key: String = keyText) throws -> (message: [UInt8], id: String, job: JobName) {
        let table = "EMAIL,NAME,BALANCE\n" + (1...40).map { "m\($0)@example.org,\"Name, \($0)\",\($0)\n" }.joined()
        let name = "C000123.MAIL"
        try primary.drop(name, MergeJobWriter.job(sender: "bounces+&*VERP;@lists.example.org", senderParameters: ["BODY=8BITMIME"],
                                                  table: Array(table.utf8), template: Array(Self.template.utf8)))
        let path = primary.spoolDirectory + "/" + name
        let job = try JobReader.read(path: path)
        let jobName = try XCTUnwrap(JobName(name))
        var settings = try SiteConfiguration.parse("SPOOL_DIR=/s\nDIST_SECRET=/k\nDIST_FORWARD=SELF 2*dist1.test dist2.test\nDIST_FORWARD_THRESHOLD=40\n", file: "c").distribute
        guard case .distribute(let shares) = DistributePlan.decide(job: job, name: jobName, settings: settings) else {
            throw DistributeError.content("40 rows at threshold 40 are distributed")
        }
        settings.threshold = 41
        XCTAssertEqual(DistributePlan.decide(job: job, name: jobName, settings: settings), .keep(.belowThreshold(count: 40, threshold: 41)))
        XCTAssertEqual(shares.map(\.items), [0..<10, 10..<30, 30..<40])
        let origin = ShareOrigin(name: jobName, heloName: "mx.primary.test", token: ShareOrigin.token(of: try FileSystem.status(path)))
        let content = try ShareContent(shares[1], of: job, path: path, origin: origin)
        let message = try ShareMessage.build(content, key: try ShareKey(Array(key.utf8.dropLast())), time: time)
        XCTAssertEqual(message.recipient, "poold@dist1.test")
        // What the peer's MTA pipes in: LF line ends, an mbox From line, trace fields on top.
        let trace = """
            From postmaster@mx.primary.test  Wed Jun 18 10:00:00 2025
            Return-Path: <postmaster@mx.primary.test>
            X-Original-To: poold@dist1.test
            Delivered-To: poold@dist1.test
            Received: from mx.primary.test (mx.primary.test [192.0.2.1])
            \tby dist1.test (Postfix) with ESMTPS id 4XyZ;
            \tWed, 18 Jun 2025 10:00:01 +0000 (UTC)

            """
        let lf = Array(trace.utf8) + message.bytes.filter { $0 != 13 } + Array("\n".utf8)
        return (lf, message.id, jobName)
    }

    func peerJobs() -> [String] { peer.jobsLeft() }

    func testASharePipedAsAnMTADeliversItIsSpooledOnceAndRendersThePrimarysRows() throws {
        let share = try dist1Share()
        let first = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(first.err.contains("poolctl receive: spooled share \(share.id) (2/3 rows 11-30 of C000123.MAIL from mx.primary.test) as C"), first.err)
        let jobs = peerJobs()
        XCTAssertEqual(jobs.count, 1)
        let spooled = try XCTUnwrap(jobs.first)
        XCTAssertEqual(JobName(spooled)?.pool, Pool("C"), "the origin job's pool")
        XCTAssertTrue(spooled.hasPrefix("Cshare-"), spooled)

        for row in 11...30 {
            let there = try poolctl(peer.configPath, ["preview", spooled, "--row", "\(row)"])
            let here = try poolctl(primary.configPath, ["preview", share.job.fileName, "--row", "\(row)"])
            XCTAssertEqual(there.status, 0, there.err)
            XCTAssertEqual(here.status, 0, here.err)
            XCTAssertEqual(there.out, here.out, "row \(row) renders byte-identical on the peer")
            // "row N of 11...30: MAIL FROM:<…> RCPT TO:<…> (… bytes on the wire)": the range differs, the rest may not.
            XCTAssertEqual(there.err.split(separator: ":", maxSplits: 1).last, here.err.split(separator: ":", maxSplits: 1).last,
                           "row \(row): the same envelope")
            XCTAssertTrue(String(decoding: there.out, as: UTF8.self).contains("Message-ID: <C000123.\(row)@mx.primary.test>"))
        }
        XCTAssertNotEqual(try poolctl(peer.configPath, ["preview", spooled, "--row", "10"]).status, 0, "row 10 is SELF's")
        XCTAssertNotEqual(try poolctl(peer.configPath, ["preview", spooled, "--row", "31"]).status, 0, "row 31 is dist2's")

        let again = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.err.contains("was spooled before: nothing done"), again.err)
        XCTAssertEqual(peerJobs(), [spooled], "spooled once")

        try FileSystem.unlink(peer.spoolDirectory + "/" + spooled)  // delivered and removed
        let late = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(late.status, 0, late.err)
        XCTAssertEqual(peerJobs(), [], "a redelivery after the job is gone spools nothing")
        XCTAssertFalse(try FileSystem.names(in: peer.spoolDirectory).contains { $0.hasPrefix(".tmp.") })
    }

    func testTamperedWrongKeyStaleAndGarbageSharesAreRefusedWithTheirStatus() throws {
        let share = try dist1Share()
        var text = String(decoding: share.message, as: UTF8.self)
        text = text.replacingOccurrences(of: "X-Poold-Rows: 11-30", with: "X-Poold-Rows: 11-29")
        let cases: [(String, [UInt8], Int32, String)] = [
            ("tampered", Array(text.utf8), 77, "refused, bounced (77): share \(share.id): bad signature"),
            ("signed with another key", try dist1Share(key: "another-key-that-the-peer-does-not-have\n").message, 77,
             "bad signature (changed on the way, or signed with another key)"),
            ("eight days old", try dist1Share(time: Int64(Date().timeIntervalSince1970) - 8 * 86_400).message, 77, "too old: signed 8d"),
            ("garbage", Array("From: someone@example.org\nSubject: hello\n\nnot a share\n".utf8), 65,
             "malformed, bounced (65): not a poold share (no X-Poold-Share-Version header)"),
            ("binary garbage", (0..<2000).map { UInt8(truncatingIfNeeded: $0 * 7919) }, 65, "malformed, bounced (65)"),
        ]
        for (label, input, status, message) in cases {
            let result = try poolctl(peer.configPath, ["receive"], stdin: input)
            XCTAssertEqual(result.status, status, "\(label): \(result.err)")
            XCTAssertTrue(result.err.contains(message), "\(label): \(result.err)")
            XCTAssertEqual(result.err.split(separator: "\n").count, 1, "\(label): one log line")
        }
        XCTAssertEqual(peerJobs(), [], "nothing spooled")
    }

    func testAKeyFileOthersCanReadIsRefusedAndTheMTARetries() throws {
        let share = try dist1Share()
        try writeKey(Self.keyText, to: keyPath, mode: 0o644)
        let result = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(result.status, 75, result.err)
        XCTAssertTrue(result.err.contains("DIST_SECRET \(keyPath) can be read or written by group or others (mode 644): chmod 600 it"), result.err)
        let check = try poolctl(peer.configPath, ["check"])
        XCTAssertEqual(check.status, 1, "poolctl check refuses it too")
        XCTAssertTrue(check.err.contains("chmod 600 it"), check.err)
        XCTAssertFalse(String(decoding: check.out, as: UTF8.self).contains(": OK"), "called OK before it was refused")
        let poold = Process()
        poold.executableURL = URL(fileURLWithPath: try TestTools.binDirectory + "/poold")
        poold.arguments = ["--config", peer.configPath, "--drain"]
        poold.standardOutput = FileHandle.nullDevice
        poold.standardError = FileHandle.nullDevice
        try poold.run()
        poold.waitUntilExit()
        XCTAssertEqual(poold.terminationStatus, 78, "poold refuses it as a bad configuration (EX_CONFIG)")
        let large = share.message + Array(String(repeating: "QUFBQUFB\n", count: 300_000).utf8)
        XCTAssertEqual(try poolctl(peer.configPath, ["receive"], stdin: large).status, 75,
                       "a refusal before the body still reads the whole message (the MTA's pipe never breaks)")
        try FileManager.default.removeItem(atPath: keyPath)
        XCTAssertEqual(try poolctl(peer.configPath, ["receive"], stdin: share.message).status, 75, "a missing key file")
        XCTAssertEqual(peerJobs(), [])

        try writeKey(Self.keyText, to: keyPath)
        let fixed = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(fixed.status, 0, "the MTA's retry after the fix spools it: \(fixed.err)")
        XCTAssertEqual(peerJobs().count, 1)
    }

    func testASpoolTheMTAsUserCannotWriteIsTemporaryTrouble() throws {
        let share = try dist1Share()
        let nobody: UInt32 = 65534
        let asUser: UInt32?
        if getuid() == 0 {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "setpriv (util-linux) is needed to run as another user")
            XCTAssertEqual(chown(keyPath, nobody, nobody), 0)  // the key stays readable: only the spool is in the way
            asUser = nobody
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: peer.spoolDirectory)
            asUser = nil
        }
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: peer.spoolDirectory) }
        let result = try poolctl(peer.configPath, ["receive"], stdin: share.message, asUser: asUser)
        XCTAssertEqual(result.status, 75, result.err)
        XCTAssertTrue(result.err.contains("temporary failure, the MTA will retry (75): cannot write in the spool"), result.err)
        XCTAssertEqual(peerJobs(), [])

        try peer.configure(["DIST_SECRET=\(keyPath)"])
        try FileManager.default.removeItem(atPath: peer.spoolDirectory)
        XCTAssertEqual(try poolctl(peer.configPath, ["receive"], stdin: share.message).status, 75, "no spool directory")
        try "SPOOL_DIR=\(peer.spoolDirectory)\nNO_SUCH_KEY=1\n".write(toFile: peer.configPath, atomically: true, encoding: .utf8)
        let badConfig = try poolctl(peer.configPath, ["receive"], stdin: share.message)
        XCTAssertEqual(badConfig.status, 75, "a configuration error on the peer is temporary: \(badConfig.err)")
        XCTAssertTrue(badConfig.err.contains("unknown key 'NO_SUCH_KEY'"), badConfig.err)
    }

    func testCheckShowsTheDistributeSetup() throws {
        let primaryKey = primary.directory + "/dist.key"
        try writeKey(Self.keyText, to: primaryKey)
        try primary.configure(["SMTP_FORWARD_1=127.0.0.1:25", "DIST_FORWARD=\"SELF 2*poold@dist1.test dist2.test\"", "DIST_SECRET=\(primaryKey)"])
        let check = try poolctl(primary.configPath, ["check"])
        XCTAssertEqual(check.status, 0, check.err)
        let out = String(decoding: check.out, as: UTF8.self)
        XCTAssertTrue(out.contains("distribute (DIST_FORWARD, line 3): jobs of 100 rows or recipients or more are shared:"), out)
        let dist1 = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("poold@dist1.test") }, out)
        XCTAssertTrue(dist1.contains(" 2 ") && dist1.hasSuffix("50.0%"), out)
        XCTAssertTrue(out.contains("SELF (spooled here)"), out)
        XCTAssertTrue(out.contains("DIST_SECRET \(primaryKey): OK (a 42-byte key"), out)
        let peerCheck = try poolctl(peer.configPath, ["check"])
        XCTAssertEqual(peerCheck.status, 0, peerCheck.err)
        XCTAssertTrue(String(decoding: peerCheck.out, as: UTF8.self).contains("distribute: receives shares (poolctl receive)"))
    }
}
