"""The splice's frame tracking on live -> client bytes: any split of the reads, a close put between frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.gateway.accounts import Principal
from services.gateway.splice import Splice, Splices, close_frame


class FakeTransport(asyncio.Transport):
    """Collects what is written; remembers whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A server frame (unmasked) in the shortest header form for its length."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


FRAMES = [
    frame(b""),
    frame(b"hello"),
    frame(b"a" * 125),
    frame(b"b" * 126),
    frame(b"part one ", fin=False),  # a fragmented message: a close may go between its frames
    frame(b"", opcode=0x9),  # a ping in the middle of it
    frame(b"part two", opcode=0x0),
    frame(b"c" * 70_000, opcode=0x2),
    frame(b"d" * 65_535),
]
STREAM = b"".join(FRAMES)
ENDS = [sum(len(f) for f in FRAMES[: i + 1]) for i in range(len(FRAMES))]


def spliced() -> tuple[Splice, FakeTransport, FakeTransport]:
    client, live = FakeTransport(), FakeTransport()
    splice = Splice(Splices(), Principal("user", "u", "viewer"), client, live)
    splice.start(b"", b"")
    return splice, client, live


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100, 65_536, len(STREAM)])
async def test_every_byte_passes_unchanged_whatever_the_reads(chunk: int) -> None:
    splice, client, _ = spliced()
    for i in range(0, len(STREAM), chunk):
        splice.from_live(STREAM[i : i + chunk])
    assert bytes(client.out) == STREAM
    assert splice.close(1000, "done")  # at a boundary: the close goes out at once
    assert bytes(client.out) == STREAM + close_frame(1000, "done")


@pytest.mark.parametrize("cut", [1, 3, ENDS[2] + 1, ENDS[3] + 2, ENDS[6] + 5, ENDS[7] - 1, ENDS[7] + 3])
async def test_a_close_waits_for_the_end_of_the_frame_in_passage(cut: int) -> None:
    splice, client, live = spliced()
    for i in range(cut):  # one byte a read: headers split everywhere
        splice.from_live(STREAM[i : i + 1])
    assert splice.close(4003, "access revoked; sign in again")
    assert not live.closed
    splice.from_live(STREAM[cut:])
    boundary = next(end for end in ENDS if end >= cut)
    assert bytes(client.out) == STREAM[:boundary] + close_frame(4003, "access revoked; sign in again")
    assert live.closed
    assert not splice.close(4001, "twice")


async def test_the_client_answer_ends_the_connection_and_the_registry_entry() -> None:
    splice, client, live = spliced()
    registry = splice._registry
    assert len(registry) == 1
    assert registry.close_where(lambda p: p.name == "u", 4003, "revoked") == 1
    splice.data_received(b"\x88\x82abcd..")  # the client's close frame (masked)
    assert client.closed and live.closed
    assert len(registry) == 0


def test_a_close_reason_is_cut_to_fit_a_control_frame() -> None:
    assert len(close_frame(4001, "x" * 500)) == 2 + 125
