#!/usr/bin/env python3
"""Python smtplib baselines for bench/run (stdlib only).

  smtplib_baseline.py throughput --port P --procs 4 --messages 20000 --size 2048
      P processes, each with its own connection kept open, send MESSAGES in total
      (one recipient each). smtplib sends one command at a time (no PIPELINING).
  smtplib_baseline.py lockstep --port P --rcpts 1000 --size 2048
      one connection, one transaction with RCPTS recipients, one command at a time
      (each RCPT waits for its reply): the cost of not pipelining.

Prints one line: "elapsed=<seconds> sent=<messages> rcpts=<accepted recipients>".
Timing starts before the first connect and ends after the last QUIT reply.
"""
import argparse
import multiprocessing as mp
import smtplib
import sys
import time

SENDER = "sender@bench.example"


def message(size, n):
    head = (
        "From: Bench Sender <sender@bench.example>\r\n"
        "To: list@bench.example\r\n"
        f"Subject: smtplib baseline message {n}\r\n"
        f"Message-ID: <py.{n}@bench.example>\r\n"
        "\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopq\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)] + b"\r\n"
    return head + body


def worker(args):
    port, start, count, size = args
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example")
    s.ehlo()
    msg = message(size, start)  # same size for all; content does not matter to the sink
    sent = 0
    for i in range(start, start + count):
        refused = s.sendmail(SENDER, ["user%d@rcpt%d.bench.example" % (i, i % 10)], msg)
        if not refused:
            sent += 1
    s.quit()
    return sent


def throughput(a):
    per = [a.messages // a.procs + (1 if k < a.messages % a.procs else 0) for k in range(a.procs)]
    starts = [sum(per[:k]) for k in range(a.procs)]
    ctx = mp.get_context("fork")
    with ctx.Pool(a.procs) as pool:
        t0 = time.monotonic()
        results = pool.map(worker, [(a.port, starts[k], per[k], a.size) for k in range(a.procs)])
        t1 = time.monotonic()
    sent = sum(results)
    print("elapsed=%.6f sent=%d rcpts=%d" % (t1 - t0, sent, sent))
    return 0 if sent == a.messages else 1


def lockstep(a):
    rcpts = ["user%d@rcpt%d.bench.example" % (i, i % 10) for i in range(a.rcpts)]
    msg = message(a.size, 0)
    t0 = time.monotonic()
    s = smtplib.SMTP("127.0.0.1", a.port, local_hostname="bench.example", timeout=600)
    s.ehlo()
    refused = s.sendmail(SENDER, rcpts, msg)
    s.quit()
    t1 = time.monotonic()
    ok = a.rcpts - len(refused)
    print("elapsed=%.6f sent=1 rcpts=%d" % (t1 - t0, ok))
    return 0 if ok == a.rcpts else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["throughput", "lockstep"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--rcpts", type=int, default=1000)
    p.add_argument("--size", type=int, default=2048)
    a = p.parse_args()
    return throughput(a) if a.mode == "throughput" else lockstep(a)


if __name__ == "__main__":
    sys.exit(main())
