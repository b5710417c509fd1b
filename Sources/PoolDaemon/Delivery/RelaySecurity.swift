// A worker line's TLS and AUTH options turned into session settings, and the checks poold
// makes at start so that a configuration it cannot honour safely is refused with the file
// and line named, not found out by the first message:
//   - TLS=require or smtps (or AUTH without AUTH_INSECURE=1) in a build without TLS;
//   - a TLS_CA file that cannot be read;
//   - a SECRET file that cannot be read, is empty, or can be read by group or others.
// The password is read here and handed to SMTPClient's `SMTPCredentials`; no message made
// here ever contains it.

import Foundation
import SMTPClient
import SpoolKit

/// A worker line whose security options cannot be carried out; the text names the line.
struct RelaySecurityError: Error, CustomStringConvertible {
    var description: String
}

/// Refuses a configuration whose SECRET files are unreadable, empty, or readable by group
/// or others (mode & 0o077 != 0).
func checkSecrets(_ config: SiteConfiguration) throws {
    for line in config.workerLines {
        if let file = line.secretFile { _ = try readSecret(file, for: line, in: config.file) }
    }
}

/// Everything `checkSecrets` checks, and TLS asked of a build without it, and TLS_CA
/// files that cannot be read. For `Daemon.start()`, before the spool is touched.
func checkRelaySecurity(_ config: SiteConfiguration) throws {
    for line in config.workerLines {
        let at = place(of: line, in: config.file)
        if !SMTPSession.isTLSAvailable {
            if line.tls == .require || line.tls == .smtps {
                throw RelaySecurityError(description: "\(at): TLS=\(line.tls.rawValue), but poold was built without TLS (the package trait TLS was disabled)")
            }
            if line.authUser != nil && !line.authInsecure {
                throw RelaySecurityError(description: "\(at): AUTH= needs TLS, but poold was built without TLS (AUTH_INSECURE=1 would send the password in clear)")
            }
        }
        if let ca = line.tlsCA, line.tls != .none {
            do {
                let status = try FileSystem.status(ca)
                guard status.isRegular else { throw RelaySecurityError(description: "\(at): TLS_CA \(ca) is not a file") }
                _ = try FileSystem.readAll(ca)
            } catch let error as RelaySecurityError {
                throw error
            } catch {
                throw RelaySecurityError(description: "\(at): TLS_CA \(ca) cannot be read: \(error)")
            }
        }
    }
    try checkSecrets(config)
}

/// The session settings for a worker line: `base` (HELO name, timeouts) with the line's
/// TLS=, TLS_CA=, AUTH=, SECRET= and AUTH_INSECURE=. Reads the SECRET file (checked as
/// `checkSecrets` does). A fallback to plain text under TLS=may is logged as a warning.
func sessionSettings(for line: WorkerLine, base: SessionSettings) throws -> SessionSettings {
    var settings = base
    settings.tls = TLSPolicy(line.tls)
    settings.tlsCAFile = line.tls.verifiesCertificate ? line.tlsCA : nil
    settings.credentials = nil
    if let user = line.authUser, let file = line.secretFile {
        settings.credentials = SMTPCredentials(user: user, password: try readSecret(file, for: line, in: nil),
                                               allowUnencrypted: line.authInsecure)
    }
    let who = "SMTP_FORWARD_\(line.number)"
    settings.notice = { message in Log.warning("\(who): \(message)") }
    return settings
}

extension TLSPolicy {
    init(_ mode: TLSMode) {
        switch mode {
        case .none: self = .none
        case .may: self = .may
        case .require: self = .require
        case .smtps: self = .smtps
        }
    }
}

extension TLSMode {
    var verifiesCertificate: Bool { TLSPolicy(self).verifiesCertificate }
}

/// The first line of a SECRET file: the password (a final CR is dropped).
private func readSecret(_ path: String, for line: WorkerLine, in file: String?) throws -> String {
    let at = place(of: line, in: file)
    let status: FileStatus
    let bytes: [UInt8]
    do {
        status = try FileSystem.status(path)
        guard status.isRegular else { throw RelaySecurityError(description: "\(at): SECRET file \(path) is not a file") }
        if status.mode & 0o077 != 0 {
            throw RelaySecurityError(description: "\(at): SECRET file \(path) can be read by group or others (mode \(String(status.mode, radix: 8))): chmod 600 it")
        }
        bytes = try FileSystem.readAll(path)
    } catch let error as RelaySecurityError {
        throw error
    } catch {
        throw RelaySecurityError(description: "\(at): SECRET file \(path) cannot be read: \(error)")
    }
    var first = bytes.prefix { $0 != 10 }
    if first.last == 13 { first.removeLast() }
    guard !first.isEmpty else {
        throw RelaySecurityError(description: "\(at): SECRET file \(path) is empty (its first line must be the password)")
    }
    return String(decoding: first, as: UTF8.self)
}

private func place(of line: WorkerLine, in file: String?) -> String {
    let text = "line \(line.line) (SMTP_FORWARD_\(line.number))"
    return file.map { "\($0): \(text)" } ?? text
}
