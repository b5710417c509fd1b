#!/usr/bin/env python3
"""Self-test of the test relays: recorder.py, fault_server.py, sink.py, delay_proxy.py.

    scripts/install-test-deps && . .tools/env && python3 scripts/relays/selftest.py [-k NAME]

Starts each server on a free loopback port, drives it with smtplib and raw sockets,
checks records, faults, lockstep violations, lifetime exit and SIGTERM. Not part of
`swift test`; run it after changing anything in scripts/relays or scripts/delay_proxy.py.
"""

import base64
import glob
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
VENV_PY = os.environ.get("POOLD_PYTHON") or os.path.join(os.path.dirname(SCRIPTS), ".venv/bin/python")
SYS_PY = sys.executable
TMP = tempfile.mkdtemp(prefix="relays-selftest-")
PROCS = []


class Server:
    def __init__(self, cmd, python=SYS_PY, name="srv"):
        self.log = os.path.join(TMP, "%s-%d.log" % (name, len(PROCS)))
        self.ready = os.path.join(TMP, "%s-%d.port" % (name, len(PROCS)))
        self.p = subprocess.Popen([python] + cmd + ["--ready-file", self.ready],
                                  stdout=subprocess.PIPE, stderr=open(self.log, "w"),
                                  stdin=subprocess.DEVNULL, text=True)
        PROCS.append(self.p)
        line = self.p.stdout.readline()
        assert line.startswith("PORT "), "no PORT line: %r (log: %s)" % (line, open(self.log).read())
        self.port = int(line.split()[1])
        assert int(open(self.ready).read()) == self.port

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        t = time.monotonic()
        rc = self.p.wait(5)
        return rc, time.monotonic() - t


def records(d):
    out = []
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        r = json.load(open(f))
        r["data"] = base64.b64decode(r.pop("data_b64"))
        out.append(r)
    return out


