#!/usr/bin/env python3
"""Mail-merge inputs for bench/run merge and dist (stdlib only).

    genmerge.py table FILE.csv --rows N
        The recipient table: EMAIL,FIRST,LAST,BALANCE,CITY, one row per subscriber (about
        70 bytes a row; quoted fields with commas, UTF-8, empty values).
    genmerge.py template FILE
        The message template (about 2 KB rendered): substitutions in headers and body
        (&FIRST; &LAST; &*TO; &*DATE; &*MSGID; &*ROW; &BALANCE; &CITY;), one conditional
        block with .BB/.ELSE/.EB, and an `&amp;` that must pass unchanged. Written as
        `poolctl submit --merge` reads it (not dot-stuffed, CRLF).
    genmerge.py files SPOOL --table FILE.csv --template FILE --stem S [--rows N] [--helo H]
        LISTSERV's way: every row rendered into a one-recipient Batch SMTP job of its own,
        <pool><8 digits>.MAIL, written under a temporary name and renamed. The renderer
        here is independent of poold's: the bytes need not match poold's to the byte (the
        date differs), only the size does; `size` prints one row's size to compare with
        `poolctl preview`. Prints "files=N bytes=B seconds=S" (S: writing only).
    genmerge.py size --table FILE.csv --template FILE --stem S --row N [--helo H]
        Prints "row=N wire_bytes=B": row N's rendered message as the relay receives it
        (dot-stuffing undone, CRLF), as `poolctl preview` reports it on standard error.

SENDER is the envelope sender template both ways: news-bounces+&*VERP;@lists.example.org.
"""
import argparse
import csv
import email.utils
import os
import re
import sys
import time

SENDER = "news-bounces+&*VERP;@lists.example.org"
CITIES = ["Paris", "Berlin", "Washington, D.C.", "Zürich", "", "Lyon", "Toronto", "Oslo"]
FIRST = ["Alice", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Günter", "Hiro", "Ines", "Jamal"]
LAST = ["Smith", "O'Brien", "Müller", "Nakamura", "Silva", "Dubois", "Kowalski", "Hansen"]

TEMPLATE = [
    "From: Example News <news@lists.example.org>",
    "To: &FIRST; &LAST; <&*TO;>",
    "Subject: Your December statement, &FIRST;",
    "Date: &*DATE;",
    "Message-ID: <&*MSGID;>",
    "List-Id: Example News <news.lists.example.org>",
    "List-Unsubscribe: <https://lists.example.org/u?r=&*ROW;&amp;l=news>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "Dear &FIRST; &LAST;,",
    "",
    ".BB &BALANCE > 100 AND &CITY",
    "your balance of &BALANCE; EUR is due by the end of the month. You can pay it at",
    "our office in &CITY;, by bank transfer, or online with the link below.",
    ".ELSE",
    "nothing is due this month: your balance is &BALANCE; EUR. Thank you for settling",
    "your account so promptly; there is nothing you need to do.",
    ".EB",
    "",
] + [
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
] * 16 + [
    "",
    "Your subscriber number is &*ROW;; quote it when you write to us.",
    "",
    "-- ",
    "Example News, 1 Example Street, Example City",
    "To leave this list: https://lists.example.org/u?r=&*ROW;&amp;l=news",
]


def subscriber(i):
    """Row i (0-based): address, first, last, balance, city."""
    return (f"subscriber{i}@example{i % 97}.com", FIRST[i % len(FIRST)], LAST[i % len(LAST)],
            f"{(i * 37) % 250}.{i % 10}0", CITIES[i % len(CITIES)])


def cmd_table(a):
    with open(a.file, "w", newline="", encoding="utf-8", buffering=1 << 20) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["EMAIL", "FIRST", "LAST", "BALANCE", "CITY"])
        for i in range(a.rows):
            w.writerow(subscriber(i))
    return 0


def cmd_template(a):
    with open(a.file, "wb") as f:
        f.write(("\r\n".join(TEMPLATE) + "\r\n").encode())
    return 0


# ------------------------------------------------------------ an independent renderer
FIELD = re.compile(r"&([A-Za-z0-9_*-]+);")
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?$")
TOKEN = re.compile(r"\s*(<>|\^=|<=|>=|=|<|>|\(|\)|\"[^\"]*\"|'[^']*'|&[A-Za-z0-9_*-]+;?|[^\s()]+)")


