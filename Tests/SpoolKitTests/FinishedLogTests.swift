// The finished log (SpoolKit/README.md, "A job's life", step 5): what a restart removes,
// and what it must leave alone.

import XCTest
@testable import SpoolKit

final class FinishedLogTests: XCTestCase {
    private var directory = ""
    private var spool: Spool { Spool(root: directory) }

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "finished-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try spool.prepare()
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    private func job(_ name: String, in place: JobPlace = .queued) throws -> (JobName, FileStatus) {
        let jobName = try XCTUnwrap(JobName(name))
        let path = spool.path(of: jobName, in: place)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("MAIL FROM:<a@b>\r\n".utf8)))
        return (jobName, try FileSystem.status(path))
    }

    func testARestartRemovesTheFinishedJobsTheLogNamesAndTheirJournalsThenTheLog() throws {
        let (a, aStatus) = try job("A1.MAIL")
        let (b, bStatus) = try job("B2.MAIL", in: .deferred)
        let (c, _) = try job("A3.MAIL")
        let journal = spool.journalPath(for: a, inode: aStatus.inode)
        XCTAssertTrue(FileManager.default.createFile(atPath: journal, contents: Data("D 0 0 250 ok\n".utf8)))
        let log = try FinishedLog(spool: spool, serial: 1)
        try log.append(FinishedMark(name: a, place: .queued, inode: aStatus.inode, changed: aStatus.changed))
        try log.append(FinishedMark(name: b, place: .deferred, inode: bStatus.inode, changed: bStatus.changed))
        log.close()

        XCTAssertEqual(try FinishedLog.recover(spool), 2)
        XCTAssertFalse(FileSystem.exists(spool.path(of: a, in: .queued)))
        XCTAssertFalse(FileSystem.exists(journal), "the journal goes with its job")
        XCTAssertFalse(FileSystem.exists(spool.path(of: b, in: .deferred)))
        XCTAssertTrue(FileSystem.exists(spool.path(of: c, in: .queued)), "a job the log does not name stays")
        XCTAssertEqual(try FinishedLog.segments(in: spool), [], "the log is removed once read")
    }

    func testAJobThatReusedTheNameOrTheInodeIsNotRemoved() throws {
        let (a, aStatus) = try job("A1.MAIL")
        let log = try FinishedLog(spool: spool, serial: 7)
        // The finished job was unlinked, and a new job took its name (whatever its inode).
        try log.append(FinishedMark(name: a, place: .queued, inode: aStatus.inode, changed: aStatus.changed - 1))
        try log.append(FinishedMark(name: a, place: .queued, inode: aStatus.inode + 1, changed: aStatus.changed))
        log.close()
        XCTAssertEqual(try FinishedLog.recover(spool), 0)
        XCTAssertTrue(FileSystem.exists(spool.path(of: a, in: .queued)))
    }

    func testALineTornByACrashIsIgnored() throws {
        let (a, aStatus) = try job("A1.MAIL")
        let log = try FinishedLog(spool: spool, serial: 2)
        log.close()
        let fd = try FileDescriptor.open(log.path, O_WRONLY | O_APPEND)
        let line = FinishedMark(name: a, place: .queued, inode: aStatus.inode, changed: aStatus.changed).line()
        try fd.writeAll(Array(line.dropLast()))  // no line end: the write never finished
        fd.close()
        XCTAssertEqual(try FinishedLog.recover(spool), 0)
        XCTAssertTrue(FileSystem.exists(spool.path(of: a, in: .queued)))
    }

    func testAMarkReadsBackAsWritten() throws {
        let mark = FinishedMark(name: try XCTUnwrap(JobName("-free.MAIL")), place: .deferred, inode: 1_234_567, changed: 1_700_000_000_123_456_789)
        let line = String(decoding: mark.line(), as: UTF8.self)
        XCTAssertEqual(line, "d 1234567 1700000000123456789 -free.MAIL\n")
        XCTAssertEqual(FinishedMark(line: Substring(line.dropLast())), mark)
        XCTAssertNil(FinishedMark(line: "x 1 2 A1.MAIL"))
        XCTAssertNil(FinishedMark(line: "q 1 2 not-a-job"))
    }

    func testANameFromAListingIsTheSameAsFromAString() {
        for name in ["A00012345.MAIL", "-abc.MAIL", "00012345.MAIL", "A1.mail", ".A1.MAIL", ".MAIL", "a/b.MAIL", "Zshare-0123456789abcdef.MAIL"] {
            let fromBytes = Array(name.utf8).withUnsafeBufferPointer { JobName(bytes: $0) }
            XCTAssertEqual(fromBytes, JobName(name), name)
        }
        let a = JobName("A00012345.MAIL")!
        XCTAssertEqual(a.pool, Pool(byte: UInt8(ascii: "A")))
        XCTAssertEqual(a.id, "00012345")
        XCTAssertEqual(a.spoolID, 12345)
        XCTAssertNil(JobName("A1234567890123456789.MAIL")!.spoolID, "more than 18 digits")
    }
}
