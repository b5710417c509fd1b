// The only place SMTPClient calls glibc's resolver (through the CResolv shim): one
// `struct __res_state` per ResolverState, made by res_ninit and freed by res_nclose,
// pointed at DNS_SERVER when it is set; one question at a time (res_nmkquery + res_nsend,
// which retries a truncated UDP answer over TCP by itself); the answer read with
// ns_initparse/ns_parserr/ns_name_uncompress into a DNSResponse.
// Invariant: a state is used by one thread at a time (MXResolver lends each to one
// caller); glibc's resolver states are not safe to share between concurrent callers.

import CResolv
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// No answer at all (every try timed out, SERVFAIL/REFUSED, a network error), a malformed
/// one, or a state that could not be made. The reason names the question and the server.
struct DNSQueryFailure: Error, Sendable, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// @unchecked Sendable: the state moves between threads through MXResolver's pool, which
/// hands it to one caller at a time; nothing else touches it.
final class ResolverState: @unchecked Sendable {
    /// Room for the largest answer (a TCP answer may hold 65535 octets).
    static let answerCapacity = 65_536

    private let state: UnsafeMutablePointer<__res_state>
    private let answer: UnsafeMutablePointer<UInt8>
    private let serverName: String

    init(settings: ResolverSettings) throws(DNSQueryFailure) {
        guard let state = poold_res_new() else {
            throw DNSQueryFailure(reason: "the resolver could not be initialised (res_ninit failed)")
        }
        self.state = state
        answer = .allocate(capacity: ResolverState.answerCapacity)
        let seconds = max(1, Int32(settings.answerTimeout.components.seconds))
        poold_res_set_timing(state, seconds, Int32(max(1, settings.attempts)))
        if let server = settings.server {
            var (storage, length) = server.address.socketAddress(port: server.port)
            let rc = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { poold_res_set_server(state, $0, length) }
            }
            serverName = server.description
            guard rc == 0 else {
                poold_res_free(state)
                answer.deallocate()
                throw DNSQueryFailure(reason: "cannot use \(server) as the DNS server")
            }
        } else {
            serverName = "the system's resolver"
        }
    }

    deinit {
        poold_res_free(state)
        answer.deallocate()
    }

    /// Asks for `type` records of exactly `name` (class IN) and returns the answer as it came.
    func ask(_ name: String, type: DNSRecordType) throws(DNSQueryFailure) -> DNSResponse {
        let question = "\(name)/\(type)"
        let length = poold_res_ask(state, name, type.rawValue, answer, Int32(ResolverState.answerCapacity))
        if length < 0 {
            let why = errno == EMSGSIZE ? "not a valid domain name"
                : errno == ETIMEDOUT || errno == 0 ? "no answer from \(serverName) (timed out, or SERVFAIL/REFUSED)"
                : "no answer from \(serverName): \(String(cString: strerror(errno)))"
            throw DNSQueryFailure(reason: "\(question): \(why)")
        }
        return try parse(length: min(Int(length), ResolverState.answerCapacity), question: question, type: type)
    }

    private func parse(length: Int, question: String, type: DNSRecordType) throws(DNSQueryFailure) -> DNSResponse {
        var message = ns_msg()
        guard ns_initparse(answer, Int32(length), &message) == 0 else {
            throw DNSQueryFailure(reason: "\(question): malformed answer from \(serverName)")
        }
        var response = DNSResponse(rcode: Int32(poold_ns_msg_rcode(&message)), records: [], negativeTTL: nil)
        var record = ns_rr()
        for index in 0..<poold_ns_msg_count(&message, ns_s_an) {
            guard ns_parserr(&message, ns_s_an, index, &record) == 0 else {
                throw DNSQueryFailure(reason: "\(question): malformed answer record from \(serverName)")
            }
            // Records of other types (a CNAME on the way to the answer) are passed over.
            guard Int32(record.type) == type.rawValue, record.rr_class == UInt16(ns_c_in.rawValue),
                  let data = try recordData(record, message: &message, question: question) else { continue }
            response.records.append((ttl: record.ttl, data: data))
        }
        for index in 0..<poold_ns_msg_count(&message, ns_s_ns) {
            guard ns_parserr(&message, ns_s_ns, index, &record) == 0 else { break }
            guard record.type == UInt16(ns_t_soa.rawValue), record.rdlength >= 20, let rdata = record.rdata else { continue }
            // MINIMUM is the SOA's last 32-bit field, after the two names and four others.
            let minimum = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(rdata[Int(record.rdlength) - 4 + $1]) }
            response.negativeTTL = min(record.ttl, minimum)
        }
        return response
    }

    private func recordData(_ record: ns_rr, message: inout ns_msg, question: String) throws(DNSQueryFailure) -> DNSRecordData? {
        guard let rdata = record.rdata else { return nil }
        let length = Int(record.rdlength)
        switch Int32(record.type) {
        case DNSRecordType.a.rawValue where length == 4, DNSRecordType.aaaa.rawValue where length == 16:
            return IPAddress(bytes: Array(UnsafeBufferPointer(start: rdata, count: length))).map { .address($0) }
        case DNSRecordType.mx.rawValue where length >= 3:
            let preference = UInt16(rdata[0]) << 8 | UInt16(rdata[1])
            var name = [CChar](repeating: 0, count: Int(NS_MAXDNAME))
            guard ns_name_uncompress(poold_ns_msg_base(&message), poold_ns_msg_end(&message), rdata + 2, &name, name.count) >= 0 else {
                throw DNSQueryFailure(reason: "\(question): malformed MX record from \(serverName)")
            }
            let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .mx(preference: preference, exchange: DomainName.normalized(text))
        default:
            return nil
        }
    }
}
