// The mail transactions of one SMTP connection as a pure state machine (RFC 5321 §3.3,
// RFC 2920 PIPELINING, RFC 3030 CHUNKING). Transactions go in (`submit`), replies go in
// (`receive`, `fail`), and `nextAction()` says what to do: write a command, write a
// message, read a reply, hand a transaction's tagged result back, or nothing. The socket
// loop in `SMTPSession` only follows these actions; every decision is made here, where
// tests feed it dialogues without a network.
//
// How commands are grouped:
// - Without PIPELINING, one command at a time, each waiting for its reply.
// - With PIPELINING, [RSET] MAIL RCPT… DATA leave together and replies are matched to
//   commands by order (RFC 2920 §3.1). After DATA's 354 the message and its final dot are
//   written and, when another transaction is waiting, its envelope joins them in the same
//   write (a MAIL may follow the final dot in one group). At most two transactions are then
//   in flight: one whose final dot awaits its reply, one whose envelope does.
// - With CHUNKING, BDAT n LAST and the message follow the envelope with no wait, so up to
//   `maxInFlight` transactions may be in flight; each one after the first starts with RSET,
//   because a failed BDAT leaves the relay's state undefined (RFC 3030 §2).
// Invariants: a transaction's result comes out exactly once; nothing is written after a
// 421 or a fault; replies never outnumber the commands owed them (a surplus is a fault).

public struct SMTPConversation: Sendable {
    public let policy: ConversationPolicy

    /// The relay's transaction state once every command written so far is processed.
    private enum Link: Equatable {
        case clean
        /// It may hold a half transaction: RSET before the next MAIL.
        case dirty
        /// No new transaction starts; the connection closes once those in flight end.
        case closingWhenSettled(ConnectionFault)
        case closed(ConnectionFault)
    }

    private enum Step: Equatable { case reset, mail, recipient(Int), data, chunk }

    private enum Owed: Equatable {
        case reset, quit
        case mail(TransactionTag), recipient(TransactionTag, Int), data(TransactionTag), final(TransactionTag)
    }

    private enum RecipientState: Equatable {
        case awaiting, accepted
        case decided(RecipientOutcome)
    }

    private struct Flight {
        enum Stage: Equatable {
            /// Envelope commands written (or being written one by one); their replies owed.
            case envelope
            /// The message and its end (final dot, or BDAT LAST) are written.
            case messageWritten
            /// 354 came with nobody to deliver to: a lone dot closes DATA; its reply is noise.
            case closingEmpty
        }
        let request: TransactionRequest
        let byChunk: Bool
        var stage = Stage.envelope
        var mailAccepted: Bool?
        var recipients: [RecipientState]
        /// Commands not yet written: all of them go at once with PIPELINING.
        var unsent: [Step]
        var retry = RetryAdvice.none

        var anyAccepted: Bool { recipients.contains(.accepted) }
    }

    private var link = Link.clean
    private var waiting: [TransactionRequest] = []
    private var flights: [Flight] = []
    private var owed = Ring<Owed>()
    private var actions = Ring<ConversationAction>()
    /// Transactions that reached the relay on this connection and ended.
    private var carried = 0

    public init(policy: ConversationPolicy) {
        self.policy = policy
    }

    // MARK: inputs

    /// A transaction to send on this connection, after those submitted before it.
    public mutating func submit(_ request: TransactionRequest) {
        if case .closed(let fault) = link {
            actions.append(.result(Self.notSent(request, fault)))
        } else {
            waiting.append(request)
        }
    }

    /// Says QUIT once nothing is in flight.
    public mutating func quit() {
        guard flights.isEmpty, waiting.isEmpty, owed.isEmpty else { return }
        switch link {
        case .clean, .dirty:
            actions.append(.write(.quit))
            owed.append(.quit)
            link = .closingWhenSettled(.notConnected("closed after QUIT"))
        default: return
        }
    }

    /// RSET on an idle connection, to learn whether it still works.
    public mutating func probe() {
        guard flights.isEmpty, owed.isEmpty, link == .clean || link == .dirty else { return }
        actions.append(.write(.reset))
        owed.append(.reset)
    }

