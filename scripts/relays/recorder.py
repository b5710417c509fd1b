#!/usr/bin/env python3
"""Recording SMTP relay for poold's tests, built on aiosmtpd (a real SMTP server).

Run it with the venv's python ($POOLD_PYTHON):

    $POOLD_PYTHON scripts/relays/recorder.py --port 0 --out DIR --ready-file DIR/port

Every accepted transaction (the client got 250 after the final dot) becomes one file
DIR/<seq>-<pid>.json, written atomically (a dot-file, then rename):

    {"mail_from": "a@x.org",            # "<>" for the null sender
     "mail_options": ["BODY=8BITMIME"],  # as sent (case preserved)
     "rcpt_tos": ["b@y.org", ...],       # accepted recipients only, in order
     "rcpt_options": [[...], ...],       # one list per accepted recipient
     "data_b64": "...",                  # message bytes as received, dot-unstuffed, CRLF kept
     "peer": ["127.0.0.1", 40000], "time": 1700000000.0,
     "helo": "client.name", "seq": 1, "pid": 1234, "size": 123}

<seq> is a zero-padded counter for this process, so sorted names = arrival order.
A transaction cut off by --drop-after-data is recorded in DIR/dropped/ instead (the
relay got it, the client never saw a reply: the "maybe delivered" case).
DIR/events.jsonl gets one JSON line per connection, MAIL, RCPT reply, DATA reply,
drop and disconnect (for tests that count retries).

TLS and AUTH: --starttls CERT KEY offers STARTTLS with that certificate chain and key
(PEM); --require-starttls then refuses mail before it; --smtps CERT KEY speaks TLS from
the first byte instead. --auth USER:PASSWORD offers AUTH PLAIN and LOGIN (only over TLS,
unless --auth-insecure) and accepts that one pair; --auth-exclude MECH drops a mechanism.
Without --auth no AUTH is offered, over TLS either.
--broken-starttls offers STARTTLS, answers it with 220 and then sends garbage instead of
a TLS handshake and closes (a relay whose TLS is broken).
Records then also hold "tls" ("TLSv1.3 TLS_AES_256_GCM_SHA384", null in plain text) and
"auth_user" (null without AUTH); events.jsonl gets an "auth" line per attempt (user and
result, never the password).

Faults: --defer SUBSTR (RCPT -> 451 4.3.0), --reject SUBSTR (RCPT -> 550 5.1.1),
--drop-after-data N. Exits by itself after --lifetime seconds, at once on SIGTERM.

aiosmtpd, as shipped, does NOT advertise PIPELINING (it does read pipelined commands
correctly, one after the other); --pipelining adds the keyword. It also refuses any
RCPT parameter and MAIL parameters other than SIZE/BODY/SMTPUTF8 with 555; --dsn
advertises DSN and accepts RET/ENVID (MAIL) and NOTIFY/ORCPT (RCPT).
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session  # noqa: F401
from email._header_value_parser import get_angle_addr, get_addr_spec
from email.errors import HeaderParseError
from lifecycle import serve

log = logging.getLogger("recorder")

DSN_MAIL_PARAMS = ("RET", "ENVID")
DSN_RCPT_PARAMS = ("NOTIFY", "ORCPT")


def split_params(arg):
    """'FROM:<a@b> SIZE=1 ret=HDRS' after the keyword -> ['SIZE=1', 'ret=HDRS'] (raw)."""
    if not arg:
        return []
    try:
        if arg.lstrip().startswith("<"):
            _, rest = get_angle_addr(arg)
        else:
            _, rest = get_addr_spec(arg)
    except HeaderParseError:
        return []
    return rest.split()


def strip_keyword(keyword, arg):
    if arg and arg[: len(keyword)].upper() == keyword:
        return arg[len(keyword):].strip()
    return None


def drop_params(arg, names):
    """Remove NAME=... parameters (case-insensitive) from a MAIL/RCPT argument."""
    head, sep, _ = arg.partition(">")
    if not sep:
        return arg
    kept = [p for p in arg[len(head) + 1:].split()
            if p.split("=", 1)[0].upper() not in names]
    return head + ">" + ("" if not kept else " " + " ".join(kept))


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP with the raw MAIL/RCPT arguments kept for the recorder."""

    dsn = False
    broken_starttls = False

    async def smtp_STARTTLS(self, arg):
        if not self.broken_starttls:
            return await super().smtp_STARTTLS(arg)
        await self.push("220 2.0.0 Ready to start TLS")
        await asyncio.sleep(0.2)  # the client's ClientHello is on its way
        self.transport.write(b"HELLO THIS IS NOT TLS\r\n")
        await asyncio.sleep(0.2)
        self.transport.close()

    async def smtp_MAIL(self, arg):
        rest = strip_keyword("FROM:", arg or "")
        self._raw_mail_params = split_params(rest) if rest is not None else []
        if self.dsn and arg:
            arg = drop_params(arg, DSN_MAIL_PARAMS)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        rest = strip_keyword("TO:", arg or "")
        self._raw_rcpt_params = split_params(rest) if rest is not None else []
        if self.dsn and arg:
            arg = drop_params(arg, DSN_RCPT_PARAMS)
        await super().smtp_RCPT(arg)


