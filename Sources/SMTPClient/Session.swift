#if canImport(Glibc)
@preconcurrency import Glibc
#endif

// A connection to one relay, kept open across transactions: connect, greeting, EHLO (HELO
// when EHLO is refused), then transactions until the relay drops it or we say QUIT.
// The loop here only moves bytes and keeps deadlines; `TransactionMachine` decides.
// While writing a large pipelined group it keeps reading, so a relay that answers while
// we still write can never deadlock us (RFC 2920 §3.3, "must not block").
// Every wait has a deadline from `SMTPTimeouts` (RFC 5321 §4.5.3.2 defaults).

public struct SMTPTimeouts: Sendable, Equatable {
    public var connect: Double = 30       // Postfix smtp_connect_timeout
    public var greeting: Double = 300     // 220 greeting and the EHLO/HELO reply
    public var command: Double = 300      // MAIL, RCPT, RSET, QUIT
    public var dataInit: Double = 120     // the reply to DATA
    public var dataBlock: Double = 180    // each write of the message
    public var dataDone: Double = 600     // the reply to the final dot
    public init() {}
}

public struct SessionSettings: Sendable {
    public var heloName: String
    public var timeouts: SMTPTimeouts
    /// A connection idle longer than this is probed with RSET before it is used again,
    /// so a relay that closed it quietly costs a reconnect, not a deferred message.
    public var idleProbeAfter: Double = 10
    public init(heloName: String, timeouts: SMTPTimeouts = SMTPTimeouts()) {
        self.heloName = heloName
        self.timeouts = timeouts
    }
}

/// The message of a transaction as it goes on the wire: dot-stuffed, CRLF line ends,
/// without the final `.` line.
public protocol MessageSource {
    var wireSize: Int64 { get }
    func stream(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws
}

public struct SessionError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case transport(TransportError)
        /// The relay refused the session (greeting, or both EHLO and HELO).
        case refused(SMTPReply)
        case syntax(ReplySyntaxError)
    }
    public var kind: Kind
    /// What we were doing: "reading the greeting", "after EHLO".
    public var step: String

    public var description: String {
        switch kind {
        case .transport(let e): return "\(e) (\(step))"
        case .refused(let r): return "\(r) (\(step))"
        case .syntax(let e): return "\(e) (\(step))"
        }
    }
}

public final class SMTPSession {
    public let host: String
    public let port: UInt16
    public let settings: SessionSettings
    public private(set) var capabilities = Capabilities()
    /// The greeting's text, for status.
    public private(set) var greeting: SMTPReply?
    /// Transactions attempted on this connection.
    public private(set) var transactionCount = 0
    /// The remote address actually connected to.
    public var peer: String { socket?.peer ?? "\(host):\(port)" }
    public var isOpen: Bool { socket != nil }

    private var socket: Socket?
    private var parser = ReplyParser()
    private var needsReset = false
    private var lastUsed = 0.0
    private var readBuffer = [UInt8](repeating: 0, count: 16384)

    public init(host: String, port: UInt16, settings: SessionSettings) {
        self.host = host
        self.port = port
        self.settings = settings
    }

    deinit { socket = nil }

    /// Connects and introduces ourselves.
    public func open() throws(SessionError) {
        let t = settings.timeouts
        var step = "connecting"
        do {
            socket = try Socket.connect(host: host, port: port, timeout: t.connect)
            parser = ReplyParser()
            needsReset = false
            step = "reading the greeting"
            let hello = try readReply(until: .after(t.greeting))
            greeting = hello
            guard hello.code == 220 else { throw SessionError(kind: .refused(hello), step: step) }
            step = "after EHLO"
            try write(["EHLO \(settings.heloName)"], until: .after(t.command))
            let ehlo = try readReply(until: .after(t.greeting))
            if ehlo.isPositiveCompletion {
                capabilities = Capabilities(ehlo: ehlo)
            } else if ehlo.code == 421 || ehlo.code == 554 {
                throw SessionError(kind: .refused(ehlo), step: step)
            } else {
                step = "after HELO"
                try write(["HELO \(settings.heloName)"], until: .after(t.command))
                let helo = try readReply(until: .after(t.greeting))
                guard helo.isPositiveCompletion else { throw SessionError(kind: .refused(helo), step: step) }
                capabilities = Capabilities()
            }
            lastUsed = Deadline.now()
        } catch let error as SessionError {
            socket = nil
            throw error
        } catch let error as TransportError {
            socket = nil
            throw SessionError(kind: .transport(error), step: step)
        } catch let error as ReplySyntaxError {
            socket = nil
            throw SessionError(kind: .syntax(error), step: step)
        } catch {
            socket = nil
            throw SessionError(kind: .transport(.io("\(error)")), step: step)
        }
    }

    /// Is the connection still worth using? A relay that closed it or said 421 while we
    /// were idle is noticed here, before a transaction is spent on it.
    public func checkAlive() -> Bool {
        guard let socket else { return false }
        guard (try? socket.wait(for: Int16(POLLIN), until: Deadline(seconds: 0))) == false else {
            self.socket = nil  // readable while idle: EOF or an unsolicited 421
            return false
        }
        if Deadline.now() - lastUsed > settings.idleProbeAfter {
            do {
                try write(["RSET"], until: .after(settings.timeouts.command))
                guard try readReply(until: .after(settings.timeouts.command)).isPositiveCompletion else {
                    self.socket = nil
                    return false
                }
                needsReset = false
            } catch {
                self.socket = nil
                return false
            }
        }
        return true
    }

