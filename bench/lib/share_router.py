#!/usr/bin/env python3
"""The primary's relay for bench/run dist: an SMTP server (aiosmtpd, run it with the venv's
python) that plays the MTAs between Distribute instances on one machine.

    share_router.py --port 0 --ready-file F --count-file C --log FILE --poolctl PATH \\
        --route poold@dist1.test PEER1.cfg [--route ADDR CFG ...] [--lifetime 900]

A message for a routed address is piped, as an MTA's pipe transport delivers it (LF line
ends, Return-Path: and Delivered-To: on top), into `PATH --config CFG receive`; the
command's exit status becomes the reply to the final dot: 0 → 250, 75 → 451 (the client
retries), anything else → 550 (as Postfix and Exim map sysexits). Every other message (a
row of the primary's own share) is counted and dropped, like smtp-sink. C is rewritten
(atomically) every 50 ms while the counts move: "rows=N shares=M". FILE gets a JSON line
per share piped: {"time", "rcpt", "bytes", "exit", "seconds", "stderr"}.
PIPELINING and 8BITMIME are offered; messages of any size and lines up to 1 MiB are taken.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "relays"))
from lifecycle import serve  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402

log = logging.getLogger("share_router")


class Router:
    def __init__(self, a):
        self.a = a
        self.routes = {addr.lower(): cfg for addr, cfg in a.route}
        self.rows = 0
        self.shares = 0
        self.written = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_DATA(self, server, session, envelope):
        routed = [r for r in envelope.rcpt_tos if r.lower() in self.routes]
        if len(routed) < len(envelope.rcpt_tos):
            self.rows += 1
        worst = "250 2.0.0 OK"
        for rcpt in routed:
            reply = await self.pipe(rcpt, envelope)
            if not reply.startswith("250") and not worst.startswith("550"):
                worst = reply
        return worst

    async def pipe(self, rcpt, envelope):
        body = (f"Return-Path: <{envelope.mail_from}>\nDelivered-To: {rcpt}\n".encode()
                + envelope.content.replace(b"\r\n", b"\n"))
        t = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            self.a.poolctl, "--config", self.routes[rcpt.lower()], "receive",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(body)
        code = proc.returncode
        with open(self.a.log, "a") as f:
            f.write(json.dumps({"time": time.time(), "rcpt": rcpt, "bytes": len(body), "exit": code,
                                "seconds": round(time.monotonic() - t, 3),
                                "stderr": err.decode(errors="replace").strip()}) + "\n")
        if code == 0:
            self.shares += 1
            return "250 2.0.0 spooled by poolctl receive"
        if code == 75:
            return "451 4.3.0 poolctl receive: temporary trouble"
        return f"550 5.6.0 poolctl receive refused it (exit {code})"

    def write_counts(self):
        now = (self.rows, self.shares)
        if now == self.written:
            return
        tmp = self.a.count_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"rows={now[0]} shares={now[1]}\n")
        os.replace(tmp, self.a.count_file)
        self.written = now

    async def counter(self):
        while True:
            self.write_counts()
            await asyncio.sleep(0.05)


async def main(a):
    loop = asyncio.get_running_loop()
    router = Router(a)
    router.write_counts()

    class Proto(SMTP):
        line_length_limit = 1 << 20

    def factory():
        return Proto(router, hostname="router.bench.example", data_size_limit=0,
                     enable_SMTPUTF8=True, decode_data=False, timeout=300)

    server = await loop.create_server(factory, host="127.0.0.1", port=a.port)
    counting = asyncio.ensure_future(router.counter())
    await serve(server, a.lifetime, a.ready_file, log, "routing %s" % ", ".join(router.routes))
    counting.cancel()
    router.write_counts()
    server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--count-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--poolctl", required=True)
    p.add_argument("--route", nargs=2, action="append", default=[], metavar=("ADDRESS", "CONFIG"))
    p.add_argument("--lifetime", type=float, default=900)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args))
