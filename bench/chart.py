#!/usr/bin/env python3
"""Messages per second against the number of workers (loopback) and against the round-trip
time (through scripts/delay_proxy.py), for poold, smtp-source and the Python smtplib
baseline, measured in one run against smtp-sink; draws bench/chart.png and prints the
figures. Run by bench/chart (which installs matplotlib into the repo's .venv).

Each point is one run: poold drains N one-recipient 2 KB jobs written before the clock
starts; smtp-source and smtplib send N generated messages. Loopback only; every server
started here is stopped by its PID.
"""
import os, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("POOLD_BIN_DIR", os.path.join(ROOT, ".build-bench", "release"))
SINK = os.environ.get("POOLD_SMTP_SINK", "/usr/sbin/smtp-sink")
SOURCE = os.environ.get("POOLD_SMTP_SOURCE", "/usr/sbin/smtp-source")
LIB = os.path.join(ROOT, "bench", "lib")
WORK = tempfile.mkdtemp(prefix="poold-chart.")
children = []


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    children.append(p)
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def sink():
    port = free_port()
    start(["timeout", "600", SINK, "-u", "root", f"127.0.0.1:{port}", "256"])
    wait_port(port)
    return port


def proxy(target, rtt_ms):
    ready = os.path.join(WORK, f"proxy-{target}-{rtt_ms}.port")
    start(["timeout", "600", sys.executable, os.path.join(ROOT, "scripts", "delay_proxy.py"), "--listen-port", "0",
           "--target-host", "127.0.0.1", "--target-port", str(target), "--rtt-ms", str(rtt_ms),
           "--ready-file", ready, "--lifetime", "600"])
    end = time.time() + 10
    while not os.path.exists(ready) and time.time() < end:
        time.sleep(0.05)
    return int(open(ready).read().strip())


def timed(args, **kw):
    t0 = time.monotonic()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600, **kw)
    return time.monotonic() - t0


def poold(port, workers, n):
    spool = os.path.join(WORK, f"spool-{port}-{workers}-{n}")
    os.makedirs(spool)
    subprocess.run([sys.executable, os.path.join(LIB, "genjobs.py"), spool, "--jobs", str(n), "--size", "2048"],
                   stdout=subprocess.DEVNULL, check=True)
    cfg = os.path.join(WORK, f"cfg-{port}-{workers}-{n}")
    with open(cfg, "w") as f:
        f.write(f"SPOOL_DIR={spool}\nSMTP_FORWARD_1={workers}*127.0.0.1:{port}\n")
    seconds = timed([os.path.join(BIN, "poold"), "--config", cfg, "--drain"])
    left = [x for x in os.listdir(spool) if x.endswith(".MAIL")]
    if left:
        raise SystemExit(f"poold left {len(left)} jobs: FAILED")
    shutil.rmtree(spool)
    return n / seconds


def source(port, sessions, n):
    return n / timed([SOURCE, "-s", str(sessions), "-d", "-l", "2048", "-m", str(n), f"127.0.0.1:{port}"])


def smtplib_(port, procs, n):
    return n / timed([sys.executable, os.path.join(LIB, "smtplib_baseline.py"), "throughput", "--port", str(port),
                      "--procs", str(procs), "--messages", str(n), "--size", "2048"])


def main():
    workers = [1, 2, 4, 8]
    rtts = [0, 10, 25, 50]
    tools = {"poold": poold, "smtp-source": source, "smtplib": smtplib_}
    by_workers = {t: [] for t in tools}
    by_rtt = {t: [] for t in tools}
    port = sink()
    for w in workers:
        for name, run in tools.items():
            by_workers[name].append(run(port, w, 8000))
            print(f"workers={w} {name}: {by_workers[name][-1]:.0f} msg/s", flush=True)
    for rtt in rtts:
        target = port if rtt == 0 else proxy(port, rtt)
        n = 8000 if rtt == 0 else max(200, 20000 // rtt)
        for name, run in tools.items():
            by_rtt[name].append(run(target, 4, n))
            print(f"rtt={rtt}ms {name}: {by_rtt[name][-1]:.0f} msg/s ({n} messages, 4 connections)", flush=True)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in tools:
        a.plot(workers, by_workers[name], marker="o", label=name)
        b.plot(rtts, by_rtt[name], marker="o", label=name)
    a.set_title("Loopback: messages/s against workers (connections)")
    a.set_xlabel("workers / connections"); a.set_ylabel("messages per second"); a.set_xticks(workers); a.grid(alpha=0.3); a.legend()
    b.set_title("4 workers: messages/s against round-trip time")
    b.set_xlabel("added round-trip time (ms)"); b.set_ylabel("messages per second"); b.set_yscale("log"); b.set_xticks(rtts); b.grid(alpha=0.3); b.legend()
    fig.suptitle("poold vs smtp-source vs smtplib, one-recipient 2 KB messages into smtp-sink (2 cores)")
    fig.tight_layout()
    out = os.path.join(ROOT, "bench", "chart.png")
    fig.savefig(out, dpi=110)
    print(f"chart: {out}")


try:
    main()
finally:
    for p in children:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(WORK, ignore_errors=True)
