// PIPELINING across transactions (RFC 2920 §3.1: a MAIL FROM may follow the final dot in
// the same group). `sendOverlapped` writes a transaction's envelope and, when the relay
// says 354, keeps the message and its final dot back: they go out in the same write as
// the next transaction's MAIL, RCPT and DATA, and the reply to the dot is read first. A
// stream of small transactions then costs one round trip each instead of two.
//
// The held transaction's outcomes reach its `finish` callback when its reply is read:
// inside the next `sendOverlapped`, or in `settle()`, which `send`, `close` and an idle
// worker call. At most two transactions are in flight; after a crash both may be sent
// again, and a dropped connection defers both.

public struct HeldTransaction {
    var machine: TransactionMachine
    /// The message and its final dot, not yet written.
    var output: [UInt8]
    var finish: ([RecipientOutcome]) -> Void
}

extension SMTPSession {
    /// True while a final dot waits for the next envelope (call `settle()` before idling).
    public var hasHeldTransaction: Bool { held != nil }

    /// Can this message go overlapped? PIPELINING, no CHUNKING (BDAT already costs one round
    /// trip), and small enough to be held in memory.
    public func canOverlap(_ message: some MessageSource) -> Bool {
        settings.overlapTransactions && capabilities.pipelining && !(capabilities.chunking && settings.chunking)
            && message.wireSize <= SMTPSession.coalescedMessageLimit
    }

    /// Sends a transaction without waiting for the reply to its final dot (see the top of
    /// this file). `finish` gets the outcomes, in recipient order, exactly once.
    public func sendOverlapped(_ envelope: Envelope, message: some MessageSource,
                               finish: @escaping ([RecipientOutcome]) -> Void) {
        guard canOverlap(message), !needsReset, isOpen,
              capabilities.size.map({ $0 == 0 || message.wireSize <= $0 }) ?? true else {
            return finish(send(envelope, message: message))
        }
        var machine = TransactionMachine(envelope: envelope, pipelining: true,
                                         size: capabilities.size != nil ? message.wireSize : nil,
                                         extensions: Set(capabilities.keywords))
        // The held transaction's message and dot lead this write; its reply comes first.
        var previous = held
        held = nil
        var group: [UInt8] = previous?.output ?? []
        for command in machine.takeCommands() { group += Array(command.utf8) + [13, 10] }
        let t = settings.timeouts
        var step = "sending the envelope"
        do {
            try write(group, until: .after(t.command))
            if var p = previous {
                step = "waiting for the reply to the final dot"
                let final = try readReply(until: .after(t.dataDone))
                _ = p.machine.receiveFinal(final)
                needsReset = p.machine.needsReset
                previous = nil
                p.finish(p.machine.results)
                if p.machine.relayClosing { throw TransportError.closed }
            }
            transactionCount += 1
            while true {
                step = describe(machine.awaiting)
                switch machine.receive(try readReply(until: .after(timeout(for: machine.awaiting)))) {
                case .needReply:
                    continue
                case .finished:
                    needsReset = machine.needsReset
                    if machine.relayClosing { transport = nil }
                    lastUsed = Deadline.now()
                    return finish(machine.results)
                case .sendEmptyMessage:
                    try write(Array(".\r\n".utf8), until: .after(t.dataBlock))
                    _ = try readReply(until: .after(t.dataDone))
                    machine.emptyMessageSent()
                    needsReset = machine.needsReset
                    return finish(machine.results)
                case .sendMessage:
                    step = "reading the message"
                    var output: [UInt8] = []
                    output.reserveCapacity(Int(message.wireSize) + 3)
                    try message.stream { output.append(contentsOf: $0) }
                    output.append(contentsOf: [UInt8(ascii: "."), 13, 10])
                    held = HeldTransaction(machine: machine, output: output, finish: finish)
                    lastUsed = Deadline.now()
                    return
                }
            }
        } catch {
            // Nothing of this call is held: whatever is undecided is deferred.
            let reason = "\(SMTPSession.describe(error)) (\(step), relay \(peer))"
            if var p = previous {
                p.machine.connectionFailed(reason)
                p.finish(p.machine.results)
            }
            machine.connectionFailed(reason)
            transport = nil
            finish(machine.results)
        }
    }

    /// Writes a held final dot and waits for its reply; `finish` gets the outcomes.
    public func settle() {
        guard var previous = held else { return }
        held = nil
        do {
            try write(previous.output, until: .after(settings.timeouts.dataBlock))
            let final = try readReply(until: .after(settings.timeouts.dataDone))
            _ = previous.machine.receiveFinal(final)
            needsReset = previous.machine.needsReset
            if previous.machine.relayClosing { transport = nil }
            lastUsed = Deadline.now()
            previous.finish(previous.machine.results)
        } catch {
            previous.machine.connectionFailed("\(SMTPSession.describe(error)) (waiting for the reply to the final dot, relay \(peer))")
            transport = nil
            previous.finish(previous.machine.results)
        }
    }
}
