#!/usr/bin/env python3
"""Content check for the large-message benchmark: the message as the relay stored it.

  msghash.py job FILE    sha256 and size of the first transaction's message in a BSMTP
                         job (dot-stuffing undone, line ends as LF)
  msghash.py dump FILE   the same for the single message in an smtp-sink -D dump file
                         (smtp-sink's own X-*/Received: header lines and the empty line
                         it appends are removed)
Prints "<sha256> <bytes>". Streams, so a 50 MB message needs little memory.
"""
import hashlib
import sys


def job(path):
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for line in f:  # envelope
            if line.rstrip(b"\r\n").upper() == b"DATA":
                break
        for line in f:
            body = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
            if body == b".":
                break
            if body.startswith(b"."):
                body = body[1:]
            h.update(body + b"\n")
            n += len(body) + 1
    return h.hexdigest(), n


def dump(path):
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for line in f:  # smtp-sink's header: X-... lines, then a 3-line Received:
            if line.startswith(b"Received: "):
                next(f)
                next(f)
                break
        prev = None
        for line in f:
            if prev is not None:
                h.update(prev)
                n += len(prev)
            prev = line
        if prev is not None and prev != b"\n":  # the last line must be smtp-sink's empty one
            h.update(prev)
            n += len(prev)
    return h.hexdigest(), n


if __name__ == "__main__":
    digest, size = (job if sys.argv[1] == "job" else dump)(sys.argv[2])
    print(digest, size)