class Raw:
    """A raw SMTP client socket: send bytes, read what the server says."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=5)
        self.buf = b""

    def send(self, b):
        self.s.sendall(b)

    def replies(self, n, timeout=5):
        """Read n complete replies; a multi-line reply is one string, lines joined by \n."""
        out, lines = [], []
        self.s.settimeout(timeout)
        while len(out) < n:
            while b"\r\n" not in self.buf:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("closed after %r" % out)
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("latin-1"))
            if line[3:4] != b"-":
                out.append("\n".join(lines))
                lines = []
        return out

    def read_all(self, timeout=2):
        self.s.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return data, True
                data += d
        except socket.timeout:
            return data, False

    def close(self):
        self.s.close()


MSG = (b"Subject: test\r\n\r\n.leading dot\r\n..two dots\r\nbody \xc3\xa9 8-bit\r\n"
       b"bare\nLF inside\r\n" + b"L" * 3000 + b"\r\nend\r\n")


# ------------------------------------------------------------------- recorder
def t_recorder_basic():
    out = os.path.join(TMP, "rec1")
    srv = Server([os.path.join(HERE, "recorder.py"), "--port", "0", "--out", out,
                  "--defer", "later", "--reject", "nosuch", "--lifetime", "30"], VENV_PY, "rec")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    code, ehlo = s.ehlo("client.example")
    assert b"PIPELINING" not in ehlo, ehlo
    assert b"SIZE 209715200" in ehlo and b"8BITMIME" in ehlo and b"SMTPUTF8" in ehlo, ehlo
    refused = s.sendmail("a@x.org", ["ok1@y.org", "later@y.org", "nosuch@y.org", "ok2@y.org"],
                         MSG, mail_options=["BODY=8BITMIME"])
    assert refused == {"later@y.org": (451, b"4.3.0 try later"),
                       "nosuch@y.org": (550, b"5.1.1 no such user")}, refused
    s.mail("<>")
    s.rcpt("postmaster@y.org")
    assert s.data(b"Subject: dsn\r\n\r\nx\r\n")[0] == 250
    s.quit()
    recs = records(out)
    assert len(recs) == 2, recs
    r = recs[0]
    assert r["mail_from"] == "a@x.org" and r["rcpt_tos"] == ["ok1@y.org", "ok2@y.org"], r
    assert "BODY=8BITMIME" in r["mail_options"] and r["rcpt_options"] == [[], []], r
    # smtplib dot-stuffs; the recorder must give back exactly what we gave smtplib
    assert r["data"] == MSG, (r["data"][:100], MSG[:100])
    assert recs[1]["mail_from"] == "<>" and recs[1]["rcpt_tos"] == ["postmaster@y.org"]
    assert r["peer"][0] == "127.0.0.1" and r["helo"] == "client.example"
    events = [json.loads(l) for l in open(os.path.join(out, "events.jsonl"))]
    codes = [(e["rcpt"], e["code"]) for e in events if e["event"] == "rcpt"]
    assert ("later@y.org", 451) in codes and ("nosuch@y.org", 550) in codes, codes
    rc, dt = srv.stop()
    assert rc == 0 and dt < 2, (rc, dt)


def t_recorder_pipelining():
    for flag in ([], ["--pipelining"]):
        out = os.path.join(TMP, "rec2" + "".join(flag))
        srv = Server([os.path.join(HERE, "recorder.py"), "--out", out, "--defer", "later"] + flag,
                     VENV_PY, "rec")
        c = Raw(srv.port)
        c.replies(1)
        c.send(b"EHLO c\r\n")
        ehlo = c.replies(1)[0]
        assert ("250-PIPELINING" in ehlo) == bool(flag), ehlo
        # one write: MAIL, 3 RCPT, DATA
        c.send(b"MAIL FROM:<p@x>\r\nRCPT TO:<a@y>\r\nRCPT TO:<later@y>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        r = c.replies(5)
        assert [x[:3] for x in r] == ["250", "250", "451", "250", "354"], r
        # message + final dot + next transaction in one write
        c.send(b"Subject: 1\r\n\r\nm1\r\n.\r\nMAIL FROM:<p2@x>\r\nRCPT TO:<c@y>\r\nDATA\r\n")
        r = c.replies(4)
        assert [x[:3] for x in r] == ["250", "250", "250", "354"], r
        c.send(b"Subject: 2\r\n\r\nm2\r\n.\r\nQUIT\r\n")
        r = c.replies(2)
        assert [x[:3] for x in r] == ["250", "221"], r
        c.close()
        srv.stop()
        recs = records(out)
        assert len(recs) == 2, recs
        assert recs[0]["rcpt_tos"] == ["a@y", "b@y"] and recs[0]["data"] == b"Subject: 1\r\n\r\nm1\r\n", recs[0]
        assert recs[1]["rcpt_tos"] == ["c@y"] and recs[1]["data"] == b"Subject: 2\r\n\r\nm2\r\n", recs[1]


def t_recorder_drop_after_data():
    out = os.path.join(TMP, "rec3")
    srv = Server([os.path.join(HERE, "recorder.py"), "--out", out, "--drop-after-data", "2"],
                 VENV_PY, "rec")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    s.sendmail("a@x", ["b@y"], b"Subject: 1\r\n\r\n1\r\n")
    try:
        s.sendmail("a@x", ["b@y"], b"Subject: 2\r\n\r\n2\r\n")
        raise AssertionError("no drop")
    except smtplib.SMTPServerDisconnected:
        pass
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    s.sendmail("a@x", ["b@y"], b"Subject: 3\r\n\r\n3\r\n")
    s.quit()
    recs = records(out)
    assert [r["data"][-3:] for r in recs] == [b"1\r\n", b"3\r\n"], recs
    dropped = records(os.path.join(out, "dropped"))
    assert len(dropped) == 1 and dropped[0]["data"].endswith(b"2\r\n"), dropped
    srv.stop()


def t_recorder_dsn_params():
    out = os.path.join(TMP, "rec4")
    srv = Server([os.path.join(HERE, "recorder.py"), "--out", out], VENV_PY, "rec")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    s.ehlo("c")
    s.mail("a@x", ["RET=HDRS"])
    assert s.rcpt("b@y")[0] == 503  # MAIL was refused: 555
    s.rset()
    s.mail("a@x")
    assert s.rcpt("b@y", ["NOTIFY=NEVER"])[0] == 555
    s.quit()
    srv.stop()
    srv = Server([os.path.join(HERE, "recorder.py"), "--out", out, "--dsn"], VENV_PY, "rec")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    s.ehlo("c")
    assert s.has_extn("dsn")
    s.sendmail("a@x", ["b@y"], b"x\r\n", mail_options=["RET=HDRS", "ENVID=MixedCase1"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;B@Y"])
    s.quit()
    r = records(out)[-1]
    # (smtplib adds size=N itself when SIZE is advertised)
    assert r["mail_options"][-2:] == ["RET=HDRS", "ENVID=MixedCase1"], r["mail_options"]
    assert r["rcpt_options"] == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;B@Y"]], r["rcpt_options"]
    srv.stop()


def t_recorder_big_and_long_lines():
    out = os.path.join(TMP, "rec5")
    srv = Server([os.path.join(HERE, "recorder.py"), "--out", out], VENV_PY, "rec")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * (34 * 1024)  # > 33554432
    long = b"Subject: long\r\n\r\n" + b"y" * 20000 + b"\r\n"
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=30)
    s.sendmail("a@x", ["b@y"], big)
    s.sendmail("a@x", ["b@y"], long)
    s.quit()
    recs = records(out)
    assert recs[0]["data"] == big and recs[1]["data"] == long
    srv.stop()


def t_recorder_lifetime():
    t = time.monotonic()
    srv = Server([os.path.join(HERE, "recorder.py"), "--out", os.path.join(TMP, "rec6"),
                  "--lifetime", "1.5"], VENV_PY, "rec")
    rc = srv.p.wait(10)
    dt = time.monotonic() - t
    assert rc == 0 and 1.4 < dt < 4, (rc, dt)


# --------------------------------------------------------------- fault server
FS = os.path.join(HERE, "fault_server.py")


def fs(*args, name="fs"):
    out = os.path.join(TMP, "%s-%d" % (name, len(PROCS)))
    srv = Server([FS, "--out", out, "--lifetime", "60"] + list(args), SYS_PY, name)
    srv.out = out
    return srv


def violations(srv):
    try:
        return open(os.path.join(srv.out, "violations.txt")).read().splitlines()
    except FileNotFoundError:
        return []


def t_fault_basic_and_size():
    srv = fs("--ext", "SIZE 100000", "--ext", "8BITMIME")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    code, ehlo = s.ehlo("c")
    assert ehlo.split(b"\n")[1:] == [b"PIPELINING", b"SIZE 100000", b"8BITMIME"], ehlo
    s.sendmail("a@x", ["b@y", "c@y"], MSG, mail_options=["BODY=8BITMIME"])
    s.mail("<>")
    s.rcpt("d@y")
    s.data(b"")  # empty message
    try:
        s.sendmail("a@x", ["b@y"], b"z" * 200000)
        raise AssertionError("SIZE not enforced")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 552
    s.quit()
    recs = records(srv.out)
    assert recs[0]["data"] == MSG and recs[0]["rcpt_tos"] == ["b@y", "c@y"]
    assert recs[0]["mail_options"][-1] == "BODY=8BITMIME" and recs[0]["rcpt_options"] == [[], []]
    assert recs[1]["mail_from"] == "<>" and recs[1]["data"] == b"\r\n", recs[1]  # smtplib adds CRLF
    srv.stop()


def t_fault_lockstep():
    srv = fs("--no-pipelining", "--lockstep-check")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    _, ehlo = s.ehlo("c")
    assert b"PIPELINING" not in ehlo
    s.sendmail("a@x", ["b@y", "c@y"], b"x\r\n")
    s.quit()
    assert violations(srv) == [], violations(srv)
    c = Raw(srv.port)
    c.replies(1)
    c.send(b"EHLO c\r\n")
    c.replies(1)
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    r = c.replies(3)
    assert [x[:3] for x in r] == ["250", "250", "354"], r  # replies normally
    c.send(b"x\r\n.\r\nQUIT\r\n")
    assert [x[:3] for x in c.replies(2)] == ["250", "221"]
    v = violations(srv)
    assert len(v) == 3 and all("LOCKSTEP" in l for l in v), v
    assert "RCPT TO:<b@y>" in v[0] and "MAIL FROM:<a@x>" in v[0], v
    assert "QUIT" in v[2] and "end of data" in v[2], v
    assert len(records(srv.out)) == 2
    srv.stop()


def t_fault_pipelining_rules():
    srv = fs("--lockstep-check")
    c = Raw(srv.port)
    c.replies(1)
    c.send(b"EHLO c\r\n")
    c.replies(1)
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")
    assert [x[:3] for x in c.replies(4)] == ["250", "250", "250", "354"]
    c.send(b"m1\r\n.\r\nRSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    assert [x[:3] for x in c.replies(5)] == ["250", "250", "250", "250", "354"]
    c.send(b"m2\r\n.\r\n")
    c.replies(1)
    assert violations(srv) == [], violations(srv)
    # message data before the 354: a violation
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nm3\r\n.\r\n")
    assert [x[:3] for x in c.replies(4)] == ["250", "250", "354", "250"]
    c.send(b"NOOP\r\nQUIT\r\n")
    c.replies(2)
    v = violations(srv)
    assert len(v) == 2 and "'m3' received before the reply to 'DATA'" in v[0] and \
        "'QUIT' received before the reply to 'NOOP'" in v[1], v
    assert len(records(srv.out)) == 3
    srv.stop()


def t_fault_greeting():
    srv = fs("--fault", "greeting:drop", "--fault", "greeting@2:reply:421 4.3.2 busy",
             "--fault", "greeting@3:garbage", "--fault", "greeting@4:reply:554 5.7.1 go away")
    c = Raw(srv.port)
    assert c.read_all() == (b"", True)
    c = Raw(srv.port)
    assert c.read_all() == (b"421 4.3.2 busy\r\n", True)
    c = Raw(srv.port)
    assert c.replies(1) == ["HELLO THIS IS NOT SMTP"]
    c = Raw(srv.port)
    assert c.replies(1) == ["554 5.7.1 go away"]
    c.send(b"EHLO c\r\n")
    assert c.replies(1)[0].startswith("503")
    c.send(b"QUIT\r\n")
    assert c.replies(1)[0].startswith("221")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)  # 5th: normal
    s.sendmail("a@x", ["b@y"], b"x\r\n")
    srv.stop()


def t_fault_ehlo_and_no_ehlo():
    srv = fs("--no-ehlo")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    s.sendmail("a@x", ["b@y"], b"x\r\n")  # smtplib falls back to HELO
    assert s.does_esmtp is False or not s.esmtp_features
    s.quit()
    assert len(records(srv.out)) == 1
    srv.stop()
    srv = fs("--fault", "ehlo:reply:421 4.3.0 not now")
    try:
        smtplib.SMTP("127.0.0.1", srv.port, timeout=5).sendmail("a@x", ["b@y"], b"x\r\n")
        raise AssertionError("no fault")
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPHeloError):
        pass
    smtplib.SMTP("127.0.0.1", srv.port, timeout=5).sendmail("a@x", ["b@y"], b"x\r\n")
    srv.stop()


def t_fault_rcpt_452_after_3():
    srv = fs("--fault", "rcpt:reply:452 4.5.3 too many", "--fault-after", "3")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    refused = s.sendmail("a@x", ["r1@y", "r2@y", "r3@y", "r4@y"], b"x\r\n")
    assert refused == {"r3@y": (452, b"4.5.3 too many")}, refused
    refused = s.sendmail("a@x", ["r5@y"], b"x\r\n")
    assert refused == {}
    s.quit()
    assert [r["rcpt_tos"] for r in records(srv.out)] == [["r1@y", "r2@y", "r4@y"], ["r5@y"]]
    srv.stop()
    srv = fs("--fault", "rcpt:reply:452 4.5.3 too many", "--fault-after", "3", "--fault-repeat")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    refused = s.sendmail("a@x", ["r1@y", "r2@y", "r3@y", "r4@y"], b"x\r\n")
    assert set(refused) == {"r3@y", "r4@y"}, refused
    srv.stop()


def t_fault_max_rcpt():
    srv = fs("--max-rcpt", "2")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    refused = s.sendmail("a@x", ["r1@y", "r2@y", "r3@y", "r4@y"], b"x\r\n")
    assert refused == {"r3@y": (452, b"4.5.3 Too many recipients"),
                       "r4@y": (452, b"4.5.3 Too many recipients")}, refused
    refused = s.sendmail("a@x", ["r3@y", "r4@y"], b"x\r\n")
    assert refused == {}
    assert [r["rcpt_tos"] for r in records(srv.out)] == [["r1@y", "r2@y"], ["r3@y", "r4@y"]]
    srv.stop()


def t_fault_mail_data_dot():
    srv = fs("--fault", "mail:reply:451 4.3.0 mail later", "--fault", "data:drop",
             "--fault", "dot:reply:554 5.7.1 spam", "--fault", "dot@2:reply:250 2.0.0 fine",
             "--fault", "dot@3:stall:1")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    try:
        s.sendmail("a@x", ["b@y"], b"x\r\n")
        raise AssertionError("mail fault")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 451
    s.rset()
    try:
        s.sendmail("a@x", ["b@y"], b"x\r\n")
        raise AssertionError("data fault")
    except smtplib.SMTPServerDisconnected:
        pass
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    try:
        s.sendmail("a@x", ["b@y"], b"1\r\n")
        raise AssertionError("dot fault")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554
    s.sendmail("a@x", ["b@y"], b"2\r\n")  # dot@2 -> 250 fine (recorded)
    t = time.monotonic()
    try:
        s.sendmail("a@x", ["b@y"], b"3\r\n")
        raise AssertionError("stall fault")
    except smtplib.SMTPServerDisconnected:
        dt = time.monotonic() - t
        assert 0.9 < dt < 3, dt
    assert [r["data"] for r in records(srv.out)] == [b"2\r\n"]
    srv.stop()


def t_fault_body_drop():
    srv = fs("--fault", "body:drop")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
    try:
        s.sendmail("a@x", ["b@y"], b"x" * 998 + b"\r\n" * 20000)
        raise AssertionError("body fault")
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        pass
    assert records(srv.out) == []
    ev = [json.loads(l) for l in open(os.path.join(srv.out, "events.jsonl"))]
    assert any(e["event"] == "fault" and e["phase"] == "body" for e in ev)
    srv.stop()


def t_fault_bdat():
    srv = fs("--ext", "CHUNKING", "--no-pipelining", "--lockstep-check")
    c = Raw(srv.port)
    c.replies(1)
    c.send(b"EHLO c\r\n")
    assert c.replies(1)[0].endswith("250 CHUNKING")
    for cmd in (b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@y>\r\n"):
        c.send(cmd)
        assert c.replies(1)[0].startswith("250")
    c.send(b"BDAT 12\r\n.dot\r\n\r\nab\r\n")
    assert c.replies(1) == ["250 2.0.0 12 octets received"]
    c.send(b"BDAT 0 LAST\r\n")
    assert c.replies(1)[0].startswith("250 2.0.0 Ok")
    c.send(b"QUIT\r\n")
    c.replies(1)
    assert [r["data"] for r in records(srv.out)] == [b".dot\r\n\r\nab\r\n"]
    assert violations(srv) == [], violations(srv)
    srv.stop()


def t_fault_lifetime_sigterm():
    t = time.monotonic()
    srv = fs("--lifetime", "1")
    c = Raw(srv.port)  # an open connection must not keep it alive
    rc = srv.p.wait(10)
    assert rc == 0 and time.monotonic() - t < 4
    srv = fs()
    c = Raw(srv.port)
    c.replies(1)
    rc, dt = srv.stop()
    assert rc == 0 and dt < 1, (rc, dt)
    assert c.read_all()[1] is True  # connection closed


# ------------------------------------------------------------------ smtp-sink
def t_sink():
    d = os.path.join(TMP, "sinkdump")
    for flag, pipelining in (([], True), (["--no-pipelining"], False)):
        srv = Server([os.path.join(HERE, "sink.py"), "--port", "0", "--dump-dir", d,
                      "--lifetime", "20"] + flag, SYS_PY, "sink")
        s = smtplib.SMTP("127.0.0.1", srv.port, timeout=5)
        s.ehlo("client.example")
        assert s.has_extn("pipelining") == pipelining
        s.sendmail("a@x.org", ["b@y.org", "c@y.org"], b"Subject: s\r\n\r\n..dot\r\nhi\r\n",
                   mail_options=["BODY=8BITMIME"])
        s.quit()
        rc, dt = srv.stop()
        assert rc == 0 and dt < 3, (rc, dt)
    files = sorted(glob.glob(os.path.join(d, "*")))
    assert len(files) == 2, files
    text = open(files[0], "rb").read()
    assert text.startswith(b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: client.example\n"
                           b"X-Mail-Args: <a@x.org> BODY=8BITMIME\nX-Rcpt-Args: <b@y.org>\n"
                           b"X-Rcpt-Args: <c@y.org>\nReceived: from client.example"), text
    # LF only, dot-unstuffed (smtplib sent "...dot"), plus a blank line
    assert text.endswith(b"(UTC)\nSubject: s\n\n..dot\nhi\n\n"), text
    t = time.monotonic()
    srv = Server([os.path.join(HERE, "sink.py"), "--lifetime", "1"], SYS_PY, "sink")
    assert srv.p.wait(10) == 0 and time.monotonic() - t < 4
    out = subprocess.run(["pgrep", "-x", "smtp-sink"], capture_output=True, text=True).stdout
    assert out == "", "smtp-sink left running: " + out


# ---------------------------------------------------------------- delay proxy
def t_delay_proxy():
    target = fs("--ext", "8BITMIME")
    px = Server([os.path.join(SCRIPTS, "delay_proxy.py"), "--listen-port", "0", "--target-port",
                 str(target.port), "--rtt-ms", "200", "--lifetime", "60"], SYS_PY, "proxy")
    t0 = time.monotonic()
    c = Raw(px.port)
    c.replies(1)
    t_greet = time.monotonic() - t0
    assert 0.09 < t_greet < 0.2, t_greet  # rtt/2
    t0 = time.monotonic()
    c.send(b"EHLO c\r\n")
    c.replies(1)
    t_ehlo = time.monotonic() - t0
    assert 0.19 < t_ehlo < 0.3, t_ehlo
    # a pipelined group in several separate writes costs ONE round trip
    t0 = time.monotonic()
    for cmd in (b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@y>\r\n", b"RCPT TO:<c@y>\r\n", b"DATA\r\n"):
        c.send(cmd)
        time.sleep(0.01)
    c.replies(4)
    t_group = time.monotonic() - t0
    assert 0.19 < t_group < 0.35, t_group
    # throughput: 8 MB still costs about one round trip, not one per chunk
    body = (b"x" * 998 + b"\r\n") * 8000
    t0 = time.monotonic()
    c.send(body + b".\r\n")
    r = c.replies(1)
    t_bulk = time.monotonic() - t0
    assert r[0].startswith("250") and t_bulk < 1.2, (r, t_bulk)
    c.send(b"QUIT\r\n")
    c.replies(1)
    assert c.read_all()[1] is True  # close passed on
    assert records(target.out)[0]["data"] == body
    rc, dt = px.stop()
    assert rc == 0 and dt < 1, (rc, dt)
    target.stop()
    print("    greeting %.3fs, EHLO %.3fs, 4-command group %.3fs, 8 MB body %.3fs (rtt 200ms)"
          % (t_greet, t_ehlo, t_group, t_bulk))


TESTS = [(n, f) for n, f in sorted(globals().items()) if n.startswith("t_")]


def main():
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    failed = 0
    for name, fn in TESTS:
        if only not in name:
            continue
        t = time.monotonic()
        try:
            fn()
            print("ok   %-32s %.2fs" % (name, time.monotonic() - t), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-32s" % name, flush=True)
            traceback.print_exc()
        finally:
            for p in PROCS:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    print("%d failed; logs in %s" % (failed, TMP))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
