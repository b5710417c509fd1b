#!/usr/bin/env python3
"""An authoritative DNS server for the MX resolution tests: one zone file, UDP and TCP on
the same loopback port, bounded in time. Run it with the venv's python (dnslib).

Answers (every name compared without regard to case):
- records of the asked type at the asked name: NOERROR with them (AA set);
- a name that exists (it owns a record, or a name below it does) without that type:
  NOERROR with no answer and an SOA in the authority section (RFC 2308 NODATA);
- any other name: NXDOMAIN with that SOA;
- `--servfail NAME`: SERVFAIL for every question about NAME;
- `--drop NAME`: no answer at all (the client times out);
- `--truncate NAME`: over UDP, an empty answer with TC=1, so the client must ask again
  over TCP, where the full answer comes.
The SOA of negative answers belongs to the top-level label of the name and carries
`--negative-ttl` both as its TTL and as its MINIMUM. Only the first question is answered.

The zone is master-file text as dnslib reads it (`RR.fromZone`): one record a line,
`name [ttl] [IN] type data`, `$TTL` and `$ORIGIN` directives, `;` comments. Write names
fully qualified (trailing dot); a null MX is `name. 300 IN MX 0 .`.

`--query-log FILE` appends a JSON line per question: {"name", "type", "transport"}
("udp" or "tcp"), so a test can tell whether a question was asked and how.
Like the SMTP test servers: `--port 0` picks a free port (the same for UDP and TCP),
`PORT n` on stdout and the ready file once both listen; SIGTERM or the lifetime stops it.
"""

import argparse
import asyncio
import json
import logging
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifecycle  # noqa: E402

from dnslib import DNSLabel, DNSRecord, QTYPE, RCODE, RR, SOA  # noqa: E402

log = logging.getLogger("dns_server")


class Zone:
    def __init__(self, text, negative_ttl, servfail, drop, truncate):
        self.records = list(RR.fromZone(text))
        self.negative_ttl = negative_ttl
        self.servfail = {self.key(n) for n in servfail}
        self.drop = {self.key(n) for n in drop}
        self.truncate = {self.key(n) for n in truncate}
        self.names = set()
        for rr in self.records:
            labels = self.key(rr.rname).split(".")
            for i in range(len(labels)):
                self.names.add(".".join(labels[i:]))

    @staticmethod
    def key(name):
        return str(name).lower().rstrip(".")

    def negative_soa(self, qname):
        top = self.key(qname).split(".")[-1] or "."
        apex = DNSLabel(top + ".")
        soa = SOA(mname=DNSLabel("ns." + top + "."), rname=DNSLabel("hostmaster." + top + "."),
                  times=(1, 3600, 600, 86400, self.negative_ttl))
        return RR(apex, QTYPE.SOA, rdata=soa, ttl=self.negative_ttl)

    def answer(self, request, transport):
        """The reply to `request` as bytes, or None for no reply at all."""
        reply = request.reply()
        if not request.questions:
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        q = request.q
        name = self.key(q.qname)
        if name in self.drop:
            return None
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if name in self.truncate and transport == "udp":
            reply.header.tc = 1
            return reply.pack()
        matches = [rr for rr in self.records
                   if self.key(rr.rname) == name and (q.qtype == QTYPE.ANY or rr.rtype == q.qtype)]
        for rr in matches:
            reply.add_answer(rr)
        if not matches:
            if name not in self.names:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.negative_soa(q.qname))
        return reply.pack()


class Server:
    def __init__(self, zone, query_log):
        self.zone = zone
        self.query_log = query_log

    def handle(self, data, transport):
        try:
            request = DNSRecord.parse(data)
        except Exception as error:  # a malformed packet gets no answer, as in real servers
            log.warning("unparsable %s packet: %s", transport, error)
            return None
        if self.query_log and request.questions:
            q = request.q
            line = json.dumps({"name": self.zone.key(q.qname), "type": QTYPE.get(q.qtype, str(q.qtype)),
                               "transport": transport})
            with open(self.query_log, "a") as f:
                f.write(line + "\n")
        return self.zone.answer(request, transport)


class UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server):
        self.server = server

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = self.server.handle(data, "udp")
        if reply is not None:
            self.transport.sendto(reply, addr)


async def tcp_client(server, reader, writer):
    try:
        while True:
            header = await reader.readexactly(2)
            (length,) = struct.unpack("!H", header)
            data = await reader.readexactly(length)
            reply = server.handle(data, "tcp")
            if reply is None:
                continue
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(args):
    with open(args.zone) as f:
        zone = Zone(f.read(), args.negative_ttl, args.servfail, args.drop, args.truncate)
    server = Server(zone, args.query_log)
    loop = asyncio.get_running_loop()
    # UDP first (it picks the port when --port is 0), then TCP on the same port; a port
    # taken for TCP in between makes us start over on another one.
    for _ in range(20):
        udp, _ = await loop.create_datagram_endpoint(lambda: UDPProtocol(server), local_addr=(args.host, args.port))
        port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(lambda r, w: tcp_client(server, r, w), args.host, port)
            break
        except OSError:
            udp.close()
            if args.port != 0:
                raise
    else:
        raise SystemExit("no port free for both UDP and TCP")
    await lifecycle.serve(tcp, args.lifetime, args.ready_file, log,
                          "%d records, UDP and TCP" % len(zone.records))
    tcp.close()
    udp.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zone", required=True, help="master-file text (dnslib's RR.fromZone)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-file")
    p.add_argument("--lifetime", type=float, default=600)
    p.add_argument("--negative-ttl", type=int, default=300, help="TTL and MINIMUM of the SOA in negative answers")
    p.add_argument("--servfail", action="append", default=[], metavar="NAME")
    p.add_argument("--drop", action="append", default=[], metavar="NAME")
    p.add_argument("--truncate", action="append", default=[], metavar="NAME", help="TC=1 over UDP")
    p.add_argument("--query-log", metavar="FILE")
    p.add_argument("--log", metavar="FILE")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(filename=args.log, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s dns_server[%(process)d] %(message)s")
    asyncio.run(main(args))
