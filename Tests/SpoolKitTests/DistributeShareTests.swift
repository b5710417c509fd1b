// Share messages in one process: a job split, each share signed, carried as base64 and
// received into a peer's spool renders byte-identical rows (or recipients) to the origin;
// tampered content, tampered metadata, a wrong key, a missing signature and a stale or
// future time are refused; a redelivery is spooled once; garbage is malformed.

import Foundation
import XCTest
@testable import SpoolKit

final class DistributeShareTests: XCTestCase {
    var directory = ""
    var primary = Spool(root: "/nonexistent")
    var peer = Spool(root: "/nonexistent")
    let now: Int64 = 1_750_000_000
    let helo = "mx.primary.example"

    override func setUpWithError() throws {
        // Shares are signed with libcrypto: the suite runs with the TLS trait (the default).
        XCTAssertTrue(ShareKey.isSigningAvailable, "built without TLS: shares cannot be signed")
        directory = NSTemporaryDirectory() + "dist-share-\(getpid())-\(UUID().uuidString)"
        for d in ["/primary", "/peer"] { try FileManager.default.createDirectory(atPath: directory + d, withIntermediateDirectories: true) }
        primary = Spool(root: directory + "/primary")
        peer = Spool(root: directory + "/peer")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func key(_ text: String = "the key shared by every instance") throws -> ShareKey { try ShareKey(Array(text.utf8)) }

    static let template = "From: News <news@lists.example.org>\nTo: &NAME; <&*TO;>\nMessage-ID: <&*MSGID;>\nX-Row: &*ROW;\n\n.BB &NAME = 'N3'\nthree\n.ELSE\n.hello &NAME;\n.EB\n"

    /// A merge job of `rows` rows in the primary's spool, as `name`.
    func mergeJob(rows: Int, name: String = "A123.MAIL") throws -> (JobName, SpoolJob, String) {
        let table = "EMAIL,NAME\n" + (1...rows).map { "r\($0)@example.org,N\($0)\n" }.joined()
        let bytes = MergeJobWriter.job(sender: "bounces+&*VERP;@lists.example.org", table: Array(table.utf8),
                                       template: Array(Self.template.utf8))
        try AtomicFile.write(directory: primary.root, name: name, bytes: bytes)
        let path = primary.root + "/" + name
        return (try XCTUnwrap(JobName(name)), try JobReader.read(path: path), path)
    }

    func shares(of job: SpoolJob, name: JobName, path: String, forward: String = "SELF 2*dist1.test dist2.test") throws -> [ShareContent] {
        var settings = try SiteConfiguration.parse("SPOOL_DIR=/s\nDIST_SECRET=/k\nDIST_FORWARD=\(forward)\n", file: "c").distribute
        settings.threshold = 1
        guard case .distribute(let planned) = DistributePlan.decide(job: job, name: name, settings: settings) else {
            XCTFail("not distributed")
            return []
        }
        let origin = ShareOrigin(name: name, heloName: helo, token: ShareOrigin.token(of: try FileSystem.status(path)))
        return try planned.map { try ShareContent($0, of: job, path: path, origin: origin) }
    }

    /// Every row of the merge job at `path`, rendered: row number → envelope and message.
    func rendered(_ path: String, name: JobName) throws -> [Int: String] {
        guard case .merge(let job) = try JobReader.read(path: path) else { throw DistributeError.content("not a merge job") }
        var renderer = MergeRenderer(job: job, name: name, heloName: "mx.peer.example", clock: { Date(timeIntervalSince1970: 0) })
        let reader = try MergeRowReader(path: path, job: job)
        var row = MergeRow()
        var message = RenderedMessage()
        var result: [Int: String] = [:]
        while try reader.next(into: &row) {
            try renderer.render(row, into: &message)
            result[message.rowNumber] = "<\(message.sender)> <\(message.recipient)>\n" + String(decoding: message.bytes, as: UTF8.self)
        }
        return result
    }

    func receive(_ bytes: [UInt8], key: ShareKey? = nil, at time: Int64? = nil) throws -> Result<ReceiveOutcome, ShareFault> {
        let receiver = ShareReceiver(spool: peer, key: try key ?? self.key())
        do { return .success(try receiver.receive(.bytes(bytes), now: time ?? now)) } catch { return .failure(error) }
    }

    func testAMergeJobSplitSignedAndReceivedRendersEveryRowAsThePrimaryWould() throws {
        let (name, job, path) = try mergeJob(rows: 11)
        let origin = try rendered(path, name: name)
        XCTAssertEqual(origin.count, 11)
        XCTAssertTrue(origin[3]?.contains("Message-ID: <A123.3@mx.peer.example>") == true, "the origin renders with its own HELO here")
        var received: [Int: String] = [:]
        var localJobs = 0
        for content in try shares(of: job, name: name, path: path) {
            if content.share.isLocal {
                let local = try content.spool(in: primary)
                localJobs += 1
                guard case .merge(let spooled) = try JobReader.read(path: primary.path(of: local, in: .queued)) else { return XCTFail() }
                XCTAssertEqual(spooled.parameters, MergeParameters(stem: "A123", firstRow: 1, heloName: helo, share: .init(index: 1, count: 3)))
                XCTAssertEqual(DistributePlan.decide(job: .merge(spooled), name: local, settings: try XCTUnwrap(try? SiteConfiguration.parse("SPOOL_DIR=/s\nDIST_SECRET=/k\nDIST_FORWARD=x.test\nDIST_FORWARD_THRESHOLD=1\n", file: "c").distribute)), .keep(.isShare))
                for (row, text) in try rendered(primary.path(of: local, in: .queued), name: local) { received[row] = text }
                continue
            }
            let message = try ShareMessage.build(content, key: try key(), time: now)
            XCTAssertEqual(message.sender, "postmaster@mx.primary.example")
            XCTAssertEqual(message.id, content.id)
            let text = String(decoding: message.bytes, as: UTF8.self)
            XCTAssertTrue(text.contains("\r\nX-Poold-Share: \(content.share.index)/3\r\n"), text)
            XCTAssertTrue(text.contains("\r\nX-Poold-Origin-Helo: mx.primary.example\r\n"))
            XCTAssertTrue(text.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 998 && !$0.hasPrefix(".") })
            let body = text.components(separatedBy: "\r\n\r\n")[1].split(separator: "\r\n")
            XCTAssertTrue(body.dropLast().allSatisfy { $0.count == 76 }, "base64 in 76-column lines")
            guard case .success(.spooled(let spooledName, let metadata, nil)) = try receive(message.bytes) else { return XCTFail("not spooled") }
            XCTAssertEqual(spooledName.pool, Pool("A"), "the origin job's pool")
            XCTAssertEqual(metadata.id, content.id)
            for (row, text) in try rendered(peer.path(of: spooledName, in: .queued), name: spooledName) { received[row] = text }
        }
        XCTAssertEqual(localJobs, 1)
        for row in 1...11 {
            let expected = try XCTUnwrap(origin[row]).replacingOccurrences(of: "@mx.peer.example>", with: "@mx.primary.example>")
            XCTAssertEqual(received[row], expected, "row \(row)")
        }
        XCTAssertEqual(try peer.jobs().count, 2)
        XCTAssertEqual(try FileSystem.names(in: peer.root + "/.shares").filter { !$0.hasPrefix(".") }.count, 2)
    }

