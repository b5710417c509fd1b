// Reading a merge job's rows back: from any row through the sparse index (the same rows as
// reading from the start), a large table checked with bounded memory, and a Distribute
// share that renders exactly as the whole job does.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest
@testable import SpoolKit

final class MergeRowReaderTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "merge-rows-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes a job of `count` rows to a file 1,000 rows at a time (the test never holds it).
    func writeJob(_ name: String, rows count: Int, template: String = "To: &NAME; <&*TO;>\nSubject: row &*ROW;\n\n&NOTE;\n",
                  merge: String = "MERGE") throws -> String {
        let path = directory + "/" + name
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        defer { fd.close() }
        try fd.writeAll(Array("\(merge)\nMAIL FROM:<bounce+&*VERP;@lists.example.org>\nTABLE\nEMAIL,NAME,NOTE\n".utf8))
        var chunk: [UInt8] = []
        for i in 1...count {
            // Every kind of line: quoted, CRLF, dot-stuffed, empty values.
            switch i % 4 {
            case 0: chunk += Array("user\(i)@example.com,\"Name, \(i)\",\"a \"\"quote\"\"\"\r\n".utf8)
            case 1: chunk += Array("..dot\(i)@example.com,N\(i),.lead\n".utf8)
            case 2: chunk += Array("user\(i)@example.net,,\n".utf8)
            default: chunk += Array("u\(i)@example.org,Zoë \(i),x\n".utf8)
            }
            if chunk.count > 64_000 || i == count {
                try fd.writeAll(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        try fd.writeAll(Array(".\nDATA\n\(template).\nQUIT\n".utf8))
        return path
    }

    func rows(_ reader: MergeRowReader, limit: Int = .max) throws -> [(Int, Int, [String])] {
        var row = MergeRow()
        var out: [(Int, Int, [String])] = []
        while out.count < limit, try reader.next(into: &row) {
            out.append((row.index, row.line, (0..<row.fieldCount).map { row.text($0) }))
        }
        return out
    }

    func testReadingFromAnyRowGivesTheSameRowsAsReadingFromTheStart() throws {
        let path = try writeJob("A1.MAIL", rows: 1000)
        let job = try MergeReader.read(path: path)
        XCTAssertEqual(job.rowCount, 1000)
        XCTAssertEqual(job.rowIndex.stride, RowIndex.initialStride)
        XCTAssertEqual(job.rowIndex.offsets.count, (1000 + 63) / 64)
        let all = try rows(MergeRowReader(path: path, job: job))
        XCTAssertEqual(all.count, 1000)
        XCTAssertEqual(all[0].2, [".dot1@example.com", "N1", ".lead"])
        XCTAssertEqual(all[3].2, ["user4@example.com", "Name, 4", "a \"quote\""])
        XCTAssertEqual(all.map(\.0), Array(0..<1000))
        XCTAssertEqual(all.map(\.1), Array(5..<1005), "row i is on line header + 1 + i")
        let reader = try MergeRowReader(path: path, job: job)
        for start in [0, 1, 63, 64, 65, 127, 128, 500, 959, 960, 998, 999, 1000, 7, 0] {
            try reader.seek(toIndex: start)
            let tail = try rows(reader, limit: 70)
            XCTAssertEqual(tail.map(\.0), Array(start..<min(start + 70, 1000)), "from \(start)")
            XCTAssertTrue(tail.elementsEqual(all[start..<min(start + 70, 1000)]) { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 }, "from \(start)")
        }
        try reader.seek(toRowNumber: 42)
        var row = MergeRow()
        XCTAssertTrue(try reader.next(into: &row))
        XCTAssertEqual(row.number, 42)
        XCTAssertEqual(row.index, 41)
        XCTAssertThrowsError(try reader.seek(toIndex: 1001))
        XCTAssertThrowsError(try reader.seek(toRowNumber: 0)) { XCTAssertTrue("\($0)".contains("no row 0 in this job (rows 1...1000)"), "\($0)") }
    }

    func testTheIndexDoublesItsStrideInsteadOfGrowingPastItsLimit() {
        var index = RowIndex()
        let rows = RowIndex.maxEntries * RowIndex.initialStride * 2
        for i in 0..<rows { index.note(row: i, at: Int64(i) * 10) }
        XCTAssertEqual(index.stride, RowIndex.initialStride * 2)
        XCTAssertEqual(index.offsets.count, RowIndex.maxEntries)
        index.note(row: rows, at: Int64(rows) * 10)
        XCTAssertEqual(index.stride, RowIndex.initialStride * 4, "one row more: the stride doubles again")
        XCTAssertEqual(index.offsets.count, RowIndex.maxEntries / 2 + 1)
        for probe in [0, 1, 127, 128, 129, 255, 256, 257, rows / 2, rows - 1, rows] {
            let entry = index.entry(atOrBefore: probe)
            XCTAssertEqual(entry?.offset, Int64(entry?.index ?? -1) * 10)
            XCTAssertLessThanOrEqual(entry?.index ?? .max, probe)
            XCTAssertLessThan(probe - (entry?.index ?? 0), index.stride)
        }
    }

    /// VmHWM (peak resident set) can be reset through /proc/self/clear_refs: the check of a
    /// table several times larger than the allowed growth proves it is not held.
    func testA200000RowTableIsCheckedWithBoundedMemory() throws {
        let path = try writeJob("A2.MAIL", rows: 200_000)
        let size = try FileSystem.status(path).size
        XCTAssertGreaterThan(size, 7_000_000)
        guard let before = residentKiB("VmRSS"), resetPeak() else {
            return XCTFail("/proc/self/clear_refs is not writable here: the peak resident set cannot be measured")
        }
        let job = try MergeReader.read(path: path)
        let peak = try XCTUnwrap(residentKiB("VmHWM"))
        XCTAssertEqual(job.rowCount, 200_000)
        XCTAssertLessThan(job.rowIndex.offsets.count, 200_000 / 64 + 2)
        XCTAssertLessThan(peak - before, 4 * 1024, "the check pass grew the resident set by \(peak - before) KiB for a \(size / 1024) KiB table")

        // The last rows, straight through the index; and rendering one of them.
        let reader = try MergeRowReader(path: path, job: job)
        try reader.seek(toIndex: 199_998)
        let last = try rows(reader)
        XCTAssertEqual(last.map { $0.2[0] }, ["u199999@example.org", "user200000@example.com"])
        var renderer = MergeRenderer(job: job, stem: "A2", heloName: "h.example")
        var row = MergeRow()
        var message = RenderedMessage()
        try reader.seek(toRowNumber: 200_000)
        XCTAssertTrue(try reader.next(into: &row))
        try renderer.render(row, into: &message)
        XCTAssertEqual(String(decoding: message.bytes, as: UTF8.self), "To: Name, 200000 <user200000@example.com>\r\nSubject: row 200000\r\n\r\na \"quote\"\r\n")
        XCTAssertEqual(message.sender, "bounce+user200000=example.com@lists.example.org")
    }

    func testAShareRendersExactlyAsTheWholeJobDoes() throws {
        let path = try writeJob("A000777.MAIL", rows: 300, template: "Message-ID: <&*MSGID;>\nRow: &*ROW;\n\n&NAME; &NOTE;\n")
        let job = try MergeReader.read(path: path)
        let whole = try renderAll(path: path, job: job, stem: "A000777", helo: "primary.example.org")
        var shares: [RenderedMessage] = []
        for (i, slice) in [0..<75, 75..<225, 225..<300].enumerated() {
            var bytes: [UInt8] = []
            try MergeJobWriter.writeShare(of: job, path: path, rows: slice, share: .init(index: i + 1, count: 3),
                                          stem: "A000777", heloName: "primary.example.org") { bytes += $0 }
            let sharePath = directory + "/S\(i).MAIL"
            try Data(bytes).write(to: URL(fileURLWithPath: sharePath))
            guard case .merge(let share) = try JobReader.read(path: sharePath) else { return XCTFail("share \(i + 1) is not a merge job") }
            XCTAssertEqual(share.parameters, MergeParameters(stem: "A000777", firstRow: slice.lowerBound + 1, heloName: "primary.example.org",
                                                             share: .init(index: i + 1, count: 3)))
            XCTAssertEqual(share.rowCount, slice.count)
            // Rendered on the peer: another file name, another HELO_NAME.
            shares += try renderAll(path: sharePath, job: share, stem: "S\(i)", helo: "peer.example.net")
        }
        XCTAssertEqual(shares.count, whole.count)
        for (a, b) in zip(whole, shares) {
            XCTAssertEqual(a.bytes, b.bytes)
            XCTAssertEqual(a.sender, b.sender)
            XCTAssertEqual(a.recipient, b.recipient)
            XCTAssertEqual(a.rowNumber, b.rowNumber)
        }
        XCTAssertEqual(MergeRendering.text(whole[299]), "Message-ID: <A000777.300@primary.example.org>\r\nRow: 300\r\n\r\nName, 300 a \"quote\"\r\n")
    }

    func renderAll(path: String, job: MergeJob, stem: String, helo: String) throws -> [RenderedMessage] {
        let reader = try MergeRowReader(path: path, job: job)
        var renderer = MergeRenderer(job: job, stem: stem, heloName: helo)
        var row = MergeRow()
        var message = RenderedMessage()
        var out: [RenderedMessage] = []
        while try reader.next(into: &row) {
            try renderer.render(row, into: &message)
            out.append(message)
        }
        return out
    }

    func testAJobThatChangedAfterItsCheckFailsTheRowInsteadOfSendingAGuess() throws {
        let path = try writeJob("A3.MAIL", rows: 10)
        let job = try MergeReader.read(path: path)
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "user4@example.com,\"Name, 4\"", with: "user4@example.com,\"Name 4")
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let reader = try MergeRowReader(path: path, job: job)
        var row = MergeRow()
        for _ in 0..<3 { XCTAssertTrue(try reader.next(into: &row)) }
        XCTAssertThrowsError(try reader.next(into: &row)) { error in
            XCTAssertEqual((error as? MergeError)?.row, 4)
            XCTAssertTrue("\(error)".contains("the job changed since it was checked"), "\(error)")
        }
    }

    private func residentKiB(_ key: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    private func resetPeak() -> Bool {
        guard let fd = try? FileDescriptor.open("/proc/self/clear_refs", O_WRONLY) else { return false }
        defer { fd.close() }
        return (try? fd.writeAll(Array("5".utf8))) != nil
    }
}
