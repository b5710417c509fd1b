#!/usr/bin/env python3
"""What a relay saw, for bench/run's latency rows (stdlib only). Prints one line of key=value.

    arrivals.py records DIR --rtt-ms 50
        DIR holds scripts/relays/fault_server.py's records (one JSON file per accepted
        transaction, with its arrival time): n, bdat (transactions sent with BDAT),
        span_s (last arrival − first), steady_rtt = span / (n − 1) / RTT: round trips per
        message once the connection is up, start-up and QUIT left out.
    arrivals.py postfix-log MAILLOG
        A private Postfix relay's log (postfix_bench.py relay): n (messages discarded, i.e.
        accepted), bdat (BDAT commands, from smtpd's "disconnect ... bdat=N" lines).
"""
import glob
import json
import os
import re
import sys


def records(directory, rtt_ms):
    times, bdat = [], 0
    for path in glob.glob(os.path.join(directory, "[0-9]*.json")):
        with open(path) as f:
            rec = json.load(f)
        times.append(rec["time"])
        bdat += rec.get("mode") == "BDAT"
    times.sort()
    n = len(times)
    span = times[-1] - times[0] if n > 1 else 0.0
    steady = span / (n - 1) / (rtt_ms / 1000.0) if n > 1 else 0.0
    print(f"n={n} bdat={bdat} span_s={span:.3f} steady_rtt={steady:.3f}")


def postfix_log(path):
    n = bdat = 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if "/discard[" in line and " status=sent " in line:
                    n += 1
                m = re.search(r"/smtpd\[\d+\]: disconnect from .* bdat=(\d+)", line)
                if m:
                    bdat += int(m.group(1))
    except OSError:
        pass
    print(f"n={n} bdat={bdat}")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "records":
        rtt = float(sys.argv[sys.argv.index("--rtt-ms") + 1]) if "--rtt-ms" in sys.argv else 50.0
        records(sys.argv[2], rtt)
    elif len(sys.argv) == 3 and sys.argv[1] == "postfix-log":
        postfix_log(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
