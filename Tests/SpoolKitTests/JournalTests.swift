import XCTest
@testable import SpoolKit

final class JournalTests: XCTestCase {
    func testAJournalRecordsDecisionsAndIgnoresATornLastLine() throws {
        let dir = NSTemporaryDirectory() + "journal-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/A1.MAIL.42.journal"
        var journal = try Journal(path: path)
        XCTAssertFalse(journal.exists)
        try journal.append([.init(.delivered, RecipientKey(0, 0), reply: "250 ok"), .init(.failed, RecipientKey(0, 2), reply: "550\r\nno")])
        try journal.append([.init(.deferred, RecipientKey(0, 1), reply: "451 later")])
        try journal.recordAttempt(at: 1000, next: 1300)
        // A crash in the middle of a line: no line end, so it does not count.
        let fd = try FileDescriptor.open(path, O_WRONLY | O_APPEND)
        try fd.writeAll(Array("D 0 1 250 o".utf8))
        fd.close()
        let read = try Journal(path: path)
        XCTAssertEqual(read.decided, [RecipientKey(0, 0): .delivered, RecipientKey(0, 2): .failed])
        XCTAssertEqual(read.deferredReplies[RecipientKey(0, 1)], "451 later")
        XCTAssertEqual(read.attempts, 1)
        XCTAssertEqual(read.nextAttempt, 1300)
    }

    func testJournalsWhoseJobIsGoneAreOrphans() {
        let spool = Spool(root: "/s")
        let journals: Set<String> = ["/s/.state/A1.MAIL.10.journal", "/s/.state/A2.MAIL.11.journal", "/s/.state/A1.MAIL.99.journal"]
        XCTAssertEqual(Set(spool.orphans(among: journals, live: ["A1.MAIL.10", "A2.MAIL.11"])), ["/s/.state/A1.MAIL.99.journal"],
                       "a journal of an old job with the same name but another inode is an orphan")
    }
}
