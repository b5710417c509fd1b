// The transactions of an open session. The caller submits transactions with their
// messages and calls `advance()`; the session does what its `SMTPConversation` says —
// encodes commands and small messages into one output buffer, sends it when a reply must
// be read, reads the reply — and hands back each transaction's result as a value, tagged
// as it was submitted. Nothing here decides what a reply means.
//
// `advance()` returns as soon as results are ready, or when the output is held with room
// for another transaction (the caller may add one so that its envelope goes in the same
// write as the previous message; after each one added, room is offered again, so with
// CHUNKING a third goes out before the first reply); called again, it sends and reads.
// A session never calls back into its caller.

public struct OutgoingTransaction {
    public var tag: TransactionTag
    public var envelope: Envelope
    public var message: any MessageSource

    public init(tag: TransactionTag, envelope: Envelope, message: any MessageSource) {
        self.tag = tag
        self.envelope = envelope
        self.message = message
    }
}

extension SMTPSession {
    /// A message this small goes out with its command group in one write; a larger one
    /// streams chunk by chunk, each write with its own deadline.
    static let coalescedMessageLimit: Int64 = 64 * 1024
    /// Output is sent before it grows past this, even when no reply is due yet.
    static let outputLimit = 256 * 1024

    /// Would a transaction submitted now go out before the next reply is read?
    public var hasRoom: Bool { conversation?.hasRoom ?? false }

    /// Transactions submitted whose results have not been handed back yet.
    public var transactionsInFlight: Int { (conversation?.transactionsInFlight ?? 0) + unsentResults.count }

    /// Queues a transaction. On a closed session its result (not sent) comes from the next
    /// `advance()`.
    public func submit(_ transaction: OutgoingTransaction) {
        transactionCount += 1
        let request = TransactionRequest(tag: transaction.tag, envelope: transaction.envelope,
                                         wireSize: transaction.message.wireSize,
                                         unstuffedSize: transaction.message.unstuffedSize)
        guard conversation != nil else {
            let outcome = RecipientOutcome(.deferred, origin: .connection(.notConnected("not connected to \(host):\(port)")))
            unsentResults.append(TransactionResult(tag: transaction.tag, outcomes: transaction.envelope.recipients.map { _ in outcome },
                                                   retry: .notSent))
            return
        }
        messages[transaction.tag] = transaction.message
        conversation?.submit(request)
        offeredRoom = false  // room taken: another may be offered before the next read
    }

    /// Writes and reads until results are ready, or until the output is held with room for
    /// another transaction, or nothing is in flight.
    public func advance() -> [TransactionResult] {
        var results = unsentResults
        unsentResults.removeAll()
        while let action = conversation?.nextAction() {
            switch action {
            case .write(let command):
                command.encode(into: &output)
                if output.count > SMTPSession.outputLimit { flushOrFail(wait: .command) }
            case .writeMessage(let tag, let framing):
                do {
                    try appendMessage(tag, framing)
                } catch {
                    conversation?.fail(SMTPSession.fault(error, while: "sending the message"))
                }
            case .read(let wait):
                if !results.isEmpty { return results }
                // Before output held for this write goes out, the caller may add a
                // transaction the conversation has room for: its commands join the same
                // write. Offered again after each submitted transaction (with CHUNKING, up
                // to `transactionsInFlight` go out before the first reply); declined, the
                // session writes and reads.
                if !offeredRoom, !output.isEmpty, conversation?.hasRoom == true {
                    offeredRoom = true
                    return results
                }
                offeredRoom = false
                do {
                    try flush()
                    let reply = try readReply(until: .after(timeout(for: wait)))
                    conversation?.receive(reply)
                } catch {
                    conversation?.fail(SMTPSession.fault(error, while: SMTPSession.describe(wait)))
                }
            case .result(let result):
                messages[result.tag] = nil
                lastUsed = .now
                results.append(result)
            case .idle:
                return results
            case .closed:
                transport?.shutdown()
                dropConnection()
                return results
            }
        }
        return results
    }

    /// Sends one transaction and waits for its end: its outcomes, in recipient order. For
    /// callers that send one at a time; results of other transactions in flight wait for
    /// the next `advance()`.
    public func send(_ envelope: Envelope, message: some MessageSource) -> [RecipientOutcome] {
        let tag = TransactionTag(UInt64.max - UInt64(transactionCount))
        submit(OutgoingTransaction(tag: tag, envelope: envelope, message: message))
        var others: [TransactionResult] = []
        defer { unsentResults = others + unsentResults }
        while true {
            for result in advance() {
                if result.tag == tag { return result.outcomes }
                others.append(result)
            }
        }
    }

