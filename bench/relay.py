"""The floor of any extra hop: a TCP relay that copies bytes between a client and an upstream.

No HTTP parsing, no authentication, nothing per request: each accepted connection gets its own
connection to the upstream and the bytes are written through as they arrive (asyncio protocols,
the cheapest path Python has). bench/gateway.py runs it beside the gateway so the latency a hop
costs on this machine (two more socket wake-ups on loopback) is measured in the same run.

    python bench/relay.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys


class _Pipe(asyncio.Protocol):
    """One direction's receiver: writes what it gets to `peer`."""

    def __init__(self) -> None:
        self.peer: asyncio.Transport | None = None
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.pending += data  # the upstream connection is still being made
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


class _Client(_Pipe):
    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        upstream_transport, upstream = await loop.create_connection(_Pipe, "127.0.0.1", self.upstream_port)
        assert isinstance(upstream_transport, asyncio.Transport) and self.transport is not None
        upstream.peer = self.transport
        self.peer = upstream_transport
        if self.pending:
            upstream_transport.write(bytes(self.pending))
            self.pending.clear()


async def main(listen: int, upstream: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream), "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
