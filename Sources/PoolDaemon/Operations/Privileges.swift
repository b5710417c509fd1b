// Least privilege: started as root with RUN_AS=user, poold hands its spool places and its
// control socket to that user, then drops to it (its primary group and its supplementary
// groups) after everything that needs root is open. Started as root without RUN_AS, it
// says so at start. Once dropped there is no way back: a setuid(0) that succeeds is fatal.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

enum Privileges {
    struct Account {
        var name: String
        var uid: uid_t
        var gid: gid_t
    }

    static func account(_ name: String) throws -> Account {
        guard let pw = getpwnam(name) else { throw ControlError("RUN_AS=\(name): no such user") }
        return Account(name: name, uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid)
    }

    /// Gives the daemon's own places in the spool to `account` (they may have been made by
    /// root). The spool directory itself stays as the operator set it up: it is shared with
    /// the list software, and `drop` checks that the account can write there.
    static func handOver(_ spool: Spool, extra: [String], to account: Account) throws {
        for path in [spool.badDirectory, spool.deferredDirectory, spool.holdDirectory, spool.stateDirectory, spool.lockPath] + extra {
            guard chown(path, account.uid, account.gid) == 0 else {
                throw ControlError("RUN_AS=\(account.name): cannot give \(path) to uid \(account.uid): \(String(cString: strerror(errno)))")
            }
        }
        for name in (try? FileSystem.names(in: spool.stateDirectory)) ?? [] {
            _ = chown(spool.stateDirectory + "/" + name, account.uid, account.gid)
        }
    }

    static func drop(to account: Account, spool: Spool) throws {
        guard initgroups(account.name, account.gid) == 0, setgid(account.gid) == 0, setuid(account.uid) == 0 else {
            throw ControlError("RUN_AS=\(account.name): cannot drop privileges: \(String(cString: strerror(errno)))")
        }
        if account.uid != 0 && setuid(0) == 0 {
            throw ControlError("RUN_AS=\(account.name): privileges could be regained after dropping them; refusing to run")
        }
        guard access(spool.root, W_OK | X_OK) == 0 else {
            throw ControlError("RUN_AS=\(account.name): uid \(account.uid) cannot write to the spool \(spool.root) (give it to that user or a group it is in)")
        }
    }
}