    func testAPlainJobIsSplitByRecipientsAndItsSharesAreMarkedAsShares() throws {
        let recipients = (1...12).map { "u\($0)@example.net" }
        let message = "Subject: plain\n\n.dot line\nbody\n"
        let bytes = JobWriter.bsmtp(message: Array(message.utf8), from: "list@example.org", to: recipients)
        try AtomicFile.write(directory: primary.root, name: "B77.MAIL", bytes: bytes)
        let path = primary.root + "/B77.MAIL"
        let name = try XCTUnwrap(JobName("B77.MAIL"))
        let job = try JobReader.read(path: path)
        var got: [String] = []
        for content in try shares(of: job, name: name, path: path) where !content.share.isLocal {
            let shareMessage = try ShareMessage.build(content, key: try key(), time: now)
            guard case .success(.spooled(let spooled, let metadata, _)) = try receive(shareMessage.bytes) else { return XCTFail() }
            XCTAssertEqual(metadata.kind, .bsmtp)
            let received = try BSMTPReader.read(path: peer.path(of: spooled, in: .queued))
            XCTAssertTrue(received.isShare)
            XCTAssertEqual(received.hello, "poold-share \(content.id)")
            XCTAssertEqual(received.transactions.count, 1)
            let t = try XCTUnwrap(received.transactions.first)
            XCTAssertEqual(t.sender, "list@example.org")
            let file = try FileSystem.readAll(peer.path(of: spooled, in: .queued))
            XCTAssertEqual(Array(file[Int(t.messageStart)..<Int(t.messageEnd)]), Array("Subject: plain\r\n\r\n..dot line\r\nbody\r\n".utf8))
            got += t.recipients.map(\.address)
            XCTAssertEqual(DistributePlan.decide(job: .bsmtp(received, bytes: nil), name: spooled,
                                                 settings: try SiteConfiguration.parse("SPOOL_DIR=/s\nDIST_SECRET=/k\nDIST_FORWARD=x.test\nDIST_FORWARD_THRESHOLD=1\n", file: "c").distribute),
                           .keep(.isShare))
        }
        XCTAssertEqual(got, Array(recipients[3...]), "SELF keeps 1-3; dist1 4-9; dist2 10-12")
    }