class Recorder:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.seq = 0
        self.data_count = 0
        self.pid = os.getpid()
        os.makedirs(self.out, exist_ok=True)
        self.events_path = os.path.join(self.out, "events.jsonl")

    # -- helpers ---------------------------------------------------------
    def event(self, kind, session, **fields):
        rec = {"time": time.time(), "pid": self.pid, "event": kind,
               "peer": list(session.peer) if session and session.peer else None}
        rec.update(fields)
        line = (json.dumps(rec) + "\n").encode()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def write_record(self, directory, session, envelope, server=None):
        self.seq += 1
        data = envelope.original_content or b""
        rec = {
            "mail_from": envelope.mail_from,
            "mail_options": list(envelope.mail_options),
            "rcpt_tos": list(envelope.rcpt_tos),
            "rcpt_options": [list(o) for o in envelope.rcpt_options],
            "data_b64": base64.b64encode(data).decode("ascii"),
            "peer": list(session.peer) if session.peer else None,
            "time": time.time(),
            "helo": session.host_name,
            "seq": self.seq,
            "pid": self.pid,
            "size": len(data),
            "tls": tls_description(server),
            "auth_user": auth_user(session),
        }
        os.makedirs(directory, exist_ok=True)
        name = "%08d-%d.json" % (self.seq, self.pid)
        tmp = os.path.join(directory, "." + name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.replace(tmp, os.path.join(directory, name))
        return name

    # -- aiosmtpd hooks -------------------------------------------------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        extra = []
        if self.args.pipelining:
            extra.append("250-PIPELINING")
        if self.args.dsn:
            extra.append("250-DSN")
        if self.args.broken_starttls:
            extra.append("250-STARTTLS")
        if not self.args.auth:
            # aiosmtpd offers AUTH over TLS even with nobody to log in; we do not.
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses[:-1] + extra + responses[-1:]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options = list(getattr(server, "_raw_mail_params", mail_options))
        envelope.rcpt_options = []
        self.event("mail", session, mail_from=address)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for s in self.args.reject:
            if s in address:
                self.event("rcpt", session, rcpt=address, code=550)
                return "550 5.1.1 no such user"
        for s in self.args.defer:
            if s in address:
                self.event("rcpt", session, rcpt=address, code=451)
                return "451 4.3.0 try later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(list(getattr(server, "_raw_rcpt_params", rcpt_options)))
        self.event("rcpt", session, rcpt=address, code=250)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        if self.args.drop_after_data and self.data_count == self.args.drop_after_data:
            name = self.write_record(os.path.join(self.out, "dropped"), session, envelope, server)
            log.warning("DATA #%d: dropping the connection before replying (dropped/%s)",
                        self.data_count, name)
            self.event("drop", session, data_count=self.data_count, record="dropped/" + name)
            server.transport.abort()
            # connection_lost() cancels this coroutine; no reply is ever written.
            await asyncio.sleep(3600)
            return "421 4.3.0 not reached"
        name = self.write_record(self.out, session, envelope, server)
        log.info("recorded %s: from=%s rcpts=%d size=%d", name, envelope.mail_from,
                 len(envelope.rcpt_tos), len(envelope.original_content or b""))
        self.event("data", session, code=250, record=name, rcpts=len(envelope.rcpt_tos))
        return "250 2.0.0 OK queued as %s" % name[:-5]


def tls_description(server):
    """'TLSv1.3 TLS_AES_256_GCM_SHA384' for a TLS connection, None in plain text."""
    transport = getattr(server, "transport", None) if server is not None else None
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    return "%s %s" % (ssl_object.version(), ssl_object.cipher()[0])


def auth_user(session):
    data = getattr(session, "auth_data", None)
    if not getattr(session, "authenticated", False) or data is None:
        return None
    login = getattr(data, "login", None)
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else login


def server_tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context



async def main(args):
    loop = asyncio.get_running_loop()
    recorder = Recorder(args)
    conns = set()

    class Proto(RecordingSMTP):
        def connection_made(self, transport):
            conns.add(self)
            super().connection_made(transport)
            recorder.event("connect", self.session)

        def connection_lost(self, exc):
            conns.discard(self)
            try:
                recorder.event("disconnect", self.session)
            except Exception:
                pass
            super().connection_lost(exc)

    Proto.dsn = args.dsn
    Proto.broken_starttls = args.broken_starttls
    Proto.line_length_limit = 1001 if args.strict_line_length else 1 << 20

    starttls_context = server_tls_context(*args.starttls) if args.starttls else None
    smtps_context = server_tls_context(*args.smtps) if args.smtps else None
    auth_pair = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep:
            raise SystemExit("--auth wants USER:PASSWORD")
        auth_pair = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"") or b""
        ok = auth_pair is not None and (login, getattr(auth_data, "password", b"")) == auth_pair
        recorder.event("auth", session, mechanism=mechanism,
                       user=login.decode("utf-8", "replace"), ok=ok)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def factory():
        options = {}
        if starttls_context is not None:
            options.update(tls_context=starttls_context, require_starttls=args.require_starttls)
        if auth_pair is not None:
            # Over smtps the whole connection is TLS, which aiosmtpd does not see as such.
            options.update(authenticator=authenticator,
                           auth_require_tls=not (args.auth_insecure or smtps_context),
                           auth_exclude_mechanism=args.auth_exclude)
        return Proto(recorder, hostname=args.hostname, data_size_limit=args.size_limit,
                     enable_SMTPUTF8=True, decode_data=False, timeout=args.idle_timeout,
                     **options)

    server = await loop.create_server(factory, host=args.host, port=args.port, ssl=smtps_context)
    await serve(server, args.lifetime, args.ready_file, log, "recording to %s" % args.out)
    server.close()
    for c in list(conns):
        if c.transport is not None:
            c.transport.abort()
    await asyncio.sleep(0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--out", required=True, help="directory for the records")
    p.add_argument("--ready-file", help="the bound port is written here once listening")
    p.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    p.add_argument("--defer", action="append", default=[], metavar="ADDR_SUBSTR",
                   help="RCPT containing this gets 451 4.3.0 (repeatable)")
    p.add_argument("--reject", action="append", default=[], metavar="ADDR_SUBSTR",
                   help="RCPT containing this gets 550 5.1.1 (repeatable)")
    p.add_argument("--drop-after-data", type=int, default=0, metavar="N",
                   help="the Nth DATA of this server's life: close the connection after "
                        "the final dot, before replying")
    p.add_argument("--pipelining", action="store_true",
                   help="advertise PIPELINING (aiosmtpd does not by itself)")
    p.add_argument("--dsn", action="store_true",
                   help="advertise DSN and accept RET/ENVID/NOTIFY/ORCPT")
    p.add_argument("--strict-line-length", action="store_true",
                   help="aiosmtpd's RFC limit: message lines over 1000 octets -> 500")
    p.add_argument("--size-limit", type=int, default=200 * 1024 * 1024,
                   help="SIZE advertised and enforced (default 200 MB)")
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"),
                   help="offer STARTTLS with this certificate chain and key (PEM)")
    p.add_argument("--require-starttls", action="store_true",
                   help="with --starttls: refuse everything but EHLO/NOOP/QUIT before it")
    p.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"),
                   help="implicit TLS from the first byte (RFC 8314) with this certificate")
    p.add_argument("--auth", metavar="USER:PASSWORD",
                   help="offer AUTH PLAIN and LOGIN and accept this pair")
    p.add_argument("--auth-exclude", action="append", default=[], metavar="MECH",
                   help="do not offer this AUTH mechanism (repeatable)")
    p.add_argument("--auth-insecure", action="store_true",
                   help="with --auth: offer AUTH over plain text too")
    p.add_argument("--broken-starttls", action="store_true",
                   help="offer STARTTLS, answer 220, then send garbage instead of TLS and close")
    p.add_argument("--hostname", default="recorder.test")
    p.add_argument("--idle-timeout", type=float, default=300)
    p.add_argument("--log", help="log to this file instead of stderr")
    p.add_argument("--verbose", action="store_true", help="log every SMTP command")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        filename=args.log, level=logging.INFO,
        format="%(asctime)s recorder[%(process)d] %(levelname)s %(message)s")
    # aiosmtpd logs every command at INFO: only with --verbose.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
