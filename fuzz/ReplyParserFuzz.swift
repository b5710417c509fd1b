// libFuzzer entry for SMTPClient's reply parser, compiled with Protocol/Reply.swift (and
// Outcome.swift, for the enhanced status) by scripts/fuzz: any byte stream, cut anywhere,
// gives replies or a syntax error, never a crash, and every reply has a code from 200 to 599.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var parser = ReplyParser()
    let cut = size > 0 ? Int(bytes[0]) % (size + 1) : 0
    for piece in [bytes[..<cut], bytes[cut...]] {
        parser.feed(Array(piece))
        while true {
            guard let reply = try? parser.next() else { return 0 }
            precondition((200...599).contains(reply.code))
        }
    }
    return 0
}