    /// The next reply from the relay.
    public mutating func receive(_ reply: SMTPReply) {
        guard let item = owed.popFirst() else {
            return fail(.garbled("a reply nobody asked for: \(reply)"))
        }
        if reply.code == 421 { return fail(.closing(reply)) }
        switch item {
        case .quit:
            close(.notConnected("closed after QUIT"))
        case .reset:
            guard reply.isPositiveCompletion else { return fail(.resetRefused(reply)) }
            if flights.isEmpty && link == .dirty { link = .clean }
        case .mail(let tag):
            guard let i = index(of: tag) else { return fail(.garbled("MAIL reply for an unknown transaction")) }
            mailReply(reply, flight: i)
        case .recipient(let tag, let r):
            guard let i = index(of: tag) else { return fail(.garbled("RCPT reply for an unknown transaction")) }
            recipientReply(reply, flight: i, recipient: r)
        case .data(let tag):
            guard let i = index(of: tag) else { return fail(.garbled("DATA reply for an unknown transaction")) }
            dataReply(reply, flight: i)
        case .final(let tag):
            guard let i = index(of: tag) else { return fail(.garbled("final reply for an unknown transaction")) }
            finalReply(reply, flight: i)
        }
        writeNextSteps()
    }

    /// The connection failed (dropped, deadline, garbage, a local write error): every
    /// transaction not yet decided ends now; nothing more is written.
    public mutating func fail(_ fault: ConnectionFault) {
        if case .closed = link { return }
        for i in flights.indices {
            let stage = flights[i].stage
            flights[i].retry = Self.advice(after: fault, stage: stage)
            for r in flights[i].recipients.indices {
                switch flights[i].recipients[r] {
                case .awaiting, .accepted: flights[i].recipients[r] = .decided(RecipientOutcome(.deferred, origin: .connection(fault)))
                case .decided: break
                }
            }
        }
        // Writes decided before the fault are void; results already decided still go out.
        var kept = Ring<ConversationAction>()
        while let action = actions.popFirst() {
            if case .result = action { kept.append(action) }
        }
        actions = kept
        while !flights.isEmpty { finish(0) }
        owed.removeAll()
        close(fault)
    }

    /// The connection is over: those still waiting never reached it and go on the next one.
    private mutating func close(_ fault: ConnectionFault) {
        for request in waiting { actions.append(.result(Self.notSent(request, fault))) }
        waiting.removeAll()
        link = .closed(fault)
        actions.append(.closed(fault))
    }

    // MARK: output

    /// What to do next.
    public mutating func nextAction() -> ConversationAction {
        if let action = actions.popFirst() { return action }
        if case .closed(let fault) = link { return .closed(fault) }
        if mayStart, !waiting.isEmpty {
            start(waiting.removeFirst())
            return nextAction()
        }
        if let first = owed.first { return .read(Self.wait(for: first)) }
        if case .closingWhenSettled(let fault) = link, flights.isEmpty {
            close(fault)
            return nextAction()
        }
        return .idle
    }

    /// Would a transaction submitted now start before the next reply is read?
    public var hasRoom: Bool { waiting.isEmpty && mayStart }

    /// May the next waiting transaction start now?
    private var mayStart: Bool {
        switch link {
        case .clean, .dirty: break
        case .closingWhenSettled, .closed: return false
        }
        if flights.isEmpty { return policy.pipelining || owed.isEmpty }
        guard policy.pipelining, policy.overlap, flights.count < policy.maxInFlight else { return false }
        return flights.allSatisfy { $0.stage != .envelope }
    }

    /// Transactions submitted and not yet ended.
    public var transactionsInFlight: Int { flights.count + waiting.count }

    /// True once the connection is finished.
    public var isClosed: Bool { if case .closed = link { return true } else { return false } }

    // MARK: the steps of a transaction

