#!/usr/bin/env python3
"""Scripted SMTP server for faults no real server produces (stdlib asyncio only).

    python3 scripts/relays/fault_server.py --port 0 --ready-file F --out DIR \\
        [--no-pipelining] [--ext WORD]... [--no-ehlo] [--lockstep-check] \\
        [--fault PHASE:ACTION[:ARG]]... [--fault-after N] [--fault-repeat] [--max-rcpt K]

A correct SMTP server otherwise: HELO/EHLO/MAIL/RCPT/DATA (dot-unstuffing)/BDAT (when
CHUNKING is advertised with --ext CHUNKING)/RSET/NOOP/VRFY/QUIT. Accepted transactions are
recorded in DIR exactly like scripts/relays/recorder.py does (DIR/<seq>-<pid>.json,
DIR/events.jsonl); a null sender is recorded as "<>".

Faults: PHASE is greeting, ehlo (EHLO or HELO), mail, rcpt, data (the DATA command, or
the first BDAT of a transaction), body (while the message is arriving), dot (after the
final dot / BDAT LAST, before the reply). ACTION is
  drop          close the connection instead of replying
  stall[:SECS]  say nothing for SECS (default 60), then close
  delay:SECS    say nothing for SECS, then answer normally (a slow relay)
  reply:TEXT    reply TEXT instead (e.g. "452 4.5.3 too many recipients"); a 421 reply
                closes the connection, and so does any reply in the body phase
  garbage       send "HELLO THIS IS NOT SMTP" instead of the reply, then carry on
A fault fires on the Nth occurrence of its phase over the server's whole life
(--fault-after N, default 1; per fault: PHASE@N:ACTION...), and with --fault-repeat (or
PHASE@N+:...) on every occurrence from the Nth on.

--lockstep-check: without PIPELINING, a command (or message data) that arrives before
the reply to the previous command was written is a violation; with PIPELINING, the same
holds after the commands RFC 2920 puts last in a group (EHLO, HELO, DATA, NOOP, QUIT,
VRFY, EXPN), and for message data sent before the 354. Each violation is a line in
DIR/violations.txt (and on stderr); the server replies normally.
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import re
import sys
import time
from lifecycle import serve

log = logging.getLogger("fault_server")

PHASES = ("greeting", "ehlo", "mail", "rcpt", "data", "body", "dot")
ACTIONS = ("drop", "stall", "delay", "reply", "garbage")
GARBAGE = b"HELLO THIS IS NOT SMTP\r\n"
LAST_IN_GROUP = {"EHLO", "HELO", "DATA", "NOOP", "QUIT", "VRFY", "EXPN", "TURN",
                 "STARTTLS", "AUTH"}
MAX_LINE = 4096


class Closed(Exception):
    """The connection is gone (or we closed it)."""


class Fault:
    def __init__(self, spec, default_after, default_repeat):
        parts = spec.split(":", 2)
        if len(parts) < 2:
            raise ValueError("fault %r: want PHASE:ACTION[:ARG]" % spec)
        phase, action = parts[0].strip().lower(), parts[1].strip().lower()
        self.arg = parts[2] if len(parts) == 3 else None
        self.after, self.repeat = default_after, default_repeat
        m = re.fullmatch(r"([a-z]+)(?:@(\d+)(\+)?)?", phase)
        if not m:
            raise ValueError("fault %r: bad phase" % spec)
        self.phase = m.group(1)
        if m.group(2):
            self.after, self.repeat = int(m.group(2)), bool(m.group(3))
        if self.phase not in PHASES:
            raise ValueError("fault %r: phase must be one of %s" % (spec, ", ".join(PHASES)))
        if action not in ACTIONS:
            raise ValueError("fault %r: action must be one of %s" % (spec, ", ".join(ACTIONS)))
        if action == "reply" and not (self.arg and re.match(r"\d{3}[ -]", self.arg + " ")):
            raise ValueError("fault %r: reply needs the reply text, e.g. reply:421 4.3.2 bye" % spec)
        self.action = action
        self.spec = spec

    def matches(self, count):
        return count == self.after or (self.repeat and count >= self.after)


class Server:
    def __init__(self, args):
        self.args = args
        self.pid = os.getpid()
        self.seq = 0
        self.conn_seq = 0
        self.counts = {p: 0 for p in PHASES}
        self.faults = [Fault(s, args.fault_after, args.fault_repeat) for s in args.fault]
        self.pipelining = not args.no_pipelining
        self.exts = [e.strip() for e in args.ext]
        self.chunking = any(e.upper().split()[0] == "CHUNKING" for e in self.exts if e)
        self.size_limit = 0
        for e in self.exts:
            w = e.split()
            if w and w[0].upper() == "SIZE" and len(w) > 1 and w[1].isdigit():
                self.size_limit = int(w[1])
        self.out = args.out
        if self.out:
            os.makedirs(self.out, exist_ok=True)
        self.conns = set()

    def occurrence(self, phase):
        """Count one occurrence of phase; return the fault that fires now, if any."""
        self.counts[phase] += 1
        for f in self.faults:
            if f.phase == phase and f.matches(self.counts[phase]):
                return f
        return None

    def event(self, kind, conn, **fields):
        if not self.out:
            return
        rec = {"time": time.time(), "pid": self.pid, "event": kind,
               "peer": list(conn.peer) if conn and conn.peer else None}
        rec.update(fields)
        self._append("events.jsonl", json.dumps(rec) + "\n")

    def _append(self, name, text):
        fd = os.open(os.path.join(self.out, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)

    def violation(self, conn, kind, text):
        line = "%.6f conn=%d peer=%s %s: %s" % (time.time(), conn.id,
                                                 "%s:%s" % tuple(conn.peer[:2]) if conn.peer else "?",
                                                 kind, text)
        log.warning("VIOLATION %s", line)
        if self.out:
            self._append("violations.txt", line + "\n")

    def record(self, conn, txn, data):
        self.seq += 1
        name = "%08d-%d.json" % (self.seq, self.pid)
        if not self.out:
            return name
        rec = {
            "mail_from": txn["mail_from"],
            "mail_options": txn["mail_options"],
            "rcpt_tos": txn["rcpt_tos"],
            "rcpt_options": txn["rcpt_options"],
            "data_b64": base64.b64encode(data).decode("ascii"),
            "peer": list(conn.peer) if conn.peer else None,
            "time": time.time(),
            "helo": conn.helo,
            "seq": self.seq,
            "pid": self.pid,
            "size": len(data),
            "mode": txn["mode"],   # "DATA" or "BDAT"
        }
        tmp = os.path.join(self.out, "." + name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.replace(tmp, os.path.join(self.out, name))
        return name


class Conn(asyncio.Protocol):
    def __init__(self, server):
        self.srv = server
        self.args = server.args
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.waiter = None
        self.transport = None
        self.peer = None
        self.helo = None
        self.esmtp = False
        self.refused = False       # greeting was not 2xx
        self.pending = None        # command whose reply is not written yet
        self.pending_wait = False  # ... and the client must wait for that reply
        self.pending_flagged = False
        self.txn = None
        self.task = None

    # -- transport callbacks ----------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.srv.conn_seq += 1
        self.id = self.srv.conn_seq
        self.peer = transport.get_extra_info("peername")
        self.srv.conns.add(self)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data):
        if self.pending is not None and self.pending_wait and not self.pending_flagged:
            self.flag_early(bytes(data))
        self.buf += data
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()
        return True  # keep the write side open for the replies still due

    def connection_lost(self, exc):
        self.closed = True
        self.srv.conns.discard(self)
        self._wake()

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _wait_data(self):
        if self.closed or self.eof:
            raise Closed()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waiter, self.args.idle_timeout)
        except asyncio.TimeoutError:
            self.write(b"421 4.4.2 Error: timeout exceeded\r\n")
            self.close()
            raise Closed()
        finally:
            self.waiter = None

    # -- lockstep / pipelining checks ---------------------------------------
    def check_mode(self):
        return "LOCKSTEP" if not self.srv.pipelining else "PIPELINING"

    def flag_early(self, data):
        if not self.args.lockstep_check:
            return
        self.pending_flagged = True
        first = data.split(b"\n", 1)[0].rstrip(b"\r")[:80]
        self.srv.violation(self, self.check_mode(), "%r received before the reply to %r"
                           % (first.decode("latin-1"), self.pending))

    def took(self, what, must_wait):
        """A command (or the message) was consumed; its reply is now due."""
        self.pending = what
        self.pending_wait = must_wait
        self.pending_flagged = False
        if must_wait and self.buf:
            self.flag_early(bytes(self.buf))

    # -- I/O ------------------------------------------------------------------
    def write(self, data):
        if not self.closed and not self.transport.is_closing():
            self.transport.write(data)
        self.pending = None

    def reply(self, text):
        if isinstance(text, (list, tuple)):
            lines = list(text)
            out = "".join("%s-%s\r\n" % (l[:3], l[4:]) for l in lines[:-1])
            out += lines[-1] + "\r\n"
        else:
            out = text + "\r\n"
        log.debug("conn %d << %r", self.id, out)
        self.write(out.encode("utf-8", "surrogateescape"))

    def close(self):
        if not self.closed:
            self.transport.close()
        self.closed = True

    async def readline(self):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > MAX_LINE:
                # swallow the rest of an over-long line
                self.buf.clear()
                while True:
                    await self._wait_data()
                    i = self.buf.find(b"\n")
                    if i >= 0:
                        del self.buf[: i + 1]
                        return None
                    self.buf.clear()
            start = max(0, len(self.buf) - 1)
            await self._wait_data()

    async def readexactly(self, n, on_progress=None):
        got = bytearray()
        while len(got) < n:
            if not self.buf:
                await self._wait_data()
            take = min(n - len(got), len(self.buf))
            got += self.buf[:take]
            del self.buf[:take]
            if on_progress is not None and got:
                await on_progress(len(got), n)
        return bytes(got)

    # -- faults -----------------------------------------------------------------
    async def fault(self, phase):
        """Count an occurrence of phase; if a fault fires, act it out.
        Returns None (no fault), or ("reply", text) / ("garbage", None) when
        something stood in for the reply. Raises Closed when the connection ends."""
        f = self.srv.occurrence(phase)
        if f is None:
            return None
        log.info("conn %d: fault %s fires (%s #%d)", self.id, f.spec, phase, self.srv.counts[phase])
        self.srv.event("fault", self, phase=phase, action=f.action, arg=f.arg,
                       occurrence=self.srv.counts[phase])
        if f.action == "drop":
            self.close()
            raise Closed()
        if f.action == "stall":
            secs = float(f.arg) if f.arg else 60.0
            await asyncio.sleep(secs)
            self.close()
            raise Closed()
        if f.action == "delay":
            await asyncio.sleep(float(f.arg) if f.arg else 1.0)
            return None
        if f.action == "garbage":
            self.write(GARBAGE)
            return ("garbage", None)
        self.reply(f.arg)
        if f.arg.startswith("421"):
            self.close()
            raise Closed()
        return ("reply", f.arg)

    # -- the session ---------------------------------------------------------------
    async def run(self):
        self.srv.event("connect", self)
        log.info("conn %d from %s", self.id, self.peer)
        try:
            await self.session()
        except Closed:
            pass
        except Exception:
            log.exception("conn %d: internal error", self.id)
        finally:
            self.close()
            self.srv.event("disconnect", self)
            log.info("conn %d closed", self.id)

    async def session(self):
        self.took("greeting", True)
        r = await self.fault("greeting")
        if r is None:
            self.reply("220 %s ESMTP poold fault server" % self.args.hostname)
        elif r[0] == "reply" and not r[1].startswith("2"):
            self.refused = True
        while True:
            line = await self.readline()
            if line is None:
                self.reply("500 5.5.0 Error: line too long")
                continue
            text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            log.debug("conn %d >> %r", self.id, text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            must_wait = (not self.srv.pipelining) or verb in LAST_IN_GROUP
            if verb != "BDAT":
                self.took(text, must_wait)
            handler = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
            if self.refused and verb not in ("QUIT", "NOOP", "RSET"):
                self.reply("503 5.5.1 Error: no service")
                continue
            if handler is None:
                self.reply("502 5.5.2 Error: command not recognized" if verb
                           else "500 5.5.2 Error: bad syntax")
                continue
            await handler(arg.strip(), text)

    # -- commands ------------------------------------------------------------------
    def reset_txn(self):
        self.txn = None

    async def cmd_HELO(self, arg, text):
        if not arg:
            self.reply("501 Syntax: HELO hostname")
            return
        r = await self.fault("ehlo")
        self.reset_txn()
        if r is not None:
            if r[0] == "reply" and r[1].startswith("2"):
                self.helo, self.esmtp = arg, False
            return
        self.helo, self.esmtp = arg, False
        self.reply("250 %s" % self.args.hostname)

    async def cmd_EHLO(self, arg, text):
        if not arg:
            self.reply("501 Syntax: EHLO hostname")
            return
        r = await self.fault("ehlo")
        self.reset_txn()
        if r is not None:
            if r[0] == "reply" and r[1].startswith("2"):
                self.helo, self.esmtp = arg, True
            return
        if self.args.no_ehlo:
            self.reply("502 5.5.2 Error: command not recognized")
            return
        self.helo, self.esmtp = arg, True
        lines = ["250 " + self.args.hostname]
        if self.srv.pipelining:
            lines.append("250 PIPELINING")
        if not self.args.no_8bitmime and "8BITMIME" not in (e.upper() for e in self.srv.exts):
            lines.append("250 8BITMIME")  # as nearly every real relay does
        lines += ["250 " + e for e in self.srv.exts if e]
        self.reply(lines)

    async def cmd_MAIL(self, arg, text):
        m = re.fullmatch(r"(?i)FROM:\s*(<[^>]*>|[^\s<>]*)\s*(.*)", arg)
        if not m:
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        if self.helo is None:
            self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return
        if self.txn is not None:
            self.reply("503 5.5.1 Error: nested MAIL command")
            return
        addr = m.group(1)
        addr = addr[1:-1] if addr.startswith("<") else addr
        params = m.group(2).split()
        if params and not self.esmtp:
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        r = await self.fault("mail")
        accepted = r is None or (r[0] == "reply" and r[1].startswith("2"))
        if r is None:
            for p in params:
                k, _, v = p.partition("=")
                if k.upper() == "SIZE" and self.srv.size_limit and v.isdigit() \
                        and int(v) > self.srv.size_limit:
                    self.reply("552 5.3.4 Message size exceeds fixed limit")
                    self.srv.event("mail", self, mail_from=addr or "<>", code=552)
                    return
            self.reply("250 2.1.0 Ok")
        self.srv.event("mail", self, mail_from=addr or "<>",
                       code=int(r[1][:3]) if r and r[0] == "reply" else (250 if r is None else 0))
        if accepted:
            self.txn = {"mail_from": addr or "<>", "mail_options": params,
                        "rcpt_tos": [], "rcpt_options": [], "mode": None, "chunks": [],
                        "failed": False}

    async def cmd_RCPT(self, arg, text):
        m = re.fullmatch(r"(?i)TO:\s*(<[^>]*>|[^\s<>]+)\s*(.*)", arg)
        if not m:
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        if self.txn is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        addr = m.group(1)
        addr = addr[1:-1] if addr.startswith("<") else addr
        params = m.group(2).split()
        r = await self.fault("rcpt")
        if r is not None:
            code = int(r[1][:3]) if r[0] == "reply" else 0
            if r[0] == "reply" and r[1].startswith("2"):
                self.txn["rcpt_tos"].append(addr)
                self.txn["rcpt_options"].append(params)
            self.srv.event("rcpt", self, rcpt=addr, code=code)
            return
        if self.args.max_rcpt and len(self.txn["rcpt_tos"]) >= self.args.max_rcpt:
            self.reply("452 4.5.3 Too many recipients")
            self.srv.event("rcpt", self, rcpt=addr, code=452)
            return
        self.txn["rcpt_tos"].append(addr)
        self.txn["rcpt_options"].append(params)
        self.reply("250 2.1.5 Ok")
        self.srv.event("rcpt", self, rcpt=addr, code=250)

    def finish(self, data):
        """The message is complete: check the size, record, reply."""
        txn = self.txn
        self.reset_txn()
        if self.srv.size_limit and len(data) > self.srv.size_limit:
            self.reply("552 5.3.4 Message size exceeds fixed limit")
            self.srv.event("data", self, code=552)
            return
        name = self.srv.record(self, txn, data)
        self.reply("250 2.0.0 Ok: queued as %s" % name[:-5])
        log.info("conn %d: recorded %s from=%s rcpts=%d size=%d", self.id, name,
                 txn["mail_from"], len(txn["rcpt_tos"]), len(data))
        self.srv.event("data", self, code=250, record=name, rcpts=len(txn["rcpt_tos"]))

    async def dot_reply(self, txn, data):
        """After the final dot: the dot fault or the normal reply."""
        r = await self.fault("dot")
        if r is None:
            self.finish(data)
            return
        self.reset_txn()
        if r[0] == "reply" and r[1].startswith("2"):
            name = self.srv.record(self, txn, data)
            self.srv.event("data", self, code=int(r[1][:3]), record=name,
                           rcpts=len(txn["rcpt_tos"]))
        else:
            self.srv.event("data", self, code=int(r[1][:3]) if r[0] == "reply" else 0)

    async def cmd_DATA(self, arg, text):
        if arg:
            self.reply("501 5.5.4 Syntax: DATA")
            return
        if self.txn is None or (self.txn["mode"] == "BDAT"):
            self.reply("503 5.5.1 Error: need RCPT command" if self.txn is None
                       else "503 5.5.1 Error: DATA after BDAT")
            return
        if not self.txn["rcpt_tos"]:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        r = await self.fault("data")
        if r is not None:
            if not (r[0] == "reply" and r[1].startswith("354")):
                self.reset_txn()
                return
        else:
            self.reply("354 End data with <CR><LF>.<CR><LF>")
        txn = self.txn
        # Read up to CRLF.CRLF (the message may be empty: ".\r\n" at once).
        raw = bytearray(b"\r\n")
        search = 0
        body_fired = False
        while True:
            i = raw.find(b"\r\n.\r\n", search)
            if i >= 0:
                break
            if not body_fired and len(raw) > 2:
                body_fired = True
                r = await self.fault("body")
                if r is not None and r[0] == "reply":
                    self.close()
                    raise Closed()
                continue
            search = max(0, len(raw) - 4)
            if not self.buf:
                await self._wait_data()
            raw += self.buf
            self.buf.clear()
        # Bytes after the terminator belong to the next commands.
        self.buf[:0] = raw[i + 5:]
        if not body_fired:
            r = await self.fault("body")
            if r is not None and r[0] == "reply":
                self.close()
                raise Closed()
        content = bytes(raw[: i + 2]).replace(b"\r\n.", b"\r\n")[2:]
        self.took("<end of data>", not self.srv.pipelining)
        await self.dot_reply(txn, content)

    async def cmd_BDAT(self, arg, text):
        # For BDAT the phases are: body = in the middle of the first chunk of a
        # transaction, data = the reply to that first BDAT (after its chunk was
        # read), dot = the reply to BDAT LAST.
        if not self.srv.chunking:
            self.took(text, not self.srv.pipelining)
            self.reply("502 5.5.2 Error: command not recognized")
            return
        m = re.fullmatch(r"(\d+)(?:\s+(LAST))?", arg, re.I)
        if not m:
            self.took(text, not self.srv.pipelining)
            self.reply("501 5.5.4 Syntax: BDAT size [LAST]")
            return
        n, last = int(m.group(1)), bool(m.group(2))
        txn = self.txn
        live = txn is not None and bool(txn["rcpt_tos"]) and txn["mode"] != "DATA"
        first = live and txn["mode"] is None
        progress = None
        if first:
            state = {"fired": False}

            async def progress(got, total):
                if not state["fired"] and got * 2 >= total:
                    state["fired"] = True
                    r = await self.fault("body")
                    if r is not None and r[0] == "reply":
                        self.close()
                        raise Closed()
        chunk = await self.readexactly(n, progress) if n else b""
        if first and n == 0:
            await progress(0, 0)
        self.took(text, not self.srv.pipelining)
        if txn is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if txn["mode"] == "DATA":
            self.reply("503 5.5.1 Error: BDAT after DATA")
            return
        if not txn["rcpt_tos"]:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        if txn["failed"]:
            self.reply("503 5.5.1 Error: BDAT after a failed BDAT")
            return
        txn["mode"] = "BDAT"
        txn["chunks"].append(chunk)
        if first:
            r = await self.fault("data")
            if r is not None and not (r[0] == "reply" and r[1].startswith("2")):
                txn["failed"] = True
                return
            if r is not None and not last:
                return  # a 2xx fault reply stood in for "octets received"
        if not last:
            self.reply("250 2.0.0 %d octets received" % n)
            return
        await self.dot_reply(txn, b"".join(txn["chunks"]))

    async def cmd_RSET(self, arg, text):
        self.reset_txn()
        self.reply("250 2.0.0 Ok")

    async def cmd_NOOP(self, arg, text):
        self.reply("250 2.0.0 Ok")

    async def cmd_VRFY(self, arg, text):
        self.reply("252 2.0.0 Cannot VRFY user")

    async def cmd_QUIT(self, arg, text):
        self.reply("221 2.0.0 Bye")
        self.close()
        raise Closed()



async def main(args):
    loop = asyncio.get_running_loop()
    srv = Server(args)
    server = await loop.create_server(lambda: Conn(srv), host=args.host, port=args.port)
    await serve(server, args.lifetime, args.ready_file, log, "pipelining=%s exts=%s faults=%s"
                % (srv.pipelining, srv.exts, [f.spec for f in srv.faults]))
    server.close()
    for c in list(srv.conns):
        c.transport.abort()
        if c.task:
            c.task.cancel()
    await asyncio.sleep(0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--out", help="directory for records, events.jsonl, violations.txt")
    p.add_argument("--ready-file", help="the bound port is written here once listening")
    p.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    p.add_argument("--no-pipelining", action="store_true", help="do not advertise PIPELINING")
    p.add_argument("--no-8bitmime", action="store_true", help="do not advertise 8BITMIME")
    p.add_argument("--ext", action="append", default=[], metavar="WORD",
                   help='extra EHLO keyword, e.g. "SIZE 1000", CHUNKING, 8BITMIME (repeatable)')
    p.add_argument("--no-ehlo", action="store_true", help="EHLO gets 502 (client must use HELO)")
    p.add_argument("--lockstep-check", action="store_true",
                   help="record commands sent before the reply they must wait for")
    p.add_argument("--fault", action="append", default=[], metavar="PHASE:ACTION[:ARG]")
    p.add_argument("--fault-after", type=int, default=1, metavar="N",
                   help="faults fire on the Nth occurrence of their phase (default 1)")
    p.add_argument("--fault-repeat", action="store_true",
                   help="faults fire on every occurrence from the Nth on")
    p.add_argument("--max-rcpt", type=int, default=0, metavar="K",
                   help="at most K recipients per transaction; more get 452 4.5.3")
    p.add_argument("--hostname", default="faults.test")
    p.add_argument("--idle-timeout", type=float, default=300)
    p.add_argument("--log", help="log to this file instead of stderr")
    p.add_argument("--verbose", action="store_true", help="log every command and reply")
    args = p.parse_args(argv)
    try:
        for s in args.fault:
            Fault(s, 1, False)
    except ValueError as e:
        p.error(str(e))
    if args.lockstep_check and not args.out:
        log.warning("--lockstep-check without --out: violations go to the log only")
    return args


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(filename=args.log,
                        level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s fault_server[%(process)d] %(levelname)s %(message)s")
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
