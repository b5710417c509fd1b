#!/usr/bin/env python3
"""A pass-through TCP proxy that notes when the first mail goes by (stdlib only), for
bench/run merge's "time to the first row on the wire".

    firstrow.py --target-port P --out FILE --ready-file F [--lifetime 300]

Forwards every connection to 127.0.0.1:P unchanged, without delay. It writes FILE
(atomically) once the first `MAIL FROM:` of its life has come from a client:
"connect=T1 mail=T2", wall-clock seconds (time.time(), the clock `date +%s.%N` reads):
T1 when the first client connected, T2 when the chunk holding the first MAIL FROM
arrived. Later traffic only passes through. The port goes to the ready file (and
`PORT n` to stdout); SIGTERM or the lifetime stops it.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "relays"))
from lifecycle import serve  # noqa: E402

log = logging.getLogger("firstrow")


class Stamps:
    def __init__(self, out):
        self.out = out
        self.connect = None
        self.mail = None
        self.tail = b""  # a MAIL FROM split between two reads

    def saw(self, data):
        if self.mail is not None:
            return
        if b"MAIL FROM:" in (self.tail + data).upper():
            self.mail = time.time()
            tmp = self.out + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"connect={self.connect:.6f} mail={self.mail:.6f}\n")
            os.replace(tmp, self.out)
        self.tail = data[-16:]


async def pump(reader, writer, stamps=None):
    try:
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            if stamps:
                stamps.saw(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def main(a):
    stamps = Stamps(a.out)

    async def handle(creader, cwriter):
        if stamps.connect is None:
            stamps.connect = time.time()
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", a.target_port)
        except OSError:
            cwriter.transport.abort()
            return
        await asyncio.gather(pump(creader, swriter, stamps), pump(sreader, cwriter))
        for w in (cwriter, swriter):
            w.close()

    server = await asyncio.start_server(handle, host="127.0.0.1", port=0)
    await serve(server, a.lifetime, a.ready_file, log, f"-> 127.0.0.1:{a.target_port}")
    server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--target-port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--lifetime", type=float, default=300)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args))