    private mutating func start(_ request: TransactionRequest) {
        if let limit = policy.sizeLimit, limit > 0, request.wireSize > limit {
            let reason = "552 5.3.4 message of \(request.wireSize) bytes exceeds the relay's SIZE limit of \(limit)"
            let outcome = RecipientOutcome(.failed, origin: .local(reason), status: .messageTooBig)
            actions.append(.result(TransactionResult(tag: request.tag, outcomes: request.envelope.recipients.map { _ in outcome })))
            return
        }
        let byChunk = policy.chunking && request.unstuffedSize != nil
        let overlapping = !flights.isEmpty
        var steps: [Step] = []
        steps.reserveCapacity(request.envelope.recipients.count + 3)
        if overlapping ? flights.contains(where: \.byChunk) : link == .dirty {
            steps.append(.reset)
            link = .clean  // once the RSET is through; a refusal is a fault
        }
        steps.append(.mail)
        for r in request.envelope.recipients.indices { steps.append(.recipient(r)) }
        steps.append(byChunk ? .chunk : .data)
        flights.append(Flight(request: request, byChunk: byChunk,
                              recipients: Array(repeating: .awaiting, count: request.envelope.recipients.count),
                              unsent: steps))
        writeNextSteps()
    }

    /// Writes what may go now: every unsent step with PIPELINING, else one command when no
    /// reply is owed.
    private mutating func writeNextSteps() {
        guard let i = flights.firstIndex(where: { !$0.unsent.isEmpty }) else { return }
        while !flights[i].unsent.isEmpty {
            if !policy.pipelining && !owed.isEmpty { return }
            let step = flights[i].unsent.removeFirst()
            write(step, flight: i)
        }
    }

    private mutating func write(_ step: Step, flight i: Int) {
        let tag = flights[i].request.tag
        switch step {
        case .reset:
            actions.append(.write(.reset))
            owed.append(.reset)
        case .mail:
            let size = policy.sizeLimit != nil ? flights[i].request.wireSize : nil
            actions.append(.write(SMTPCommand.mail(flights[i].request.envelope, size: size, extensions: policy.extensions)))
            owed.append(.mail(tag))
        case .recipient(let r):
            let parameters = flights[i].request.envelope.recipients[r].parameters
            actions.append(.write(.recipient(address: flights[i].request.envelope.recipients[r].address,
                                             parameters: parameters.isEmpty ? parameters : parameters.filter { SMTPCommand.keep($0, policy.extensions) })))
            owed.append(.recipient(tag, r))
        case .data:
            actions.append(.write(.data))
            owed.append(.data(tag))
        case .chunk:
            let size = flights[i].request.unstuffedSize ?? flights[i].request.wireSize
            actions.append(.write(.chunk(size: size, last: true)))
            actions.append(.writeMessage(tag, .unstuffed(size)))
            owed.append(.final(tag))
            flights[i].stage = .messageWritten
        }
    }

    private mutating func mailReply(_ reply: SMTPReply, flight i: Int) {
        if reply.isPositiveCompletion {
            flights[i].mailAccepted = true
            return
        }
        flights[i].mailAccepted = false
        decideAwaiting(i, RecipientOutcome.decided(by: reply, to: .mail))
        if reply.isTransient && carried > 0 {
            // A session that carried mail and now refuses more: a new connection will do.
            flights[i].retry = .newConnection
            link = .closingWhenSettled(.spent(reply))
        }
        if !policy.pipelining {
            flights[i].unsent.removeAll()
            finish(i)
        }
    }

    private mutating func recipientReply(_ reply: SMTPReply, flight i: Int, recipient r: Int) {
        guard flights[i].mailAccepted == true else { return }  // MAIL's reply decided everyone
        if reply.isPositiveCompletion {
            flights[i].recipients[r] = .accepted
        } else if reply.code == 452 {
            flights[i].recipients[r] = .decided(RecipientOutcome(.tooMany, origin: .reply(reply, to: .recipient)))
            if !policy.pipelining {
                // The rest go in the next transaction: stop adding recipients.
                for case .recipient(let later) in flights[i].unsent {
                    flights[i].recipients[later] = .decided(RecipientOutcome(.tooMany, origin: .reply(reply, to: .recipient)))
                }
                flights[i].unsent.removeAll { if case .recipient = $0 { return true } else { return false } }
            }
        } else {
            flights[i].recipients[r] = .decided(RecipientOutcome.decided(by: reply, to: .recipient))
        }
        if !policy.pipelining, !flights[i].anyAccepted, flights[i].unsent == [.data] || flights[i].unsent == [.chunk] {
            // Nobody to send to: no DATA or BDAT; the relay holds MAIL until RSET.
            flights[i].unsent.removeAll()
            finish(i, leaving: .dirty)
        }
    }