    func testTamperingAWrongKeyOrAMissingSignatureIsRefusedAndNothingIsSpooled() throws {
        let (name, job, path) = try mergeJob(rows: 8)
        let content = try XCTUnwrap(try shares(of: job, name: name, path: path, forward: "0*SELF dist1.test").first)
        let good = String(decoding: try ShareMessage.build(content, key: try key(), time: now).bytes, as: UTF8.self)
        let lines = good.components(separatedBy: "\r\n")
        let bodyStart = try XCTUnwrap(lines.firstIndex(of: "")) + 1
        var flipped = lines
        var first = Array(flipped[bodyStart].utf8)
        first[10] = first[10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        flipped[bodyStart] = String(decoding: first, as: UTF8.self)
        let cases: [(String, String, ShareFault)] = [
            ("content", flipped.joined(separator: "\r\n"), .refused("share \(content.id): bad signature (changed on the way, or signed with another key)")),
            ("pool", good.replacingOccurrences(of: "X-Poold-Origin-Pool: A", with: "X-Poold-Origin-Pool: B"),
             .refused("share \(content.id): bad signature (changed on the way, or signed with another key)")),
            ("rows", good.replacingOccurrences(of: "X-Poold-Rows: 1-8", with: "X-Poold-Rows: 1-7"),
             .refused("share \(content.id): bad signature (changed on the way, or signed with another key)")),
            ("time", good.replacingOccurrences(of: "X-Poold-Time: \(now)", with: "X-Poold-Time: \(now + 1)"),
             .refused("share \(content.id): bad signature (changed on the way, or signed with another key)")),
            ("helo", good.replacingOccurrences(of: "X-Poold-Origin-Helo: mx.primary.example", with: "X-Poold-Origin-Helo: mx.other.example"),
             .refused("share \(content.id): bad signature (changed on the way, or signed with another key)")),
            ("no signature", lines.filter { !$0.hasPrefix("X-Poold-Signature:") }.joined(separator: "\r\n"),
             .refused("share \(content.id): no X-Poold-Signature header")),
            ("bad signature form", good.replacingOccurrences(of: "X-Poold-Signature: hmac-sha256 ", with: "X-Poold-Signature: hmac-md5 "),
             .refused("share \(content.id): X-Poold-Signature is not 'hmac-sha256 <64 hex digits>'")),
            ("twice", good.replacingOccurrences(of: "X-Poold-Share: 1/1\r\n", with: "X-Poold-Share: 1/1\r\nX-Poold-Share: 1/1\r\n"),
             .malformed("the x-poold-share header is given twice")),
            ("garbage", "Hello, this is not a share.\n\nJust text.\n", .malformed("not a poold share (no X-Poold-Share-Version header)")),
            ("empty", "", .malformed("empty input")),
            ("no body", "X-Poold-Share-Version: 1\n", .malformed("the message has no body (no empty line after the header block)")),
            ("not base64", lines[..<bodyStart].joined(separator: "\r\n") + "\r\nthis is not base64!\r\n", .malformed("the body is not base64: byte 33 is not base64")),
            ("truncated", lines[..<(bodyStart + 1)].joined(separator: "\r\n") + "QUJD" + "QQ\r\n", .malformed("the body is not base64: the base64 body ends in the middle of a quantum (truncated?)")),
        ]
        for (label, text, fault) in cases {
            XCTAssertEqual(try receive(Array(text.utf8)), .failure(fault), label)
        }
        XCTAssertEqual(try receive(Array(good.utf8), key: try key("another key, 32 bytes or so long")),
                       .failure(.refused("share \(content.id): bad signature (changed on the way, or signed with another key)")))
        XCTAssertEqual(try peer.jobs(), [], "nothing spooled")
        XCTAssertFalse(try FileSystem.names(in: peer.root).contains { $0.hasPrefix(".tmp.") }, "no temporary file left")
        XCTAssertEqual(ShareFault.refused("x").exitStatus, 77)
        XCTAssertEqual(ShareFault.malformed("x").exitStatus, 65)
        XCTAssertEqual(ShareFault.temporary("x").exitStatus, 75)
    }

    func testAShareMessageSpooledAsAJobOnThePrimaryIsAShareAndCarriesTheMessageUnchanged() throws {
        let (name, job, path) = try mergeJob(rows: 6)
        let content = try XCTUnwrap(try shares(of: job, name: name, path: path, forward: "0*SELF dist1.test").first)
        let (spooled, metadata) = try ShareMessage.spool(content, key: try key(), time: now, in: primary)
        XCTAssertEqual(spooled.pool, Pool("A"), "sent through the origin job's pool")
        let bytes = try FileSystem.readAll(primary.path(of: spooled, in: .queued))
        let messageJob = try BSMTPReader.parse(bytes)
        XCTAssertTrue(messageJob.isShare, "never distributed again")
        XCTAssertEqual(messageJob.hello, "poold-share \(content.id)")
        let t = try XCTUnwrap(messageJob.transactions.first)
        XCTAssertEqual(messageJob.transactions.count, 1)
        XCTAssertEqual(t.sender, "postmaster@mx.primary.example")
        XCTAssertEqual(t.recipients.map(\.address), ["poold@dist1.test"])
        XCTAssertEqual(t.stuffedLines, 0)
        let message = Array(bytes[Int(t.messageStart)..<Int(t.messageEnd)])
        XCTAssertEqual(message, try ShareMessage.build(content, key: try key(), time: now).bytes)
        var folded = String(decoding: message, as: UTF8.self)
        folded = folded.replacingOccurrences(of: "X-Poold-Signature: hmac-sha256 ", with: "X-Poold-Signature: hmac-sha256\r\n\t")
        guard case .success(.spooled(_, let received, _)) = try receive(Array(folded.utf8)) else { return XCTFail("a folded signature") }
        XCTAssertEqual(received, metadata)
        XCTAssertThrowsError(try ShareMessage.build(try ShareContent(PlannedShare(index: 1, count: 1, peer: .local, kind: .merge, items: 0..<6),
                                                                     of: job, path: path, origin: content.origin), key: try key(), time: now))
        XCTAssertThrowsError(try ShareContent(PlannedShare(index: 1, count: 1, peer: .local, kind: .merge, items: 0..<7),
                                              of: job, path: path, origin: content.origin), "rows outside the job")
        XCTAssertThrowsError(try ShareContent(PlannedShare(index: 1, count: 1, peer: .local, kind: .bsmtp, items: 0..<6),
                                              of: job, path: path, origin: content.origin), "a plain share of a merge job")
        var badHelo = content.origin
        badHelo.heloName = "not a host"
        XCTAssertThrowsError(try ShareContent(content.share, of: job, path: path, origin: badHelo), "a HELO name the peer would refuse")
        var badToken = content.origin
        badToken.token = "two words"
        XCTAssertThrowsError(try ShareContent(content.share, of: job, path: path, origin: badToken), "an id with a space")
    }

    func testFreshnessAllowsClockSkewAndRefusesOldOrFutureShares() throws {
        let (name, job, path) = try mergeJob(rows: 4)
        let content = try XCTUnwrap(try shares(of: job, name: name, path: path, forward: "0*SELF dist1.test").first)
        let message = try ShareMessage.build(content, key: try key(), time: now).bytes
        XCTAssertEqual(try receive(message, at: now + 7 * 86_400 + 1),
                       .failure(.refused("share \(content.id): too old: signed 7d0h0m ago, the limit is 7d")))
        XCTAssertEqual(try receive(message, at: now - 16 * 60),
                       .failure(.refused("share \(content.id): signed 16m in the future (more than the 15m of clock skew allowed)")))
        guard case .success(.spooled) = try receive(message, at: now - 14 * 60) else { return XCTFail("14 minutes of skew is allowed") }
        guard case .success(.alreadySpooled) = try receive(message, at: now + 7 * 86_400) else { return XCTFail("a redelivery") }
        XCTAssertEqual(try peer.jobs().count, 1)
    }

    func testARedeliveryIsSpooledOnceEvenAfterTheJobIsGone() throws {
        let (name, job, path) = try mergeJob(rows: 4)
        let content = try XCTUnwrap(try shares(of: job, name: name, path: path, forward: "0*SELF dist1.test").first)
        let first = try ShareMessage.build(content, key: try key(), time: now)
        let resent = try ShareMessage.build(content, key: try key(), time: now + 600)
        XCTAssertEqual(first.id, resent.id, "a share rebuilt after a crash keeps its id")
        XCTAssertNotEqual(first.bytes, resent.bytes)
        guard case .success(.spooled(let spooled, _, nil)) = try receive(first.bytes) else { return XCTFail() }
        XCTAssertEqual(try receive(first.bytes), .success(.alreadySpooled(metadata: content.metadata(recipient: "poold@dist1.test", time: now))))
        try FileSystem.unlink(peer.path(of: spooled, in: .queued))  // delivered and removed
        guard case .success(.alreadySpooled) = try receive(resent.bytes, at: now + 700) else { return XCTFail("replayed after delivery") }
        XCTAssertEqual(try peer.jobs(), [])

        // Another job that reuses the name is another job: its shares have other ids.
        try FileSystem.unlink(path)
        usleep(10_000)
        let (_, again, againPath) = try mergeJob(rows: 4)
        let next = try XCTUnwrap(try shares(of: again, name: name, path: againPath, forward: "0*SELF dist1.test").first)
        XCTAssertNotEqual(next.id, content.id)
        guard case .success(.spooled) = try receive(try ShareMessage.build(next, key: try key(), time: now).bytes) else { return XCTFail() }
    }

    func testTheReplayRecordsAreSweptAfterTheFreshnessWindow() throws {
        let store = ReplayStore(spool: peer)
        try store.record(id: "old", job: try XCTUnwrap(JobName("Ashare-1.MAIL")), time: now)
        try store.record(id: "new", job: try XCTUnwrap(JobName("Ashare-2.MAIL")), time: now)
        let old = store.directory + "/" + (try ReplayStore.recordName(for: "old"))
        var times = [timespec(tv_sec: Int(now) - 9 * 86_400, tv_nsec: 0), timespec(tv_sec: Int(now) - 9 * 86_400, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, old, &times, 0), 0)
        XCTAssertEqual(store.sweep(lifetime: ShareFreshness().recordLifetime, now: Double(now)), 1)
        XCTAssertFalse(try store.contains(id: "old"))
        XCTAssertTrue(try store.contains(id: "new"))
        XCTAssertEqual(store.sweep(lifetime: 0, now: Double(now) + 60), 0, "at most one sweep an hour")
    }
}
