// poold: wires the command line to the daemon and its signals; nothing else lives here.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Dispatch
import Foundation
import SpoolKit

let usage = """
usage: poold --config FILE [--drain] [--verbose]

Delivers the jobs in SPOOL_DIR (`<pool><id>.MAIL`, Batch SMTP) to the relays of the
SMTP_FORWARD_n lines of FILE, and keeps watching the spool.

  --config FILE   the site configuration (required)
  --drain         try every job that is due once, then exit 0 (for cron); exits 0 at once
                  when another poold already serves the spool
  --verbose       debug lines too
  --help          this text

signals: SIGHUP re-reads FILE (a bad file is reported and the old one kept);
SIGTERM and SIGINT finish the transactions in hand and exit 0. Under systemd
(NOTIFY_SOCKET set) poold sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1.
poolctl steers a running poold (pause, hold, flush, reload, ...): see poolctl --help.

exit status: 0 done; 1 cannot start (spool, lock, control socket, RUN_AS); 64 bad usage;
78 bad configuration (the message names the file and line).

examples:
  poold --config /etc/poold/poold.cfg
  poold --config /etc/poold/poold.cfg --drain      # from cron
  kill -HUP $(cat /var/spool/poold/.poold.lock)    # reload
"""

var configPath: String?
var drain = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--config":
        guard let value = arguments.popFirst() else {
            FileHandle.standardError.write(Data("poold: --config needs a file\n".utf8))
            exit(64)
        }
        configPath = value
    case "--drain": drain = true
    case "--verbose": Log.verbose = true
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        FileHandle.standardError.write(Data("poold: unknown option '\(argument)'\n\(usage)\n".utf8))
        exit(64)
    }
}
guard let configPath else {
    FileHandle.standardError.write(Data("poold: --config FILE is required\n\(usage)\n".utf8))
    exit(64)
}

let config: SiteConfiguration
do {
    config = try SiteConfiguration.load(path: configPath)
} catch {
    FileHandle.standardError.write(Data("poold: \(error)\n".utf8))
    exit(78)  // EX_CONFIG
}

signal(SIGPIPE, SIG_IGN)
let daemon = Daemon(config: config, draining: drain)
do {
    try daemon.start()
} catch let error as Daemon.StartError {
    if case .alreadyRunning = error, drain {
        print("poold: \(error); nothing to do")
        exit(0)
    }
    FileHandle.standardError.write(Data("poold: \(error)\n".utf8))
    if case .unusableConfiguration = error { exit(78) }  // EX_CONFIG, as for a file that does not parse
    exit(1)
} catch {
    FileHandle.standardError.write(Data("poold: \(error)\n".utf8))
    exit(1)
}

var signalSources: [DispatchSourceSignal] = []
for number in [SIGTERM, SIGINT] {
    signal(number, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
    source.setEventHandler { @Sendable in daemon.shutdown() }
    source.resume()
    signalSources.append(source)
}
signal(SIGHUP, SIG_IGN)
let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
hangup.setEventHandler { @Sendable in daemon.reload() }
hangup.resume()
signalSources.append(hangup)
exit(daemon.wait())
