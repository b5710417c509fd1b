#!/usr/bin/env python3
"""A private Postfix instance as the baseline a user would run instead of poold (stdlib only).

    postfix_bench.py drain DIR --sink-port P --sink-out FILE --messages N
                     [--size 2048] [--concurrency 4] [--drop-caches] [--lifetime 1200]
        Queues N one-recipient messages (the same messages as poold's jobs: written by
        genjobs.py, then submitted over SMTP) in a Postfix instance of its own under DIR
        while delivery is held, stops it, syncs (and with --drop-caches drops the page
        cache), starts it again with relayhost = [127.0.0.1]:P, then releases the queue
        (postsuper -H ALL; postqueue -f) and measures from the release until the queue is
        empty and the sink (its -c counters in FILE) counted N. Prints one line:
        "wall=S cpu_s=S sent=N sink=N left=N submit_s=S drop_caches=yes|no|refused".
    postfix_bench.py mx DIR --jobs JOBDIR --transport FILE --sink-out FILE [--sink-out ...]
                     --expect-messages T --expect-recipients R [--connections 16]
                     [--site-connections 5] [--site-messages 100] [--drop-caches]
        bench/run mx's baseline: genmx.py's jobs queued on hold as above, then each domain
        routed to its site's host by transport_maps (smtp:[127.0.0.x]:PORT), at most
        --connections smtp processes, default_destination_concurrency_limit =
        --site-connections, the connection cache on for every next hop and
        smtp_connection_reuse_count_limit = --site-messages; timed from the release until
        the sinks counted T messages and the queue is empty. Prints the drain's line plus
        jobs=J; R is checked against the status=sent lines of its log.
    postfix_bench.py relay DIR --ready-file F [--no-chunking] [--lifetime 900]
        A relay that accepts everything from 127.0.0.1 and discards it (smtpd, cleanup,
        qmgr, the discard transport); it offers PIPELINING and CHUNKING (BDAT), or not
        CHUNKING with --no-chunking. Writes the port to F, runs until SIGTERM or the
        lifetime, then stops the instance.
    postfix_bench.py stop DIR
        Stops the instance under DIR (postfix stop, then by PID what is left) and checks
        that no process of it remains. Exit 1 if one does.

The instance lives entirely in DIR: DIR/etc (main.cf, master.cf), DIR/queue, DIR/data,
DIR/maillog (postlogd). It runs only the services it needs, listens on loopback only,
never delivers locally and never touches /etc/postfix. Its queue is filled with fsync
turned off (libeatmydata, submission only: the drain runs without it on a queue synced to
disk). A watchdog process (DIR/watchdog.pid) aborts the instance after the lifetime if
this script dies without stopping it. Needs root and the Debian postfix package.
"""
import argparse
import glob
import multiprocessing as mp
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DAEMONS = "/usr/lib/postfix/sbin"
EATMYDATA = "/usr/lib/x86_64-linux-gnu/libeatmydata.so"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
ENV_BASE = "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"


def log(msg):
    print("postfix_bench: " + msg, file=sys.stderr, flush=True)


def run(*args, check=True):
    return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=check, timeout=120)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------- the instance
