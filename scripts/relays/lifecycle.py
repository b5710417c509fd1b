"""What every test server here does around its protocol: announce the port it got
(ready file written atomically, and `PORT n` on stdout), then run until SIGTERM, SIGINT
or its lifetime ends. Shared by recorder.py, fault_server.py and ../delay_proxy.py."""

import asyncio
import os
import signal


def write_ready(path, port):
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


async def serve(server, lifetime, ready_file, log, description):
    """Announces `server`'s port and waits for a stop; returns the port. The caller closes."""
    loop = asyncio.get_running_loop()
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(lifetime, stop.set)
    if ready_file:
        write_ready(ready_file, port)
    print("PORT %d" % port, flush=True)
    log.info("listening on port %d (pid %d); %s", port, os.getpid(), description)
    await stop.wait()
    log.info("shutting down")
    return port
