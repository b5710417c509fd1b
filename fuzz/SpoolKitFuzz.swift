// libFuzzer entry for SpoolKit's parsers, compiled together with SpoolKit's sources by
// scripts/fuzz. POOLD_FUZZ_TARGET picks the parser: `bsmtp` (the job reader) or `config`
// (the site configuration). Neither may crash; what the BSMTP reader accepts must hold
// its promises (every address sendable, message bounds inside the file).

#if canImport(Glibc)
import Glibc
#endif

let fuzzTarget = getenv("POOLD_FUZZ_TARGET").map { String(cString: $0) } ?? "bsmtp"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch fuzzTarget {
    case "config":
        if let config = try? SiteConfiguration.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.cfg") {
            precondition(!config.spoolDirectory.isEmpty)
            for w in config.workers { precondition(w.settings.count >= 1) }
        }
    default:
        if let job = try? BSMTPReader.parse(bytes) {
            for tx in job.transactions {
                precondition(tx.messageStart <= tx.messageEnd && tx.messageEnd <= Int64(size))
                precondition(!tx.recipients.isEmpty)
                for r in tx.recipients { precondition(EnvelopeSyntax.problem(address: r.address, allowNull: false) == nil) }
                precondition(EnvelopeSyntax.problem(address: tx.sender, allowNull: true) == nil)
            }
        }
    }
    return 0
}