class Instance:
    def __init__(self, top):
        self.top = os.path.abspath(top)
        self.etc = os.path.join(self.top, "etc")
        self.queue = os.path.join(self.top, "queue")
        self.data = os.path.join(self.top, "data")
        self.maillog = os.path.join(self.top, "maillog")

    def write(self, settings, services, eatmydata):
        os.makedirs(self.etc, exist_ok=True)
        os.makedirs(self.queue, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        os.chown(self.data, *pf_ids())
        env = ENV_BASE + (f" LD_PRELOAD={EATMYDATA}" if eatmydata else "")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.top,
            "import_environment": env,
            "myhostname": "postfix.bench.example",
            "mydomain": "bench.example",
            "myorigin": "bench.example",
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery disabled",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
        }
        main.update(settings)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# written by bench/lib/postfix_bench.py\n")
            for k, v in main.items():
                f.write(f"{k} = {v}\n")
        # Only the services this benchmark needs; nothing chrooted, nothing local.
        lines = [
            "qmgr      unix  n  -  n  300  1  qmgr",
            "pickup    unix  n  -  n  60   1  pickup",  # postqueue -f wakes it too
            "rewrite   unix  -  -  n  -    -  trivial-rewrite",
            "bounce    unix  -  -  n  -    0  bounce",
            "defer     unix  -  -  n  -    0  bounce",
            "trace     unix  -  -  n  -    0  bounce",
            "flush     unix  n  -  n  1000? 0 flush",
            "showq     unix  n  -  n  -    -  showq",
            "error     unix  -  -  n  -    -  error",
            "retry     unix  -  -  n  -    -  error",
            "anvil     unix  -  -  n  -    1  anvil",
            "scache    unix  -  -  n  -    1  scache",
            "postlog   unix-dgram n - n -  1  postlogd",
        ] + services
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("# written by bench/lib/postfix_bench.py\n" + "\n".join(lines) + "\n")

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def start(self, lifetime):
        if self.master_pid():
            raise SystemExit(f"a Postfix master already runs for {self.etc}")
        r = run("postfix", "-c", self.etc, "start", check=False)
        pid = self.master_pid()
        if r.returncode != 0 or not pid:
            raise SystemExit(f"postfix -c {self.etc} start failed: {r.stdout.strip()} (see {self.maillog})")
        self.arm_watchdog(lifetime)
        return pid

    def arm_watchdog(self, lifetime):
        self.disarm_watchdog()
        w = subprocess.Popen(["sh", "-c", f'sleep {int(lifetime)}; postfix -c "$1" abort', "watchdog", self.etc],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(self.top, "watchdog.pid"), "w") as f:
            f.write(f"{w.pid}\n")

    def disarm_watchdog(self):
        path = os.path.join(self.top, "watchdog.pid")
        try:
            pid = int(open(path).read())
        except (OSError, ValueError):
            return
        try:
            os.killpg(pid, signal.SIGTERM)  # the watchdog's own session: sh and its sleep
        except OSError:
            pass
        os.unlink(path)

    def processes(self):
        """The master and every process it started (pid list), zombies left out."""
        master = self.master_pid()
        if not master:
            return []
        pids = [master]
        for st in glob.glob("/proc/[0-9]*/stat"):
            f = proc_stat(st)
            if f and f["ppid"] == master and f["state"] != "Z":
                pids.append(f["pid"])
        return pids

    def cpu_seconds(self):
        """CPU time used by the instance so far: its live processes plus the children the
        master has reaped (their time lands in the master's cutime/cstime)."""
        tick = os.sysconf("SC_CLK_TCK")
        master = self.master_pid()
        total = 0
        for pid in self.processes():
            f = proc_stat(f"/proc/{pid}/stat")
            if not f:
                continue
            total += f["utime"] + f["stime"]
            if pid == master:
                total += f["cutime"] + f["cstime"]
        return total / tick

    def stop(self):
        """Stops the instance; True when no process of it is left."""
        pids = self.processes()
        if pids:
            run("postfix", "-c", self.etc, "stop", check=False)
            deadline = time.time() + 15
            while time.time() < deadline and any(alive(p) for p in pids):
                time.sleep(0.1)
            for p in pids:
                if alive(p):
                    log(f"pid {p} survived 'postfix stop': SIGKILL")
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.2)
        self.disarm_watchdog()
        left = [p for p in pids if alive(p)] + self.masters_of_this_config()
        if left:
            log(f"processes of {self.etc} still running: {sorted(set(left))}")
        return not left

    def masters_of_this_config(self):
        """Any live master whose MAIL_CONFIG is this instance's (the check asked for)."""
        found = []
        for st in glob.glob("/proc/[0-9]*/stat"):
            f = proc_stat(st)
            if not f or f["comm"] != "master" or f["state"] == "Z":
                continue
            try:
                env = open(f"/proc/{f['pid']}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if f"MAIL_CONFIG={self.etc}".encode() in env:
                found.append(f["pid"])
        return found

    def queued(self):
        n = 0
        for q in QUEUES:
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n


def pf_ids():
    import pwd
    p = pwd.getpwnam("postfix")
    return p.pw_uid, p.pw_gid


def alive(pid):
    f = proc_stat(f"/proc/{pid}/stat")
    return bool(f) and f["state"] != "Z"


def proc_stat(path):
    try:
        raw = open(path).read()
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    pid, _, comm = head.partition(" (")
    v = rest.split()
    return {"pid": int(pid), "comm": comm, "state": v[0], "ppid": int(v[1]),
            "utime": int(v[11]), "stime": int(v[12]), "cutime": int(v[13]), "cstime": int(v[14])}


def drop_caches():
    """sync, then drop the page cache; 'yes', or 'refused' when not permitted."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return "yes"
    except OSError:
        return "refused"


# ----------------------------------------------------------------- submission
def read_job(path):
    """(sender, [rcpts], message bytes) of a genjobs.py job: the same message poold sends."""
    with open(path, "rb") as f:
        raw = f.read()
    head, _, body = raw.partition(b"DATA\r\n")
    sender, rcpts = None, []
    for line in head.split(b"\r\n"):
        if line.startswith(b"MAIL FROM:<"):
            sender = line[11:line.index(b">")].decode()
        elif line.startswith(b"RCPT TO:<"):
            rcpts.append(line[9:line.index(b">")].decode())
    assert body.endswith(b"\r\n.\r\n"), path
    lines = body[:-3].split(b"\r\n")
    msg = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
    return sender, rcpts, msg


def submit_worker(args):
    port, paths = args
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example", timeout=120)
    s.ehlo()
    sent = 0
    for p in paths:
        sender, rcpts, msg = read_job(p)
        if not s.sendmail(sender, rcpts, msg):
            sent += 1
    s.quit()
    return sent


def submit(port, spool, procs=4):
    paths = sorted(glob.glob(os.path.join(spool, "*.MAIL")))
    shares = [paths[k::procs] for k in range(procs)]
    with mp.get_context("fork").Pool(procs) as pool:
        return sum(pool.map(submit_worker, [(port, s) for s in shares if s]))


# ----------------------------------------------------------------- sink counter
def sink_count(path):
    """smtp-sink -c's last 'mesg=N' (it rewrites one line with CRs)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 400))
            tail = f.read()
    except OSError:
        return 0
    k = tail.rfind(b"mesg=")
    if k < 0:
        return 0
    digits = tail[k + 5:].split(maxsplit=1)[0].rstrip(b"\r")
    return int(digits) if digits.isdigit() else 0


# ----------------------------------------------------------------- commands
def fill_held(inst, jobs, lifetime):
    """Phase 1: queue every job file of the directory `jobs` (genjobs.py/genmx.py BSMTP
    files, submitted over SMTP), held, with fsync off (only the submission is sped up);
    then stop the instance. Returns (messages, seconds)."""
    sub_port = free_port()
    inst.write({"smtpd_client_restrictions": "check_client_access static:HOLD"},
               [f"127.0.0.1:{sub_port} inet n - n - - smtpd",
                "cleanup   unix  n  -  n  -  0  cleanup"], eatmydata=os.path.exists(EATMYDATA))
    inst.start(lifetime)
    want = len(glob.glob(os.path.join(jobs, "*.MAIL")))
    t = time.monotonic()
    submitted = submit(sub_port, jobs)
    submit_s = time.monotonic() - t
    held = inst.queued()
    log(f"submitted {submitted} messages in {submit_s:.1f} s; {held} in the queue (held)")
    if submitted != want or held != want:
        raise SystemExit(f"queued {held} of {want} (submitted {submitted})")
    if not inst.stop():
        raise SystemExit("the instance did not stop after the submission")
    return want, submit_s


def timed_release(inst, settings, services, sink_outs, want, a, deadline):
    """Phase 2: the instance a user would run (`settings`, `services`), started on the
    synced queue (page cache dropped with --drop-caches); the clock runs from the release
    (postsuper -H ALL; postqueue -f) until the sinks (their -c counters) counted `want`
    more messages and the queue is empty. Returns (wall, cpu, got, left, caches)."""
    inst.write(settings, services, eatmydata=False)
    caches = drop_caches() if a.drop_caches else (os.sync() or "no")
    inst.start(a.lifetime)
    time.sleep(1)  # the master and qmgr settle (they see only the hold queue)
    count = lambda: sum(sink_count(p) for p in sink_outs)  # noqa: E731
    before = count()
    cpu0 = inst.cpu_seconds()
    t0 = time.monotonic()
    run("postsuper", "-c", inst.etc, "-H", "ALL")
    run("postqueue", "-c", inst.etc, "-f")
    while count() < before + want and time.time() < deadline:
        time.sleep(0.01)
    while inst.queued() and time.time() < deadline:
        time.sleep(0.01)
    t1 = time.monotonic()
    cpu1 = inst.cpu_seconds()
    return t1 - t0, cpu1 - cpu0, count() - before, inst.queued(), caches


def sent_lines(inst):
    try:
        with open(inst.maillog, errors="replace") as f:
            return sum(1 for line in f if " status=sent " in line)
    except OSError:
        return 0


def cmd_drain(a):
    inst = Instance(a.dir)
    deadline = time.time() + a.lifetime
    try:
        # 1. Queue the messages, held (the same messages as poold's jobs).
        spool = os.path.join(inst.top, "jobs")
        os.makedirs(spool, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "genjobs.py"), spool, "--jobs", str(a.messages),
                        "--size", str(a.size)], check=True)
        _, submit_s = fill_held(inst, spool, a.lifetime)
        subprocess.run(["rm", "-rf", spool], check=True)

        # 2. The instance a user would run: relayhost = the sink, connection cache on.
        relay = f"[127.0.0.1]:{a.sink_port}"
        wall, cpu, got, left, caches = timed_release(
            inst, {"relayhost": relay,
                   "default_destination_concurrency_limit": str(a.concurrency),
                   "smtp_connection_cache_on_demand": "yes",
                   "smtp_connection_cache_destinations": relay},
            ["smtp      unix  -  -  n  -  -  smtp",
             "cleanup   unix  n  -  n  -  0  cleanup"], [a.sink_out], a.messages, a, deadline)
    finally:
        stopped = inst.stop()
    sent = sent_lines(inst)
    print(f"wall={wall:.3f} cpu_s={cpu:.2f} sent={sent} sink={got} left={left} "
          f"submit_s={submit_s:.1f} drop_caches={caches} stopped={'yes' if stopped else 'NO'}")
    return 0 if (stopped and left == 0 and got == a.messages and sent == a.messages) else 1


