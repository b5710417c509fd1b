#!/usr/bin/env python3
"""Writes Batch SMTP job files straight into a poold spool (no poolctl: fast).

    genjobs.py SPOOL --jobs N [--rcpts R] [--size BYTES] [--pool A] [--start 1]

Each job is one transaction: MAIL FROM, R x RCPT TO, DATA, a message of about BYTES
bytes (headers + 76-column text lines, CRLF), the final dot. Files are written under a
temporary name and renamed to <pool><8-digit id>.MAIL, as a real writer would.
For large sizes the body is written in chunks, so memory stays small.
"""
import argparse
import os
import sys


def message_lines(size, job):
    head = (
        "From: Bench Sender <sender@bench.example>\r\n"
        "To: list@bench.example\r\n"
        f"Subject: poold benchmark message {job}\r\n"
        f"Message-ID: <bench.{job}@bench.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    line = (b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopq" + b"\r\n")
    return head, line


def write_job(path_tmp, path, job, rcpts, size):
    head, line = message_lines(size, job)
    env = [b"MAIL FROM:<sender@bench.example>\r\n"]
    for r in range(rcpts):
        env.append(b"RCPT TO:<user%d.%d@rcpt%d.bench.example>\r\n" % (job, r, r % 10))
    env.append(b"DATA\r\n")
    with open(path_tmp, "wb", buffering=1 << 20) as f:
        f.write(b"".join(env))
        f.write(head)
        left = max(0, size - len(head))
        block = line * 1024
        while left >= len(block):
            f.write(block)
            left -= len(block)
        while left > 0:
            n = min(left, len(line))
            if n < len(line):
                # a short last line, still CRLF-terminated, never starting with "."
                f.write(b"x" * max(0, n - 2) + b"\r\n")
                left = 0
            else:
                f.write(line)
                left -= n
        f.write(b".\r\n")
    os.rename(path_tmp, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spool")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--rcpts", type=int, default=1)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--pool", default="A")
    p.add_argument("--start", type=int, default=1)
    a = p.parse_args()
    for i in range(a.start, a.start + a.jobs):
        name = "%s%08d.MAIL" % (a.pool, i)
        write_job(os.path.join(a.spool, ".tmp." + name), os.path.join(a.spool, name), i, a.rcpts, a.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
