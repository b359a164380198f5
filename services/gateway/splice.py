"""A viewer's upgraded connection spliced to its live connection: bytes copied both ways, never decoded.

Only the live -> client direction is followed frame by frame, and only its headers (2-14 bytes:
server frames are unmasked, so the header alone says how many payload bytes pass untouched),
so that the gateway can put a close frame of its own between two frames. Backpressure is the
transports' own: a side whose write buffer is over the high-water mark pauses reading the other.
One Splice and one LiveSide per viewer, no tasks, no per-message objects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from services.gateway.accounts import Principal
from services.gateway.metrics import LIVE_CLOSES, LIVE_SPLICED
from shared.logging import get_logger

log = get_logger(__name__)
HIGH_WATER = 64 * 1024
CLOSE_GRACE = 2.0  # seconds the client has to answer a close frame before its socket is cut
HANDSHAKE_LIMIT = 16 * 1024
EXPIRED = (4001, "access token expired; refresh and reconnect")
CAUSES = {4001: "expired", 4003: "revoked", 1001: "shutdown"}
_OPEN, _PENDING, _SENT, _ENDED = range(4)


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked close frame; the reason is cut to the 123 bytes a control frame may carry."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    return bytes((0x88, len(payload))) + payload


def _header_size(head: bytes) -> int:
    """How long the frame header starting `head` is (2 when fewer than 2 bytes are known yet)."""
    if len(head) < 2:
        return 2
    short = head[1] & 0x7F
    return 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if head[1] & 0x80 else 0)


def _payload_size(head: bytes) -> int:
    short = head[1] & 0x7F
    if short == 126:
        return int.from_bytes(head[2:4], "big")
    if short == 127:
        return int.from_bytes(head[2:10], "big")
    return short


class Splice(asyncio.Protocol):
    """The client side's protocol; `live` is the transport to the live service."""

    __slots__ = (
        "_cause",
        "_frame",
        "_head",
        "_need",
        "_opened",
        "_registry",
        "_state",
        "_timer",
        "client",
        "live",
        "principal",
    )  # fmt: skip

    def __init__(
        self, registry: Splices, principal: Principal, client: asyncio.Transport, live: asyncio.Transport
    ) -> None:
        self.principal = principal
        self.client = client
        self.live = live
        self._registry = registry
        self._need = 0  # payload bytes of the current live -> client frame still to pass
        self._head = b""  # a frame header split across reads, so far
        self._frame: bytes | None = None  # our close frame, waiting for the current frame to end
        self._cause: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = _OPEN
        self._opened = time.monotonic()

    def __repr__(self) -> str:
        return f"Splice({self.principal.subject!r}, state={self._state}, cause={self._cause!r})"

    def start(self, client_tail: bytes, live_tail: bytes) -> None:
        """Take both transports over; the tails are what each side sent past the handshake."""
        loop = asyncio.get_running_loop()
        for transport in (self.client, self.live):
            transport.set_write_buffer_limits(high=HIGH_WATER)
        self.client.set_protocol(self)
        self._registry.add(self)
        LIVE_SPLICED.inc()
        expires_at = self.principal.expires_at
        if expires_at is not None:
            self._timer = loop.call_at(loop.time() + expires_at - time.time(), self.close, *EXPIRED)
        if client_tail:
            self.live.write(client_tail)
        if live_tail:
            self.from_live(live_tail)
        self.client.resume_reading()
        self.live.resume_reading()

    # client side (asyncio.Protocol)
    def data_received(self, data: bytes) -> None:
        if self._state < _SENT:
            self.live.write(data)
        elif self._state == _SENT:
            self._end("")  # the client's answer to our close frame: done

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("client")

    def pause_writing(self) -> None:
        self.live.pause_reading()

    def resume_writing(self) -> None:
        if self._state < _SENT:
            self.live.resume_reading()

    # live side (called by LiveSide)
    def from_live(self, data: bytes) -> None:
        """Pass live's bytes on; while a close of ours waits, only up to the end of the current frame."""
        if self._state == _OPEN:
            self._scan(data, stop=False)
            self.client.write(data)
        elif self._state == _PENDING:
            cut = self._scan(data, stop=True)
            if cut:
                self.client.write(data[:cut])
            if not self._need and not self._head:
                self._send_close()

    def live_lost(self) -> None:
        if self._state == _OPEN:
            self._end(self._cause or "upstream_dropped")
        elif self._state == _PENDING:
            self._end("", abort=True)  # live stopped inside a frame: there is no clean place left

    def _scan(self, data: bytes, stop: bool) -> int:
        """Follow frame headers through `data`; how many bytes were passed (with `stop`, up to a frame's end)."""
        pos, end = 0, len(data)
        while True:
            if self._need:
                take = min(self._need, end - pos)
                self._need -= take
                pos += take
                if self._need:
                    return pos
            if pos == end or (stop and not self._head):
                return pos
            head = self._head + data[pos : pos + 14] if self._head else data[pos : pos + 14]
            size = _header_size(head)
            if len(head) < size:  # the header goes on in the next read
                self._head = head
                return end
            pos += size - len(self._head)
            self._head = b""
            self._need = _payload_size(head)
            if head[0] & 0x0F == 0x8:
                self._cause = self._cause or "upstream"  # live's own close frame passes as it is

    # closing
    def close(self, code: int, reason: str) -> bool:
        """Send the client a close frame at the next frame boundary, then end both sides; False if already closing."""
        if self._state != _OPEN:
            return False
        self._cancel_timer()
        self._cause = CAUSES.get(code, "gateway")
        self._frame = close_frame(code, reason)
        self._state = _PENDING
        if not self._need and not self._head:
            self._send_close()
        else:  # live may never finish the frame it is in
            self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._end, "", True)
        return True

    def _send_close(self) -> None:
        assert self._frame is not None
        self._cancel_timer()
        self.client.write(self._frame)
        self._frame = None
        self._state = _SENT
        self.live.close()
        self.client.resume_reading()  # to hear the client's answer
        self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._end, "", True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end(self, cause: str, abort: bool = False) -> None:
        if self._state == _ENDED:
            return
        self._state = _ENDED
        self._cancel_timer()
        self._registry.discard(self)
        LIVE_SPLICED.dec()
        cause = self._cause or cause or "gateway"
        LIVE_CLOSES.labels(cause).inc()
        log.info("live_splice_closed", subject=self.principal.subject, cause=cause,
                 seconds=round(time.monotonic() - self._opened, 3))  # fmt: skip
        for transport in (self.client, self.live):
            transport.abort() if abort else transport.close()


