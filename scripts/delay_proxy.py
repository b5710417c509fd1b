#!/usr/bin/env python3
"""TCP proxy that adds latency without limiting throughput (stdlib asyncio only).

    python3 scripts/delay_proxy.py --listen-port 0 --target-host 127.0.0.1 \\
        --target-port 2525 --rtt-ms 50 --ready-file F --lifetime 300

Every chunk read from one side is written to the other side rtt/2 after it arrived,
in order; reading never waits for writing, so a pipelined group of commands costs one
round trip however many segments it spans, and a bulk transfer keeps its bandwidth.
A half-close (EOF) is passed on after the same delay. Connecting to the target is not
delayed (the client's connect() completes at once; the greeting then arrives rtt/2
later). Prints "PORT <n>" and writes <n> to --ready-file once listening; exits after
--lifetime seconds or on SIGTERM.
"""

import argparse
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "relays"))
from lifecycle import serve  # noqa: E402

log = logging.getLogger("delay_proxy")
EOF = object()


class Pipe:
    """One direction: reader -> (delay) -> writer."""

    def __init__(self, name, reader, writer, delay, max_queued):
        self.name = name
        self.reader = reader
        self.writer = writer
        self.delay = delay
        self.queue = asyncio.Queue()
        self.queued = 0
        self.max_queued = max_queued
        self.room = asyncio.Event()
        self.room.set()

    async def pump_in(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.room.wait()
                data = await self.reader.read(256 * 1024)
                at = loop.time() + self.delay
                if not data:
                    self.queue.put_nowait((at, EOF))
                    return
                self.queued += len(data)
                if self.queued >= self.max_queued:
                    self.room.clear()  # bounded memory: stop reading for a while
                self.queue.put_nowait((at, data))
        except (ConnectionError, OSError):
            self.queue.put_nowait((loop.time(), None))  # reset: pass it on now

    async def pump_out(self):
        loop = asyncio.get_running_loop()
        while True:
            at, data = await self.queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                return "reset"
            if data is EOF:
                try:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                except (ConnectionError, OSError):
                    return "reset"
                return "eof"
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, OSError):
                return "reset"
            self.queued -= len(data)
            if self.queued < self.max_queued:
                self.room.set()


async def run_pipe(pipe):
    inp = asyncio.ensure_future(pipe.pump_in())
    try:
        return await pipe.pump_out()
    finally:
        inp.cancel()


class Proxy:
    def __init__(self, args):
        self.args = args
        self.delay = args.rtt_ms / 2000.0
        self.tasks = set()
        self.n = 0

    async def handle(self, creader, cwriter):
        self.n += 1
        n = self.n
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            try:
                sreader, swriter = await asyncio.open_connection(
                    self.args.target_host, self.args.target_port)
            except OSError as e:
                log.warning("conn %d: cannot reach target: %s", n, e)
                cwriter.transport.abort()
                return
            log.info("conn %d: %s <-> %s:%d", n, cwriter.get_extra_info("peername"),
                     self.args.target_host, self.args.target_port)
            up = Pipe("up", creader, swriter, self.delay, self.args.max_queued)
            down = Pipe("down", sreader, cwriter, self.delay, self.args.max_queued)
            t_up = asyncio.ensure_future(run_pipe(up))
            t_down = asyncio.ensure_future(run_pipe(down))
            pending = {t_up, t_down}
            reset = True  # unless both directions end with a clean EOF
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    if any(t.result() == "reset" for t in done):
                        break
                else:
                    reset = False
            finally:
                for t in (t_up, t_down):
                    t.cancel()
                for w in (cwriter, swriter):
                    if reset:
                        w.transport.abort()
                    else:
                        w.close()
            log.info("conn %d: %s", n, "reset" if reset else "closed")
        finally:
            self.tasks.discard(task)



async def main(args):
    proxy = Proxy(args)
    server = await asyncio.start_server(proxy.handle, host=args.listen_host, port=args.listen_port)
    await serve(server, args.lifetime, args.ready_file, log, "-> %s:%d, rtt %g ms"
                % (args.target_host, args.target_port, args.rtt_ms))
    server.close()
    for t in list(proxy.tasks):
        t.cancel()
    await asyncio.sleep(0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen-host", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--target-host", default="127.0.0.1")
    p.add_argument("--target-port", type=int, required=True)
    p.add_argument("--rtt-ms", type=float, default=50, help="round-trip time to add")
    p.add_argument("--ready-file", help="the bound port is written here once listening")
    p.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    p.add_argument("--max-queued", type=int, default=64 * 1024 * 1024,
                   help="bytes in flight per direction before reading pauses")
    p.add_argument("--log", help="log to this file instead of stderr")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(filename=args.log, level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s delay_proxy[%(process)d] %(levelname)s %(message)s")
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
