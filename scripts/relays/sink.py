#!/usr/bin/env python3
"""Run Postfix's smtp-sink on a free port, bounded in time (stdlib only).

    python3 scripts/relays/sink.py --port 0 --ready-file F --lifetime 300 \\
        --dump-dir DIR [--no-pipelining] [-- more smtp-sink options]

smtp-sink cannot bind port 0 and report the port, has no lifetime, and refuses to run as
root without -u. This wrapper picks a free port (retrying if another process takes it
first), runs "$POOLD_SMTP_SINK [-u root] [-p] [-d DIR/%Y%m%d%H%M%S.] OPTS host:port 100",
waits until smtp-sink itself listens on the port (read from /proc, so no test session
is made), then writes the port to --ready-file and prints "PORT <n>". It stops smtp-sink
(SIGTERM, then SIGKILL) after --lifetime seconds or when it gets SIGTERM itself, and
smtp-sink also dies if this wrapper is killed (PR_SET_PDEATHSIG). smtp-sink's own output
(e.g. the -c counters) goes to stderr. If smtp-sink exits by itself (-M, -n), so does
the wrapper, with its status.

Dump files (-d): one file per transaction, created at MAIL FROM, deleted on RSET or an
aborted session, complete when the client gets the 250 after the final dot. Lines end in
LF (CRs are stripped); the message is dot-unstuffed; a blank line is appended:
    X-Client-Addr: 127.0.0.1
    X-Client-Proto: ESMTP
    X-Helo-Args: client.example
    X-Mail-Args: <a@x.org> BODY=8BITMIME
    X-Rcpt-Args: <b@y.org>
    Received: from client.example ([127.0.0.1])
    <TAB>by smtp-sink (smtp-sink) with ESMTP id 4bf60be2;
    <TAB>Tue, 24 Nov 2026 02:43:44 +0000 (UTC)
    <the message>
"""

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def free_port(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(port, pid):
    """True when process pid holds a socket listening on port."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                        inodes.add("socket:[%s]" % parts[9])
        except OSError:
            pass
    if not inodes:
        return False
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                return True
        except OSError:
            pass
    return False


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description="Run smtp-sink on a free port, bounded in time.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--ready-file")
    p.add_argument("--lifetime", type=float, default=600)
    p.add_argument("--dump-dir", help="one file per transaction in this directory (-d)")
    p.add_argument("--no-pipelining", action="store_true", help="smtp-sink -p")
    p.add_argument("--backlog", type=int, default=100)
    p.add_argument("--sink", default=os.environ.get("POOLD_SMTP_SINK", "/usr/sbin/smtp-sink"))
    args = p.parse_args(argv)

    cmd = [args.sink]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    if args.no_pipelining:
        cmd.append("-p")
    if args.dump_dir:
        os.makedirs(args.dump_dir, exist_ok=True)
        cmd += ["-d", os.path.join(os.path.abspath(args.dump_dir), "%Y%m%d%H%M%S.")]
    cmd += extra

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    deadline = time.monotonic() + args.lifetime
    host = "[%s]" % args.host if ":" in args.host else args.host
    child = port = None
    for attempt in range(10):
        port = args.port or free_port(args.host)
        child = subprocess.Popen(cmd + ["%s:%d" % (host, port), str(args.backlog)],
                                 stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                 preexec_fn=die_with_parent)
        t0 = time.monotonic()
        while child.poll() is None and not listening(port, child.pid) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        if child.poll() is None and listening(port, child.pid):
            break
        if child.poll() is None:
            child.kill()
            child.wait()
        if args.port:
            sys.exit("sink.py: smtp-sink did not start on port %d" % port)
        child = None
    if child is None:
        sys.exit("sink.py: smtp-sink did not start (10 attempts)")

    if args.ready_file:
        tmp = args.ready_file + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)
    print("PORT %d" % port, flush=True)

    status = None
    while not stop["now"] and time.monotonic() < deadline:
        status = child.poll()
        if status is not None:
            break
        time.sleep(0.05)
    if status is None:
        child.terminate()
        try:
            child.wait(2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        status = 0
    sys.exit(status if status >= 0 else 0)


if __name__ == "__main__":
    main()
