"""A minimal WebSocket client protocol for the benchmarks' viewer processes: the upgrade (with an
API key), frame parsing and pongs for the server's pings, and nothing per message beyond what a
subclass does in `on_upgrade` and `on_frame`."""

from __future__ import annotations

import asyncio
import base64
import os


class RawViewer(asyncio.Protocol):
    """Upgrade on /v1/live; `ready` is resolved True once upgraded (False when refused or closed)."""

    def __init__(self, key: str, ready: asyncio.Future[bool]) -> None:
        self._key = key
        self._buffer = bytearray()
        self._upgraded = False
        self.ready = ready
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(  # type: ignore[union-attr]
            f"GET /v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {self._key}\r\n\r\n".encode()
        )

    def on_upgrade(self, accepted: bool) -> None:
        """The upgrade's answer arrived (101 or not)."""
        if not self.ready.done():
            self.ready.set_result(accepted)

    def on_frame(self, opcode: int, payload: bytes) -> None:
        """A whole frame from the server other than a ping (pings are answered here)."""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            head, sep, rest = bytes(self._buffer).partition(b"\r\n\r\n")
            if not sep:
                return
            self._upgraded = True
            self._buffer = bytearray(rest)
            self.on_upgrade(head.startswith(b"HTTP/1.1 101"))
        buf = self._buffer
        while len(buf) >= 2:
            short = buf[1] & 0x7F
            size = 2 + (2 if short == 126 else 8 if short == 127 else 0)
            if len(buf) < size:
                return
            length = int.from_bytes(buf[2:size], "big") if size > 2 else short
            if len(buf) < size + length:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[size : size + length])
            del buf[: size + length]
            if opcode == 0x9 and self.transport is not None:  # ping: a masked pong, zero mask
                self.transport.write(bytes((0x8A, 0x80 | length)) + b"\0\0\0\0" + payload)
            else:
                self.on_frame(opcode, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)


def client_text_frame(text: str) -> bytes:
    """A masked text frame with a zero mask (the payload goes as is)."""
    payload = text.encode()
    n = len(payload)
    size = bytes((0x80 | n,)) if n < 126 else bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    return b"\x81" + size + b"\0\0\0\0" + payload