    /// Sends one transaction and returns an outcome per recipient, in order. Never throws:
    /// a connection failure defers whatever it left undecided and closes the connection.
    public func send(_ envelope: Envelope, message: some MessageSource) -> [RecipientOutcome] {
        if let limit = capabilities.size, limit > 0, message.wireSize > limit {
            let reason = "552 5.3.4 message of \(message.wireSize) bytes exceeds the relay's SIZE limit of \(limit)"
            return envelope.recipients.map { _ in RecipientOutcome(.failed, reason: reason) }
        }
        var machine = TransactionMachine(envelope: envelope, pipelining: capabilities.pipelining,
                                         size: capabilities.size != nil ? message.wireSize : nil,
                                         extensions: Set(capabilities.keywords))
        guard socket != nil else {
            machine.connectionFailed("not connected to \(host):\(port)")
            return machine.results
        }
        transactionCount += 1
        let t = settings.timeouts
        var step = "sending MAIL FROM"
        do {
            var prefix: [String] = []
            if needsReset {
                prefix = ["RSET"]
                if !capabilities.pipelining {
                    try write(prefix, until: .after(t.command))
                    prefix = []
                    try expectResetReply()
                }
            }
            var event = TransactionMachine.Event.needReply
            var first = true
            loop: while true {
                let commands = machine.takeCommands()
                if !commands.isEmpty || !prefix.isEmpty {
                    try write(prefix + commands, until: .after(t.command))
                    if !prefix.isEmpty {
                        prefix = []
                        try expectResetReply()
                    }
                }
                if !first, event == .finished { break }
                first = false
                step = describe(machine.awaiting)
                let reply = try readReply(until: .after(timeout(for: machine.awaiting)))
                event = machine.receive(reply)
                switch event {
                case .needReply:
                    continue
                case .finished:
                    break loop
                case .sendMessage:
                    step = "sending the message"
                    try message.stream { chunk in try write(chunk, until: .after(t.dataBlock)) }
                    try write(Array(".\r\n".utf8), until: .after(t.dataBlock))
                    step = "waiting for the reply to the final dot"
                    let final = try readReply(until: .after(t.dataDone))
                    _ = machine.receiveFinal(final)
                    break loop
                case .sendEmptyMessage:
                    try write(Array(".\r\n".utf8), until: .after(t.dataBlock))
                    _ = try readReply(until: .after(t.dataDone))
                    machine.emptyMessageSent()
                    break loop
                }
            }
            needsReset = machine.needsReset
            if machine.relayClosing { socket = nil }
        } catch {
            machine.connectionFailed("\(SMTPSession.describe(error)) (\(step), relay \(peer))")
            socket = nil
        }
        lastUsed = Deadline.now()
        return machine.results
    }

    /// Says QUIT (waiting briefly for the reply) and closes.
    public func close() {
        guard socket != nil else { return }
        let wait = min(settings.timeouts.command, 5)
        try? write(["QUIT"], until: .after(wait))
        _ = try? readReply(until: .after(wait))
        socket = nil
    }

    /// Drops the connection without QUIT.
    public func abandon() { socket = nil }

    // MARK: - the byte loop

    private func expectResetReply() throws {
        let reply = try readReply(until: .after(settings.timeouts.command))
        guard reply.isPositiveCompletion else { throw TransportError.io("RSET refused: \(reply)") }
        needsReset = false
    }

    private func timeout(for phase: TransactionMachine.Phase) -> Double {
        switch phase {
        case .mail, .rcpt, .finished: return settings.timeouts.command
        case .data: return settings.timeouts.dataInit
        case .dot: return settings.timeouts.dataDone
        }
    }

    private func describe(_ phase: TransactionMachine.Phase) -> String {
        switch phase {
        case .mail: return "waiting for the reply to MAIL FROM"
        case .rcpt: return "waiting for the reply to RCPT TO"
        case .data: return "waiting for the reply to DATA"
        case .dot: return "waiting for the reply to the final dot"
        case .finished: return "after the transaction"
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? TransportError { return e.description }
        if let e = error as? ReplySyntaxError { return "garbled reply: \(e)" }
        return "\(error)"
    }

    private func write(_ commands: [String], until deadline: Deadline) throws {
        var bytes: [UInt8] = []
        for c in commands {
            bytes.append(contentsOf: c.utf8)
            bytes.append(13)
            bytes.append(10)
        }
        try write(bytes, until: deadline)
    }

    private func write(_ bytes: [UInt8], until deadline: Deadline) throws {
        try bytes.withUnsafeBytes { try write($0, until: deadline) }
    }

    /// Writes every byte, reading whatever the relay sends meanwhile into the parser.
    private func write(_ bytes: UnsafeRawBufferPointer, until deadline: Deadline) throws {
        guard let socket else { throw TransportError.closed }
        var done = 0
        while done < bytes.count {
            let n = try socket.writeSome(UnsafeRawBufferPointer(rebasing: bytes[done...]))
            done += n
            if done == bytes.count { break }
            if n > 0 { continue }
            let (readable, writable) = try socket.waitEither(write: true, until: deadline)
            if !readable && !writable { throw TransportError.timedOut("writing to the relay") }
            if readable { try pull(socket) }
        }
    }

    private func pull(_ socket: Socket) throws {
        let n = try readBuffer.withUnsafeMutableBytes { try socket.readSome(into: $0) }
        if n > 0 { readBuffer.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
    }

    private func readReply(until deadline: Deadline) throws -> SMTPReply {
        while true {
            if let reply = try parser.next() { return reply }
            guard let socket else { throw TransportError.closed }
            guard try socket.wait(for: Int16(POLLIN), until: deadline) else {
                throw TransportError.timedOut("waiting for the relay")
            }
            try pull(socket)
        }
    }
}