    private mutating func dataReply(_ reply: SMTPReply, flight i: Int) {
        let tag = flights[i].request.tag
        if reply.isPositiveCompletion || (reply.isIntermediate && reply.code != 354) {
            // Not a reply DATA can have: the relay and we disagree about the dialogue.
            return fail(.garbled("\(reply) in reply to DATA"))
        }
        if reply.code == 354 {
            if flights[i].mailAccepted == true && flights[i].anyAccepted {
                actions.append(.writeMessage(tag, .dotStuffed))
                flights[i].stage = .messageWritten
            } else {
                actions.append(.write(.endOfData))
                flights[i].stage = .closingEmpty
            }
            owed.append(.final(tag))
            return
        }
        decideAccepted(i, RecipientOutcome.decided(by: reply, to: .data))
        finish(i, leaving: flights[i].mailAccepted == true ? .dirty : nil)
    }

    private mutating func finalReply(_ reply: SMTPReply, flight i: Int) {
        if flights[i].stage == .closingEmpty { return finish(i, leaving: .clean) }
        let byChunk = flights[i].byChunk
        decideAccepted(i, RecipientOutcome.decided(by: reply, to: byChunk ? .chunk : .endOfData))
        // The final dot ends the transaction whatever its reply; a failed BDAT may not.
        finish(i, leaving: byChunk && !reply.isPositiveCompletion ? .dirty : .clean)
    }

    private mutating func decideAwaiting(_ i: Int, _ outcome: RecipientOutcome) {
        for r in flights[i].recipients.indices where flights[i].recipients[r] == .awaiting {
            flights[i].recipients[r] = .decided(outcome)
        }
    }

    private mutating func decideAccepted(_ i: Int, _ outcome: RecipientOutcome) {
        for r in flights[i].recipients.indices where flights[i].recipients[r] == .accepted {
            flights[i].recipients[r] = .decided(outcome)
        }
    }

    /// The transaction is over: its result goes out. `leaving` is the relay's state after
    /// it, which counts only when no later transaction has been written since.
    private mutating func finish(_ i: Int, leaving state: Link? = nil) {
        let flight = flights.remove(at: i)
        let outcomes = flight.recipients.map { state -> RecipientOutcome in
            if case .decided(let outcome) = state { return outcome }
            return RecipientOutcome(.deferred, origin: .connection(.garbled("no reply decided this recipient")))
        }
        if flight.mailAccepted != nil { carried += 1 }
        if let state, flights.isEmpty, link == .clean || link == .dirty { link = state }
        actions.append(.result(TransactionResult(tag: flight.request.tag, outcomes: outcomes, retry: flight.retry)))
    }

    private func index(of tag: TransactionTag) -> Int? { flights.firstIndex { $0.request.tag == tag } }

    private static func wait(for item: Owed) -> ReplyWait {
        switch item {
        case .data: return .goAhead
        case .final: return .final
        default: return .command
        }
    }

    private static func advice(after fault: ConnectionFault, stage: Flight.Stage) -> RetryAdvice {
        switch fault {
        case .closing, .spent: return .newConnection  // the relay said it did not take it
        case .dropped, .notConnected: return stage == .envelope ? .newConnection : .none
        case .timedOut, .garbled, .resetRefused, .local: return .none
        }
    }

    private static func notSent(_ request: TransactionRequest, _ fault: ConnectionFault) -> TransactionResult {
        let outcome = RecipientOutcome(.deferred, origin: .connection(fault))
        return TransactionResult(tag: request.tag, outcomes: request.envelope.recipients.map { _ in outcome }, retry: .notSent)
    }
}