class LiveSide(asyncio.Protocol):
    """The connection to the live service: first its handshake answer, then its half of a Splice."""

    __slots__ = ("_buffer", "handshake", "splice", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self.splice: Splice | None = None
        # Resolves to everything read once the head is complete: the head and what came after it.
        self.handshake: asyncio.Future[bytes] | None = loop.create_future()
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return f"LiveSide(spliced={self.splice is not None})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, but have its methods).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.splice is not None:
            self.splice.from_live(data)
            return
        self._buffer += data
        waiter = self.handshake
        if waiter is None or waiter.done():
            return
        if b"\r\n\r\n" in self._buffer or len(self._buffer) > HANDSHAKE_LIMIT:
            assert self.transport is not None
            self.transport.pause_reading()  # until the splice takes over
            waiter.set_result(bytes(self._buffer))

    def attach(self, splice: Splice) -> None:
        """From now on live's bytes go to `splice`; the handshake buffer is let go."""
        self.splice = splice
        self.handshake = None
        self._buffer = bytearray()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.splice is not None:
            self.splice.live_lost()
        elif self.handshake is not None and not self.handshake.done():
            self.handshake.set_exception(ConnectionResetError("the live service closed the connection"))

    def pause_writing(self) -> None:
        if self.splice is not None:
            self.splice.client.pause_reading()

    def resume_writing(self) -> None:
        if self.splice is not None:
            self.splice.client.resume_reading()


class Splices:
    """The gateway's spliced /v1/live connections, so they can be closed by whom they carry."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: set[Splice] = set()

    def __len__(self) -> int:
        return len(self._open)

    def __repr__(self) -> str:
        return f"Splices(open={len(self._open)})"

    def add(self, splice: Splice) -> None:
        self._open.add(splice)

    def discard(self, splice: Splice) -> None:
        self._open.discard(splice)

    def close_where(self, predicate: Callable[[Principal], bool], code: int, reason: str) -> int:
        """Close, with `code` and `reason`, every connection whose principal matches; how many were closed."""
        chosen = [splice for splice in self._open if predicate(splice.principal)]
        return sum(splice.close(code, reason) for splice in chosen)
