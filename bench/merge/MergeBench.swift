// Measures SpoolKit's mail-merge path on one core, compiled with -O together with
// SpoolKit's sources by bench/merge/run:
//   merge-bench generate FILE ROWS [--template-kb K]   a job of ROWS rows (~60 bytes each)
//   merge-bench check FILE                             the check pass: seconds, peak RSS
//   merge-bench render FILE [ROWS]                     render every row (or ROWS) into one
//                                                      reused buffer and stream the wire form
// Each command prints one line of `key=value` figures.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

@main
enum MergeBench {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first, arguments.count >= 2 else {
            print("usage: merge-bench generate FILE ROWS [--template-kb K] | check FILE | render FILE [ROWS]")
            exit(64)
        }
        let path = arguments[1]
        switch command {
        case "generate":
            let rows = Int(arguments.count > 2 ? arguments[2] : "1000000") ?? 1_000_000
            let kb = arguments.firstIndex(of: "--template-kb").flatMap { Int(arguments[$0 + 1]) } ?? 2
            try generate(path: path, rows: rows, templateKB: kb)
        case "check":
            let start = monotonic()
            let job = try MergeReader.read(path: path)
            let seconds = monotonic() - start
            let size = try FileSystem.status(path).size
            print("check rows=\(job.rowCount) bytes=\(size) seconds=\(String(format: "%.3f", seconds)) "
                  + "rows_per_s=\(Int(Double(job.rowCount) / seconds)) peak_rss_kib=\(peakRSS()) index_entries=\(job.rowIndex.offsets.count)")
        case "render":
            let job = try MergeReader.read(path: path)
            let limit = arguments.count > 2 ? min(Int(arguments[2]) ?? job.rowCount, job.rowCount) : job.rowCount
            let reader = try MergeRowReader(path: path, job: job)
            var renderer = MergeRenderer(job: job, stem: "A000000001", heloName: "bench.example.org")
            var row = MergeRow()
            var message = RenderedMessage()
            var wire: Int64 = 0
            var checksum: UInt64 = 0
            let start = monotonic()
            var n = 0
            while n < limit, try reader.next(into: &row) {
                try renderer.render(row, into: &message)
                try message.stream { piece in
                    wire += Int64(piece.count)
                    checksum &+= UInt64(piece.last ?? 0)
                }
                n += 1
            }
            let seconds = monotonic() - start
            print("render rows=\(n) seconds=\(String(format: "%.3f", seconds)) rows_per_s=\(Int(Double(n) / seconds)) "
                  + "avg_wire_bytes=\(wire / Int64(max(n, 1))) MB_per_s=\(String(format: "%.0f", Double(wire) / seconds / 1e6)) "
                  + "peak_rss_kib=\(peakRSS()) checksum=\(checksum)")
        default:
            print("unknown command \(command)")
            exit(64)
        }
    }

    /// A job like a real mailing: address, names, a number, a city; a template of about
    /// `templateKB` kB with a few substitutions, a VERP sender and a conditional block.
    static func generate(path: String, rows: Int, templateKB: Int) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        defer { fd.close() }
        try fd.writeAll(Array("MERGE\r\nMAIL FROM:<news-bounces+&*VERP;@lists.example.org> BODY=8BITMIME\r\nTABLE\r\nEMAIL,FIRST,LAST,BALANCE,CITY\r\n".utf8))
        let cities = ["Paris", "Berlin", "\"Washington, D.C.\"", "Zürich", ""]
        var chunk: [UInt8] = []
        for i in 0..<rows {
            chunk += Array("subscriber\(i)@example\(i % 97).com,First\(i % 1000),Last\(i % 777),\(i % 200).\(i % 10)0,\(cities[i % cities.count])\r\n".utf8)
            if chunk.count > 1 << 20 {
                try fd.writeAll(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        try fd.writeAll(chunk)
        var template = "From: News <news@lists.example.org>\r\nTo: &FIRST; &LAST; <&*TO;>\r\nSubject: Your balance, &FIRST;\r\n"
            + "Date: &*DATE;\r\nMessage-ID: <&*MSGID;>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + "Dear &FIRST; &LAST;,\r\n..BB &BALANCE > 100 AND &CITY\r\nyour balance of &BALANCE; is due in &CITY;.\r\n..ELSE\r\nnothing is due.\r\n..EB\r\n"
        let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.\r\n"
        while template.utf8.count < templateKB * 1024 - 100 { template += filler }
        template += "Unsubscribe: https://lists.example.org/u?r=&*ROW;&amp;l=news\r\n.\r\n"
        try fd.writeAll(Array(".\r\nDATA\r\n".utf8) + Array(template.utf8))
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func peakRSS() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss)
    }
}