    /// Advances until nothing is in flight; returns every result.
    public func settle() -> [TransactionResult] {
        var results: [TransactionResult] = []
        while transactionsInFlight > 0 {
            let more = advance()
            if more.isEmpty && conversation == nil && unsentResults.isEmpty { break }
            results += more
        }
        return results
    }

    /// Settles what is in flight, says QUIT (waiting briefly for the reply) and closes.
    public func close() -> [TransactionResult] {
        let results = settle()
        guard let transport else {
            dropConnection()
            return results
        }
        conversation?.quit()
        if case .write(let command)? = conversation?.nextAction() {
            command.encode(into: &output)
            let deadline = Deadline.after(settings.timeouts.quit)
            _ = try? flush(until: deadline)
            _ = try? readReply(until: deadline)
        }
        transport.shutdown()
        dropConnection()
        return results
    }

    /// Is the connection still worth using? A relay that closed it or said 421 while we
    /// were idle is noticed here, before a transaction is spent on it; a connection idle
    /// longer than `idleProbeAfter` is probed with RSET.
    public func checkAlive() -> Bool {
        guard let transport, conversation != nil else { return false }
        if transactionsInFlight > 0 { return true }
        if (try? transport.socket.wait(for: Readiness.readable.pollEvents, until: .immediately)) != false {
            // Readable while idle: EOF or an unsolicited 421 — or, over TLS, a record that
            // is not data (a session ticket), after which the read has nothing to give.
            guard case .blocked? = try? pull(transport), parser.bufferedCount == 0 else {
                dropConnection()
                return false
            }
        }
        if ContinuousClock.now - lastUsed > settings.idleProbeAfter {
            conversation?.probe()
            _ = advance()
            lastUsed = .now
        }
        return conversation != nil && self.transport != nil
    }

    // MARK: - moving bytes

    private func flushOrFail(wait: ReplyWait) {
        do {
            try flush()
        } catch {
            conversation?.fail(SMTPSession.fault(error, while: "sending commands"))
        }
    }

    /// Sends the output buffer.
    func flush(until deadline: Deadline? = nil) throws {
        guard !output.isEmpty else { return }
        let limit = deadline ?? .after(outputHoldsMessage ? settings.timeouts.dataBlock : settings.timeouts.command)
        try output.withUnsafeBytes { try write($0, until: limit) }
        output.removeAll(keepingCapacity: true)
        outputHoldsMessage = false
    }

    /// The message of `tag` as `framing` says: into the output when small, else streamed.
    private func appendMessage(_ tag: TransactionTag, _ framing: MessageFraming) throws {
        guard let message = messages.removeValue(forKey: tag) else {
            throw TransportError.io("no message for transaction \(tag)")
        }
        let block = settings.timeouts.dataBlock
        switch framing {
        case .dotStuffed:
            if message.wireSize <= SMTPSession.coalescedMessageLimit {
                try message.stream { output.append(contentsOf: $0) }
            } else {
                try flush()
                try message.stream { chunk in try write(chunk, until: .after(block)) }
            }
            SMTPCommand.endOfData.encode(into: &output)
        case .unstuffed(let size):
            var sent: Int64 = 0
            var atLineStart = true
            if size <= SMTPSession.coalescedMessageLimit {
                try message.stream { chunk in
                    DotStuffing.undo(chunk, atLineStart: &atLineStart) { output.append(contentsOf: $0); sent += Int64($0.count) }
                }
            } else {
                try flush()
                try message.stream { chunk in
                    try DotStuffing.undo(chunk, atLineStart: &atLineStart) { piece in
                        try write(piece, until: .after(block))
                        sent += Int64(piece.count)
                    }
                }
            }
            guard sent == size else { throw TransportError.io("the message changed while it was sent (BDAT \(size), have \(sent))") }
        }
        outputHoldsMessage = true
    }

    func timeout(for wait: ReplyWait) -> Duration {
        switch wait {
        case .command: return settings.timeouts.command
        case .goAhead: return settings.timeouts.dataInit
        case .final: return settings.timeouts.dataDone
        }
    }

    static func describe(_ wait: ReplyWait) -> String {
        switch wait {
        case .command: return "waiting for the reply to MAIL FROM, RCPT TO or RSET"
        case .goAhead: return "waiting for the reply to DATA"
        case .final: return "waiting for the reply to the final dot"
        }
    }

    /// A failure of the byte loop as the conversation understands it.
    static func fault(_ error: any Error, while step: String) -> ConnectionFault {
        switch error {
        case TransportError.closed: return .dropped(step: step)
        case TransportError.timedOut: return .timedOut(step: step)
        case let e as TransportError: return .dropped(step: "\(e), \(step)")
        case let e as ReplySyntaxError: return .garbled("\(e) (\(step))")
        default: return .local("\(error) (\(step))")
        }
    }
}