def cmd_mx(a):
    """Direct delivery's baseline: genmx.py's jobs through Postfix, each domain routed to
    its site's host by transport_maps (Postfix cannot ask a resolver on another port), at
    most --connections smtp processes, --site-connections per site (a destination: the
    transport's next hop), connections cached and reused for --site-messages messages."""
    inst = Instance(a.dir)
    deadline = time.time() + a.lifetime
    with open(a.transport) as f:
        hops = sorted({line.split()[1].split(":", 1)[1] for line in f if line.strip()})
    try:
        jobs, submit_s = fill_held(inst, a.jobs, a.lifetime)
        wall, cpu, got, left, caches = timed_release(
            inst, {"transport_maps": f"texthash:{os.path.abspath(a.transport)}",
                   "relayhost": "",
                   "default_destination_concurrency_limit": str(a.site_connections),
                   "initial_destination_concurrency": str(a.site_connections),
                   "default_destination_rate_delay": "0s",
                   "smtp_connection_cache_on_demand": "yes",
                   "smtp_connection_cache_destinations": ", ".join(hops),
                   "smtp_connection_reuse_count_limit": str(a.site_messages)},
            [f"smtp      unix  -  -  n  -  {a.connections}  smtp",
             "cleanup   unix  n  -  n  -  0  cleanup"], a.sink_out, a.expect_messages, a, deadline)
    finally:
        stopped = inst.stop()
    sent = sent_lines(inst)
    print(f"wall={wall:.3f} cpu_s={cpu:.2f} sent={sent} sink={got} left={left} jobs={jobs} "
          f"submit_s={submit_s:.1f} drop_caches={caches} stopped={'yes' if stopped else 'NO'}")
    return 0 if (stopped and left == 0 and got == a.expect_messages and sent == a.expect_recipients) else 1


