// poolctl: see and steer poold. Commands live in their own files; this one parses the
// command line and dispatches.

#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import SpoolKit

let usage = """
usage: poolctl [--config FILE] COMMAND [options]

commands:
  status [--json]            queued jobs and bytes per pool, deferred and bad counts, and
                             each worker (state, job in hand, counters); works with the
                             daemon stopped too (the spool as it is on disk)
  status --watch [--interval S] [--count N]
                             the same screen every S seconds (default 1) with each
                             worker's recipients per second and when the queue should be
                             empty; --count N stops after N refreshes
  submit [--pool P] --from ADDR --to ADDR [--to ADDR...] < message
                             spool a message (RFC 5322 text on standard input) for these
                             recipients; --from '' is the null sender
  submit --list NAME [--admin] --from ADDR --to ADDR... < message
                             spool into the list's pool (LIST_POOL_NAME=x,y: postings to x,
                             administrative mail with --admin to y; else DEFAULT_LIST_POOL)
  submit --bsmtp [--pool P] < job
                             spool a Batch SMTP job (or a MERGE job) after checking it whole
  submit --merge [--pool P] --from ADDR --table FILE.csv < template
                             spool a mail-merge job: one message per table row (the
                             EMAIL column), the template with &NAME; fields and .BB/.ELSE/.EB
                             blocks on standard input; --from may hold fields too
                             (bounces+&*VERP;@example.org)
  preview JOB [--row N]      a merge job's row N (default 1) rendered: the message as
                             the relay receives it on standard output, the envelope on
                             standard error; JOB is a name (queued, deferred, held) or a path
  check                      validate the configuration, print workers and pools (and
                             the Distribute setup: peers, weights, the DIST_SECRET key)
  receive < share            spool one Distribute share as the peer's MTA pipes it in
                             (signature, freshness and replays checked); exit 0 spooled or
                             spooled before, 65 malformed, 77 refused (bad or missing
                             signature, too old), 75 temporary trouble (the MTA retries)
  show JOB                   a job's place, envelope and each recipient's state
  requeue JOB                put a fixed job from bad/ back into the spool
  pause N | resume N         stop / restart worker N (after the transaction in hand)
  hold JOB|POOL              keep a job (moved to hold/) or a pool's jobs from delivery
  release JOB|POOL           undo hold
  flush                      make every deferred job due now
  reload                     re-read the configuration (as SIGHUP does)
  stop                       finish the transactions in hand and exit (as SIGTERM does)

The configuration is FILE, else $POOLD_CONFIG, else /etc/poold/poold.cfg.
submit prints the new job's file name as its last line.

examples:
  poolctl --config poold.cfg status
  poolctl --config poold.cfg status --watch
  poolctl --config poold.cfg submit --pool A --from list@example.org --to a@example.com < msg.eml
  poolctl --config poold.cfg submit --bsmtp < posting.bsmtp
  poolctl --config poold.cfg submit --merge --from 'bounces+&*VERP;@lists.example.org' --table members.csv < letter.txt
  poolctl --config poold.cfg preview A000123.MAIL --row 42
  poolctl --config poold.cfg check
"""

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("poolctl: \(message)\n".utf8))
    exit(status)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var configPath = ProcessInfo.processInfo.environment["POOLD_CONFIG"] ?? "/etc/poold/poold.cfg"
if let i = arguments.firstIndex(of: "--config") {
    guard i + 1 < arguments.count else { fail("--config needs a file", status: 64) }
    configPath = arguments[i + 1]
    arguments.removeSubrange(i...(i + 1))
}
if arguments.isEmpty || arguments.contains("--help") || arguments.contains("-h") || arguments.first == "help" {
    print(usage)
    exit(arguments.isEmpty ? 64 : 0)
}

func loadConfiguration(_ configPath: String) -> SiteConfiguration {
    do {
        return try SiteConfiguration.load(path: configPath)
    } catch {
        fail("\(error)", status: 78)
    }
}

/// For status and the control commands: a configuration that fails the check still says
/// where the spool is, and a running daemon keeps the configuration it loaded. The error
/// is shown; the command goes on when the daemon runs.
func locateDaemon(_ configPath: String) -> SiteConfiguration {
    do {
        return try SiteConfiguration.load(path: configPath)
    } catch {
        guard let found = SiteConfiguration.locations(path: configPath),
              Spool(root: found.spoolDirectory).daemonPID() != nil else { fail("\(error)", status: 78) }
        FileHandle.standardError.write(Data("poolctl: warning: \(error) (poold runs with the configuration it loaded)\n".utf8))
        return found
    }
}

let command = arguments.removeFirst()
switch command {
case "status": Status.run(locateDaemon(configPath), arguments)
case "submit": Submit.run(loadConfiguration(configPath), arguments)
case "check": Check.run(configPath)
case "receive": Receive.run(configPath, arguments)
case "reload":  // the file is checked first: poold would refuse it anyway
    Control.send(loadConfiguration(configPath), [command])
case "flush", "stop":
    Control.send(locateDaemon(configPath), [command])
case "pause", "resume", "hold", "release":
    guard arguments.count == 1 else { fail("\(command) takes one argument", status: 64) }
    if command == "pause" || command == "resume", Int(arguments[0]) == nil {
        fail("\(command) takes a worker number (see poolctl status)", status: 64)
    }
    Control.send(locateDaemon(configPath), [command, arguments[0]])
case "preview": MergeCommands.preview(loadConfiguration(configPath), arguments)
case "show":
    guard arguments.count == 1 else { fail("show takes a job name", status: 64) }
    Control.show(loadConfiguration(configPath), arguments[0])
case "requeue":
    guard arguments.count == 1 else { fail("requeue takes a job name", status: 64) }
    Control.requeue(loadConfiguration(configPath), arguments[0])
default: fail("unknown command '\(command)'\n\(usage)", status: 64)
}
