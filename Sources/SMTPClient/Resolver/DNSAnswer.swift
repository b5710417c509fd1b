// What a DNS answer says, as values: the records poold asks for (MX, A, AAAA), and the
// meaning of a whole answer for mail routing (records, "no such record", "no such
// domain", or no usable answer). Pure: ResolverState fills a DNSResponse from the wire,
// `DNSLookup(response:type:)` reads it; the cache keeps DNSLookups.

/// The record types poold asks for (their RR type numbers).
public enum DNSRecordType: Int32, Sendable, Hashable, CustomStringConvertible {
    case a = 1
    case mx = 15
    case aaaa = 28

    public var description: String {
        switch self {
        case .a: return "A"
        case .mx: return "MX"
        case .aaaa: return "AAAA"
        }
    }
}

/// One record of an answer section, of a type poold asked for.
enum DNSRecordData: Sendable, Hashable {
    /// `exchange` lowercased, without the trailing dot; "" for the root (a null MX).
    case mx(preference: UInt16, exchange: String)
    case address(IPAddress)
}

/// An answer as it came: the RCODE, the answer section's records of the asked type (with
/// their TTLs), and the negative-caching TTL of the authority section's SOA (RFC 2308 §5:
/// the smaller of the SOA's own TTL and its MINIMUM).
struct DNSResponse: Sendable {
    static let noError: Int32 = 0
    static let nameError: Int32 = 3

    var rcode: Int32
    var records: [(ttl: UInt32, data: DNSRecordData)]
    var negativeTTL: UInt32?
}

/// What one question's answer means for mail routing; what the cache keeps.
enum DNSLookup: Sendable, Equatable {
    /// The records, and the smallest of their TTLs (seconds).
    case records([DNSRecordData], ttl: UInt32)
    /// NOERROR without a record of that type (the name exists); the negative TTL if the
    /// answer carried an SOA.
    case noData(ttl: UInt32?)
    /// NXDOMAIN: the name does not exist.
    case noSuchDomain(ttl: UInt32?)
    /// No usable answer: timeout, SERVFAIL, REFUSED, a network error, a malformed answer.
    case failed(String)

    init(response: DNSResponse, question: String) {
        switch response.rcode {
        case DNSResponse.noError:
            if response.records.isEmpty {
                self = .noData(ttl: response.negativeTTL)
            } else {
                self = .records(response.records.map(\.data), ttl: response.records.map(\.ttl).min() ?? 0)
            }
        case DNSResponse.nameError:
            self = .noSuchDomain(ttl: response.negativeTTL)
        default:
            self = .failed("\(question): the server answered RCODE \(response.rcode) (\(DNSLookup.rcodeName(response.rcode)))")
        }
    }

    static func rcodeName(_ rcode: Int32) -> String {
        switch rcode {
        case 1: return "FORMERR"
        case 2: return "SERVFAIL"
        case 4: return "NOTIMP"
        case 5: return "REFUSED"
        default: return "unexpected"
        }
    }

    /// A short phrase for diagnostics: "3 records", "no record", "no such domain", the failure.
    var summary: String {
        switch self {
        case .records(let records, _): return records.count == 1 ? "1 record" : "\(records.count) records"
        case .noData: return "no record"
        case .noSuchDomain: return "no such domain"
        case .failed(let reason): return reason
        }
    }
}