def cmd_relay(a):
    inst = Instance(a.dir)
    stop_now = []
    signal.signal(signal.SIGTERM, lambda *_: stop_now.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop_now.append(1))
    try:
        port = free_port()
        settings = {"default_transport": "discard", "relay_transport": "discard", "relayhost": "",
                    "smtpd_relay_restrictions": "permit_mynetworks, reject"}
        if a.no_chunking:
            settings["smtpd_discard_ehlo_keywords"] = "chunking"
        # The relay's queue (tmpfs, or fsync off) is not what is measured: poold's round trips are.
        inst.write(settings, [f"127.0.0.1:{port} inet n - n - - smtpd",
                              "cleanup   unix  n  -  n  -  0  cleanup",
                              "discard   unix  -  -  n  -  -  discard"], eatmydata=os.path.exists(EATMYDATA))
        inst.start(a.lifetime + 30)
        tmp = a.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, a.ready_file)
        end = time.time() + a.lifetime
        while not stop_now and time.time() < end:
            time.sleep(0.1)
    finally:
        stopped = inst.stop()
    return 0 if stopped else 1


def cmd_stop(a):
    return 0 if Instance(a.dir).stop() else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drain")
    d.add_argument("dir")
    d.add_argument("--sink-port", type=int, required=True)
    d.add_argument("--sink-out", required=True)
    d.add_argument("--messages", type=int, default=20000)
    d.add_argument("--size", type=int, default=2048)
    d.add_argument("--concurrency", type=int, default=4)
    d.add_argument("--drop-caches", action="store_true")
    d.add_argument("--lifetime", type=float, default=1200)
    m = sub.add_parser("mx")
    m.add_argument("dir")
    m.add_argument("--jobs", required=True, help="genmx.py's DIR/jobs")
    m.add_argument("--transport", required=True, help="genmx.py's DIR/transport")
    m.add_argument("--sink-out", action="append", required=True, help="each site's smtp-sink -c output")
    m.add_argument("--expect-messages", type=int, required=True)
    m.add_argument("--expect-recipients", type=int, required=True)
    m.add_argument("--connections", type=int, default=16)
    m.add_argument("--site-connections", type=int, default=5)
    m.add_argument("--site-messages", type=int, default=100)
    m.add_argument("--drop-caches", action="store_true")
    m.add_argument("--lifetime", type=float, default=1200)
    r = sub.add_parser("relay")
    r.add_argument("dir")
    r.add_argument("--ready-file", required=True)
    r.add_argument("--no-chunking", action="store_true")
    r.add_argument("--lifetime", type=float, default=900)
    s = sub.add_parser("stop")
    s.add_argument("dir")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("postfix_bench.py: needs root (Postfix's master runs as root)")
    if not os.path.exists(os.path.join(DAEMONS, "master")):
        raise SystemExit("postfix_bench.py: the postfix package is not installed")
    return {"drain": cmd_drain, "mx": cmd_mx, "relay": cmd_relay, "stop": cmd_stop}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
