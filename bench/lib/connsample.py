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
    per = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            v = line.split()
            rem, state = v[2], v[3]
            addr, rport = rem.split(":")
            if state == "01" and int(rport, 16) == port:
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
