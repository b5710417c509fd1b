#!/usr/bin/env python3
"""Waits until relays have counted what they should, and says when each got there (stdlib
only), for bench/run dist: polling in one process costs the measured daemons less than a
shell loop forking tr/grep.

    countwait.py --since T0 [--timeout 600] --group NAME WANT FILE [FILE ...] [--group ...]

A FILE is smtp-sink's -c output (its last "mesg=N") or share_router.py's count file (its
last "rows=N"); a group's count is the sum over its files. Polls every 20 ms until every
group has reached its WANT or the timeout. Prints a line per group,
"group=NAME want=W got=N done=S" (S: seconds after T0, a `date +%s.%N` wall-clock time,
when the count first reached W; "never" if it did not), then "all=S" (or "all=never").
Exit 0 when every group got there.
"""
import argparse
import re
import sys
import time

COUNT = re.compile(rb"(?:mesg|rows)=(\d+)")


def count(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 200))
            tail = f.read()
    except OSError:
        return 0
    found = COUNT.findall(tail)
    return int(found[-1]) if found else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--group", nargs="+", action="append", required=True, metavar="NAME WANT FILE")
    a = p.parse_args()
    groups = [(g[0], int(g[1]), g[2:]) for g in a.group]
    done = {}
    got = {}
    end = time.time() + a.timeout
    while time.time() < end:
        for name, want, files in groups:
            got[name] = sum(count(f) for f in files)
            if name not in done and got[name] >= want:
                done[name] = time.time() - a.since
        if len(done) == len(groups):
            break
        time.sleep(0.02)
    for name, want, _ in groups:
        d = done.get(name)
        print(f"group={name} want={want} got={got.get(name, 0)} done={'never' if d is None else f'{d:.3f}'}")
    print(f"all={max(done.values()):.3f}" if len(done) == len(groups) else "all=never")
    return 0 if len(done) == len(groups) else 1


if __name__ == "__main__":
    sys.exit(main())
