// A private Postfix 3.7 instance as a relay for one test: its own configuration
// directory (main.cf, master.cf), queue_directory, data_directory and maillog_file
// (through postlogd) in the test's directory; smtpd on 127.0.0.1:PORT only; every
// recipient delivered by a pipe transport (store_message.sh, as nobody). The system's
// Postfix is never started or touched.
//
// `postfix -c ETC check` makes the queue directories; then the master runs in the
// foreground as a child of the test (`setsid -w master -c ETC -d -e 600`: its own
// process group, so `postfix -c ETC stop` can stop it and its daemons, and it exits by
// itself after 600 s). `stop()` runs `postfix -c ETC stop`, waits for the master, and
// kills its process group if it is still there: no master outlives the test.
//
// What it offers: PIPELINING, SIZE, 8BITMIME, CHUNKING, DSN, ENHANCEDSTATUSCODES,
// STARTTLS when given a certificate. Recipients whose local part starts with "nosuch"
// get "554 5.7.1" (check_recipient_access); after `hardErrorLimit` errors in a session
// smtpd says "421 4.7.0 … Error: too many errors" and hangs up.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import XCTest

final class PostfixRelay: TestMTA {
    struct Options {
        /// (certificate, key) for STARTTLS (smtpd_tls_security_level = may).
        var certificate: (String, String)?
        /// smtpd_hard_error_limit (Postfix's default is 20).
        var hardErrorLimit = 20
    }

    let name = "Postfix"
    let port: UInt16
    let mailbox: Mailbox
    let directory: String
    private let etc: String
    private let postfix: String
    private let child: ChildProcess

    init(in parent: String, _ options: Options = Options(), label: String = "postfix") throws {
        postfix = try MTATools.postfix
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: postfix), let owner = getpwnam("postfix")?.pointee else {
            throw MissingTool(description: "the private Postfix instance needs the postfix package (\(postfix) and its user postfix): run scripts/install-test-deps, which installs it unless another MTA holds the MTA slot")
        }
        let daemonDirectory = try PostfixRelay.postconf("daemon_directory")
        directory = parent + "/" + label
        etc = directory + "/etc"
        for sub in ["", "/etc", "/queue", "/data", "/mail"] {
            try fm.createDirectory(atPath: directory + sub, withIntermediateDirectories: true)
        }
        chmod(directory, 0o755)
        chmod(directory + "/mail", 0o1777)  // the pipe runs as nobody
        Glibc.chown(directory + "/data", owner.pw_uid, owner.pw_gid)
        mailbox = Mailbox(directory: directory + "/mail")
        let store = try copyForRelay(try MTATools.storeScript, into: directory, as: "store_message.sh", mode: 0o755)
        try "/^nosuch/ 554 5.7.1 Recipient address rejected by test policy\n".write(toFile: etc + "/recipient_access", atomically: true, encoding: .utf8)

        port = freePort()
        var main = """
            # a private Postfix instance for a poold test (Tests/PoolDaemonTests/Support/Postfix.swift)
            compatibility_level = 3.6
            queue_directory = \(directory)/queue
            data_directory = \(directory)/data
            maillog_file = \(directory)/maillog
            maillog_file_prefixes = \(directory)
            myhostname = postfix.test
            mydomain = test
            myorigin = postfix.test
            mydestination =
            relay_domains =
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            smtpd_relay_restrictions = permit_mynetworks, reject
            smtpd_recipient_restrictions = check_recipient_access regexp:\(etc)/recipient_access
            smtpd_hard_error_limit = \(options.hardErrorLimit)
            smtpd_soft_error_limit = 1000
            smtpd_error_sleep_time = 0
            smtpd_peername_lookup = no
            local_header_rewrite_clients =
            append_dot_mydomain = no
            smtputf8_enable = no
            alias_maps =
            alias_database =
            biff = no
            default_transport = store
            relay_transport = store
            local_transport = store
            store_destination_recipient_limit = 1000
            smtpd_tls_loglevel = 1

            """
        if let (certificate, key) = options.certificate {
            main += "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = \(certificate)\nsmtpd_tls_key_file = \(key)\n"
        }
        try main.write(toFile: etc + "/main.cf", atomically: true, encoding: .utf8)
        let master = """
            # service type private unpriv chroot wakeup maxproc command
            127.0.0.1:\(port) inet n - n - - smtpd
            cleanup   unix  n - n - 0 cleanup
            qmgr      unix  n - n 300 1 qmgr
            rewrite   unix  - - n - - trivial-rewrite
            bounce    unix  - - n - 0 bounce
            defer     unix  - - n - 0 bounce
            trace     unix  - - n - 0 bounce
            verify    unix  - - n - 1 verify
            proxymap  unix  - - n - - proxymap
            showq     unix  n - n - - showq
            error     unix  - - n - - error
            retry     unix  - - n - - error
            discard   unix  - - n - - discard
            anvil     unix  - - n - 1 anvil
            scache    unix  - - n - 1 scache
            postlog   unix-dgram n - n - 1 postlogd
            tlsmgr    unix  - - n 1000? 1 tlsmgr
            store     unix  - n n - - pipe
              flags= user=nobody null_sender= argv=\(store) \(directory)/mail ${sender} ${recipient}

            """
        try master.write(toFile: etc + "/master.cf", atomically: true, encoding: .utf8)

        // `postfix check` creates the queue directories with their owners and modes.
        let check = try ChildProcess("postfix check", executable: postfix, arguments: ["-c", etc, "check"], logTo: directory + "/check.log")
        guard check.waitForExit(timeout: 60) == 0 else {
            throw RelayTrouble(description: "postfix -c \(etc) check failed: \(check.output)\((try? String(contentsOfFile: directory + "/maillog", encoding: .utf8)) ?? "")")
        }
        child = try ChildProcess("postfix master", executable: "/usr/bin/setsid",
                                 arguments: ["-w", daemonDirectory + "/master", "-c", etc, "-d", "-e", "600"], logTo: directory + "/master.out")
        try waitForRelay(child, port: port, name: "Postfix", extraLog: directory + "/maillog")
    }

    static func postconf(_ parameter: String) throws -> String {
        let out = NSTemporaryDirectory() + "poold-postconf-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try ChildProcess("postconf", executable: "/usr/sbin/postconf", arguments: ["-d", "-h", parameter], logTo: out)
        guard run.waitForExit(timeout: 30) == 0 else { throw RelayTrouble(description: "postconf -d -h \(parameter): \(run.output)") }
        return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func queuedFiles() -> Int {
        ["incoming", "active", "deferred", "hold", "maildrop"].reduce(0) { $0 + regularFiles(under: directory + "/queue/" + $1) }
    }

    var log: String { (try? String(contentsOfFile: directory + "/maillog", encoding: .utf8)) ?? "" }

    /// The master's PID, from its pid file.
    var masterPID: pid_t? {
        (try? String(contentsOfFile: directory + "/queue/pid/master.pid", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    private var stopped = false

    func stop() {
        guard !stopped else { return }
        stopped = true
        let master = masterPID
        if child.process.isRunning {
            let stop = try? ChildProcess("postfix stop", executable: postfix, arguments: ["-c", etc, "stop"], logTo: directory + "/stop.log")
            _ = stop?.waitForExit(timeout: 30)
        }
        if child.waitForExit(timeout: 10) == nil, let master, master > 1 {
            kill(-master, SIGKILL)  // the master leads its own process group (setsid)
        }
        child.stop()
    }

    deinit { stop() }
}
