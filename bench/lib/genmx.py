#!/usr/bin/env python3
"""The mail for bench/run mx (stdlib only): domains on sites, a DNS zone, jobs, and the
Postfix transport map that routes the same domains to the same hosts.

    genmx.py DIR --sites 20 --domains 200 --recipients 20000 --per-job 4 --port P
             [--first-address 10] [--size 2048] [--seed 1]

Site s (0-based) is the host mx.site<s>.mx.bench at 127.0.0.<first-address + s>; domain d
(d<d>.mx.bench) is on site d mod sites (MX 10 mx.site<s>...). Each domain gets
recipients / domains recipients; the recipients are shuffled (seeded) and cut into jobs of
--per-job each, so a job's recipients fall on one to --per-job sites. Writes:
  DIR/zone           the zone for scripts/relays/dns_server.py (TTL 3600)
  DIR/jobs/*.MAIL    the jobs (one transaction each, a ~SIZE-byte message), for poold's
                     spool (copy them) and for Postfix's submission (same bytes)
  DIR/transport      texthash transport map: d<d>.mx.bench smtp:[127.0.0.x]:P
  DIR/expect         "recipients=R transactions=T jobs=J" and a line per site
                     "site=s address=127.0.0.x transactions=t recipients=r": poold (and
                     Postfix) deliver a job's recipients for one site in one transaction
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from genjobs import message_lines  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--sites", type=int, default=20)
    p.add_argument("--domains", type=int, default=200)
    p.add_argument("--recipients", type=int, default=20000)
    p.add_argument("--per-job", type=int, default=4)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--first-address", type=int, default=10)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.first_address + a.sites > 255 or a.recipients % a.domains:
        raise SystemExit("genmx.py: sites must fit in 127.0.0.x, recipients be a multiple of domains")
    os.makedirs(os.path.join(a.dir, "jobs"), exist_ok=True)
    address = [f"127.0.0.{a.first_address + s}" for s in range(a.sites)]

    with open(os.path.join(a.dir, "zone"), "w") as z, open(os.path.join(a.dir, "transport"), "w") as t:
        z.write("$TTL 3600\n")
        for s in range(a.sites):
            z.write(f"mx.site{s}.mx.bench. 3600 IN A {address[s]}\n")
        for d in range(a.domains):
            z.write(f"d{d}.mx.bench. 3600 IN MX 10 mx.site{d % a.sites}.mx.bench.\n")
            t.write(f"d{d}.mx.bench smtp:[{address[d % a.sites]}]:{a.port}\n")

    per_domain = a.recipients // a.domains
    slots = [d for d in range(a.domains) for _ in range(per_domain)]
    random.Random(a.seed).shuffle(slots)
    tx = [0] * a.sites
    rc = [0] * a.sites
    head, line = message_lines(a.size, 0)
    body = line * max(1, (a.size - len(head)) // len(line))
    seen = [0] * a.domains
    jobs = 0
    for j in range(0, len(slots), a.per_job):
        jobs += 1
        rcpts, sites = [], set()
        for d in slots[j:j + a.per_job]:
            rcpts.append(f"user{seen[d]}@d{d}.mx.bench")
            seen[d] += 1
            sites.add(d % a.sites)
            rc[d % a.sites] += 1
        for s in sites:
            tx[s] += 1
        msg_head = head.replace(b"benchmark message 0", b"benchmark message %d" % jobs).replace(
            b"<bench.0@", b"<bench.%d@" % jobs)
        job = (b"MAIL FROM:<sender@bench.example>\r\n"
               + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
               + b"DATA\r\n" + msg_head + body + b".\r\n")
        name = "B%08d.MAIL" % jobs
        tmp = os.path.join(a.dir, "jobs", ".tmp." + name)
        with open(tmp, "wb") as f:
            f.write(job)
        os.rename(tmp, os.path.join(a.dir, "jobs", name))

    with open(os.path.join(a.dir, "expect"), "w") as e:
        e.write(f"recipients={len(slots)} transactions={sum(tx)} jobs={jobs}\n")
        for s in range(a.sites):
            e.write(f"site={s} address={address[s]} transactions={tx[s]} recipients={rc[s]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
