#!/usr/bin/env python3
"""Two panels, measured in one run against smtp-sink, poold beside smtp-source, the Python
smtplib baseline and Postfix (a private instance, bench/lib/postfix_bench.py):
  left:  messages/s on loopback against workers (connections; Postfix: destination
         concurrency), N one-recipient 2 KB messages each;
  right: round trips per message against the round-trip time (scripts/delay_proxy.py),
         one worker / connection, M messages: wall time / RTT / M (start-up included).
Draws the chart (default bench/out/chart.png; --out bench/chart.png for the published
one) and prints the figures as markdown tables (also written beside the chart as .md).
Run by bench/chart. Loopback only; every server started here is stopped by its PID, every
Postfix instance by `postfix -c DIR stop`.

    bench/chart.py [--out FILE] [--workers 1,2,4,8,16] [--rtts 10,25,50] [--jobs 8000]
                   [--rtt-messages 100] [--no-postfix]
"""
import argparse, os, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("POOLD_BIN_DIR", os.path.join(ROOT, ".build-bench", "release"))
SINK = os.environ.get("POOLD_SMTP_SINK", "/usr/sbin/smtp-sink")
SOURCE = os.environ.get("POOLD_SMTP_SOURCE", "/usr/sbin/smtp-source")
LIB = os.path.join(ROOT, "bench", "lib")
sys.path.insert(0, LIB)
import postfix_bench  # noqa: E402  (sink_count, Instance.stop)

WORK = tempfile.mkdtemp(prefix="poold-chart.", dir=os.path.join(ROOT, "bench", "out") if os.path.isdir(os.path.join(ROOT, "bench", "out")) else None)
os.chmod(WORK, 0o755)  # a Postfix instance inside runs as user postfix
children = []
instances = []


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(args, out=subprocess.DEVNULL, **kw):
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL, **kw)
    children.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


class Sink:
    """A fresh smtp-sink -c (its counters in a file), and optionally a delay proxy in front."""

    def __init__(self, rtt_ms=0):
        self.port = free_port()
        self.out = os.path.join(WORK, f"sink-{self.port}.out")
        self.proc = start(["timeout", "900", SINK, "-u", "root", "-c", f"127.0.0.1:{self.port}", "256"],
                          out=open(self.out, "wb"))
        wait_port(self.port)
        self.proxy = None
        self.target = self.port
        if rtt_ms:
            ready = os.path.join(WORK, f"proxy-{self.port}.port")
            self.proxy = start(["timeout", "900", sys.executable, os.path.join(ROOT, "scripts", "delay_proxy.py"),
                                "--listen-port", "0", "--target-host", "127.0.0.1", "--target-port", str(self.port),
                                "--rtt-ms", str(rtt_ms), "--ready-file", ready, "--lifetime", "850", "--quiet"])
            end = time.time() + 10
            while not os.path.exists(ready) and time.time() < end:
                time.sleep(0.05)
            self.target = int(open(ready).read().strip())

    def count(self):
        return postfix_bench.sink_count(self.out)

    def close(self, want):
        end = time.time() + 5
        while self.count() < want and time.time() < end:
            time.sleep(0.05)
        got = self.count()
        if self.proxy:
            stop(self.proxy)
        stop(self.proc)
        if got != want:
            raise SystemExit(f"the sink counted {got} of {want} messages: FAILED")


def timed(args, **kw):
    t0 = time.monotonic()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=900, **kw)
    return time.monotonic() - t0


def poold(port, workers, n):
    spool = os.path.join(WORK, f"spool-{port}-{workers}-{n}")
    os.makedirs(spool)
    subprocess.run([sys.executable, os.path.join(LIB, "genjobs.py"), spool, "--jobs", str(n), "--size", "2048"],
                   stdout=subprocess.DEVNULL, check=True)
    cfg = spool + ".cfg"
    with open(cfg, "w") as f:
        f.write(f"SPOOL_DIR={spool}\nSMTP_FORWARD_1={workers}*127.0.0.1:{port}\nHELO_NAME=bench.example\n")
    os.sync()  # the jobs are on disk before the clock starts
    seconds = timed([os.path.join(BIN, "poold"), "--config", cfg, "--drain"])
    left = [x for x in os.listdir(spool) if x.endswith(".MAIL")]
    if left:
        raise SystemExit(f"poold left {len(left)} jobs: FAILED")
    shutil.rmtree(spool)
    return seconds


def source(port, sessions, n):
    return timed([SOURCE, "-s", str(sessions), "-d", "-l", "2048", "-m", str(n), f"127.0.0.1:{port}"])


def smtplib_(port, procs, n):
    return timed([sys.executable, os.path.join(LIB, "smtplib_baseline.py"), "throughput", "--port", str(port),
                  "--procs", str(procs), "--messages", str(n), "--size", "2048"])


