#!/usr/bin/env python3
"""How many connections a client holds open to each site, sampled (stdlib only), for
bench/run mx.

    connsample.py --port P --out FILE [--interval 0.05] [--lifetime 900]

Every interval it reads /proc/net/tcp and counts the established connections whose
remote port is P (the client's side of each connection to a site), per remote address.
On SIGTERM (or at the end of its lifetime) it writes one line to FILE:
"samples=N max_total=T max_site=S": the most connections open at once in all, and to
any one address. Sampling can miss a connection that lives less than an interval.
"""
import argparse
import os
import signal
import time


def sample(port):
    """{remote address: connections}: each socket once (/proc/net/tcp comes in several
    reads, not atomically, so a socket may show twice: the set removes the repeat)."""
    with open("/proc/net/tcp", "rb") as f:
        text = f.read().decode()
    seen = set()
    for line in text.splitlines()[1:]:
        v = line.split()
        local, rem, state = v[1], v[2], v[3]
        if state == "01" and int(rem.split(":")[1], 16) == port:
            seen.add((local, rem))
    per = {}
    for _, rem in seen:
        addr = rem.split(":")[0]
        per[addr] = per.get(addr, 0) + 1
    return per


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--lifetime", type=float, default=900)
    a = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.time() + a.lifetime
    n = max_total = max_site = 0
    while not stop and time.time() < end:
        per = sample(a.port)
        n += 1
        max_total = max(max_total, sum(per.values()))
        max_site = max([max_site] + list(per.values()))
        time.sleep(a.interval)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"samples={n} max_total={max_total} max_site={max_site}\n")
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