class Renderer:
    def __init__(self, header, template_lines, stem, helo):
        self.columns = [c.upper() for c in header]
        self.lines = template_lines
        self.stem, self.helo = stem, helo

    def fields(self, row, number):
        f = dict(zip(self.columns, row))
        to = f.get("EMAIL", f.get("*TO"))
        local, _, domain = to.rpartition("@")
        f.update({"*TO": to, "*VERP": f"{local}={domain}", "*ROW": str(number),
                  "*MSGID": f"{self.stem}.{number}@{self.helo}",
                  "*DATE": re.sub(r", 0(?=[0-9] )", ", ", email.utils.formatdate(localtime=True))})
        return f

    @staticmethod
    def substitute(text, f):
        return FIELD.sub(lambda m: f.get(m.group(1).upper(), m.group(0)), text)

    def condition(self, text, f):
        toks = TOKEN.findall(text)
        pos = [0]

        def peek():
            return toks[pos[0]] if pos[0] < len(toks) else None

        def take():
            pos[0] += 1
            return toks[pos[0] - 1]

        def value(tok):
            if tok.startswith("&"):
                return f[tok.strip("&;").upper()]
            if tok[0] in "\"'":
                return tok[1:-1]
            return tok

        def unary():
            if peek() and peek().upper() == "NOT":
                take()
                return not unary()
            if peek() == "(":
                take()
                r = disj()
                take()
                return r
            left = value(take())
            if peek() in ("=", "<>", "^=", "<", "<=", ">", ">="):
                op, right = take(), value(take())
                if NUMBER.match(left) and NUMBER.match(right):
                    x, y = float(left), float(right)
                else:
                    x, y = left.lower(), right.lower()
                return {"=": x == y, "<>": x != y, "^=": x != y, "<": x < y,
                        "<=": x <= y, ">": x > y, ">=": x >= y}[op]
            return left != ""

        def conj():
            r = unary()
            while peek() and peek().upper() == "AND":
                take()
                r = unary() and r
            return r

        def disj():
            r = conj()
            while peek() and peek().upper() == "OR":
                take()
                r = conj() or r
            return r

        return disj()

    def render(self, row, number):
        """(sender, address, message bytes with CRLF, not dot-stuffed)."""
        f = self.fields(row, number)
        out, stack = [], []  # stack: (emitting, this branch taken)
        for line in self.lines:
            word = line.split(" ", 1)[0].upper()
            emitting = all(s[0] for s in stack)
            if word == ".BB":
                taken = emitting and self.condition(line[4:], f)
                stack.append((taken, taken))
            elif word == ".ELSE":
                outer = all(s[0] for s in stack[:-1])
                stack[-1] = (outer and not stack[-1][1], stack[-1][1])
            elif word == ".EB":
                stack.pop()
            elif line.startswith(".*"):
                pass
            elif emitting:
                out.append(self.substitute(line, f))
        return self.substitute(SENDER, f), f["*TO"], ("\r\n".join(out) + "\r\n").encode()


def load(a):
    with open(a.template, "rb") as f:
        lines = f.read().decode().split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    table = open(a.table, newline="", encoding="utf-8")
    reader = csv.reader(table)
    return Renderer(next(reader), lines, a.stem, a.helo), reader


def cmd_files(a):
    renderer, rows = load(a)
    t0 = time.monotonic()
    n = total = 0
    for number, row in enumerate(rows, start=1):
        if a.rows and n >= a.rows:
            break
        sender, to, msg = renderer.render(row, number)
        stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in msg[:-2].split(b"\r\n"))
        job = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n%s\r\n.\r\n" % (sender.encode(), to.encode(), stuffed)
        name = "%s%08d.MAIL" % (a.pool, number)
        tmp = os.path.join(a.spool, ".tmp." + name)
        with open(tmp, "wb") as f:
            f.write(job)
        os.rename(tmp, os.path.join(a.spool, name))
        n += 1
        total += len(job)
    print(f"files={n} bytes={total} seconds={time.monotonic() - t0:.3f}")
    return 0


def cmd_size(a):
    renderer, rows = load(a)
    for number, row in enumerate(rows, start=1):
        if number == a.row:
            _, _, msg = renderer.render(row, number)
            print(f"row={number} wire_bytes={len(msg)}")
            return 0
    return 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("file")
    t.add_argument("--rows", type=int, required=True)
    m = sub.add_parser("template")
    m.add_argument("file")
    for name in ("files", "size"):
        s = sub.add_parser(name)
        if name == "files":
            s.add_argument("spool")
            s.add_argument("--rows", type=int, default=0, help="0 = every row")
            s.add_argument("--pool", default="A")
        else:
            s.add_argument("--row", type=int, default=1)
        s.add_argument("--table", required=True)
        s.add_argument("--template", required=True)
        s.add_argument("--stem", required=True)
        s.add_argument("--helo", default="bench.example")
    a = p.parse_args()
    return {"table": cmd_table, "template": cmd_template, "files": cmd_files, "size": cmd_size}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