def postfix(sink, concurrency, n):
    inst = os.path.join(WORK, f"postfix-{sink.port}-{concurrency}")
    os.makedirs(inst)
    instances.append(inst)
    r = subprocess.run([sys.executable, os.path.join(LIB, "postfix_bench.py"), "drain", inst, "--sink-port",
                        str(sink.target), "--sink-out", sink.out, "--messages", str(n), "--concurrency",
                        str(concurrency)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=1500)
    line = (r.stdout.strip().splitlines() or ["?"])[-1]
    if r.returncode != 0:
        raise SystemExit(f"Postfix drain FAILED: {line}")
    shutil.rmtree(inst, ignore_errors=True)
    return float(line.split()[0].split("=")[1])


def measure(tools, sink_for, n, k):
    """Each tool once against its own fresh sink; seconds by tool."""
    res = {}
    for name, run in tools.items():
        sink = sink_for()
        res[name] = run(sink, k, n) if name == "Postfix" else run(sink.target, k, n)
        sink.close(n)
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "chart.png"))
    p.add_argument("--workers", default="1,2,4,8,16")
    p.add_argument("--rtts", default="10,25,50")
    p.add_argument("--jobs", type=int, default=8000)
    p.add_argument("--rtt-messages", type=int, default=100)
    p.add_argument("--no-postfix", action="store_true")
    a = p.parse_args()
    workers = [int(x) for x in a.workers.split(",")]
    rtts = [int(x) for x in a.rtts.split(",")]
    tools = {"poold": poold, "smtp-source": source, "smtplib": smtplib_}
    if not a.no_postfix and os.geteuid() == 0 and os.path.exists("/usr/lib/postfix/sbin/master"):
        tools["Postfix"] = postfix
    by_workers = {t: [] for t in tools}
    rtt_per_msg = {t: [] for t in tools}
    for w in workers:
        secs = measure(tools, Sink, a.jobs, w)
        for name in tools:
            by_workers[name].append(a.jobs / secs[name])
            print(f"workers={w} {name}: {a.jobs / secs[name]:.0f} msg/s", flush=True)
    m = a.rtt_messages
    for rtt in rtts:
        secs = measure(tools, lambda: Sink(rtt), m, 1)
        for name in tools:
            rtt_per_msg[name].append(secs[name] / (rtt / 1000) / m)
            print(f"rtt={rtt}ms {name}: {rtt_per_msg[name][-1]:.2f} RTT/msg ({m} messages, 1 connection)", flush=True)

    names = {"poold": "poold (workers)", "smtp-source": "smtp-source -d (-s sessions)",
             "smtplib": "Python smtplib (processes)", "Postfix": "Postfix (destination concurrency)"}
    md = [f"Loopback, {a.jobs} one-recipient 2 KB messages: messages/s", "",
          "| workers / connections | " + " | ".join(tools) + " |", "|---" * (len(tools) + 1) + "|"]
    for i, w in enumerate(workers):
        md.append(f"| {w} | " + " | ".join(f"{by_workers[t][i]:,.0f}" for t in tools) + " |")
    md += ["", f"One worker / connection, {m} messages through scripts/delay_proxy.py: round trips per message "
           "(wall / RTT / messages, start-up included)", "",
           "| RTT | " + " | ".join(tools) + " |", "|---" * (len(tools) + 1) + "|"]
    for i, r in enumerate(rtts):
        md.append(f"| {r} ms | " + " | ".join(f"{rtt_per_msg[t][i]:.2f}" for t in tools) + " |")
    table = "\n".join(md) + "\n"
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in tools:
        left.plot(workers, by_workers[name], marker="o", label=names[name])
        right.plot(rtts, rtt_per_msg[name], marker="o", label=names[name])
    left.set_title(f"Loopback: messages/s against workers ({a.jobs:,} msgs)")
    left.set_xlabel("workers / connections"); left.set_ylabel("messages per second"); left.set_xscale("log", base=2)
    left.set_xticks(workers); left.set_xticklabels([str(w) for w in workers]); left.grid(alpha=0.3); left.legend(fontsize=8, loc="upper left")
    right.set_title(f"1 connection: round trips per message ({m} msgs)")
    right.set_xlabel("round-trip time (ms)"); right.set_ylabel("RTT per message (wall / RTT / messages)")
    right.set_xticks(rtts); right.set_ylim(bottom=0); right.axhline(1.0, color="grey", lw=0.8, ls="--")
    right.grid(alpha=0.3); right.legend(fontsize=8)
    fig.suptitle("poold, smtp-source, smtplib and Postfix: one-recipient 2 KB messages into smtp-sink "
                 f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d', time.gmtime())})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out, dpi=110)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write(table)
    print(f"chart: {a.out}")


try:
    main()
finally:
    for p in children:
        stop(p)
    for inst in instances:
        postfix_bench.Instance(inst).stop()
    shutil.rmtree(WORK, ignore_errors=True)
