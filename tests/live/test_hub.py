"""The hub never waits on a slow client: it disconnects it with 1013 and serves the others."""

from __future__ import annotations

import asyncio
from typing import Any

from services.live.client import Sync
from services.live.hub import Hub


class FakeSocket:
    """Stands in for a WebSocketResponse (a transport, not infrastructure); `stall` blocks sends."""

    def __init__(self, stall: bool = False) -> None:
        self.sent: list[str] = []
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = b""
        self._stall = stall

    async def send_str(self, text: str) -> None:
        if self._stall:
            await asyncio.Event().wait()
        self.sent.append(text)

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed, self.close_code, self.close_reason = True, code, message


async def no_history(game_id: str, after_seq: int, up_to: int | None) -> list[tuple[int, str]]:
    return []


async def until(check: Any, seconds: float = 5.0) -> None:
    """Poll `check` (state of the hub's own tasks, which signal nothing) until it holds."""
    async with asyncio.timeout(seconds):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_slow_client_is_disconnected_and_others_get_everything() -> None:
    hub = Hub(no_history, queue_size=2)
    slow_ws, fast_ws = FakeSocket(stall=True), FakeSocket()
    slow = hub.connect(slow_ws, "slow")  # type: ignore[arg-type]
    fast = hub.connect(fast_ws, "fast")  # type: ignore[arg-type]
    for client in (slow, fast):
        hub.follow(client, ["G"])
        hub.send(client, Sync("G", 0))

    for seq in range(1, 7):
        hub.publish("G", seq, f"m{seq}")
        await asyncio.sleep(0)  # as the relay does between messages

    await until(lambda: slow_ws.closed and len(fast_ws.sent) == 6)
    assert slow_ws.close_code == 1013
    assert b"resume" in slow_ws.close_reason
    assert fast_ws.sent == [f"m{seq}" for seq in range(1, 7)]
    await hub.close_all(1001, "going away")


async def test_gap_is_filled_from_history() -> None:
    stored = {seq: f"m{seq}" for seq in range(1, 6)}

    async def history(game_id: str, after_seq: int, up_to: int | None) -> list[tuple[int, str]]:
        last = up_to or max(stored)
        return [(s, stored[s]) for s in range(after_seq + 1, last + 1)]

    hub = Hub(history, queue_size=16)
    ws = FakeSocket()
    client = hub.connect(ws, "peer")  # type: ignore[arg-type]
    hub.follow(client, ["G"])
    hub.send(client, Sync("G", 1))  # the client has seen seq 1; the stream now holds 1..5
    hub.publish("G", 2, "m2")
    hub.publish("G", 5, "m5")  # 3 and 4 were lost on the way (say, a relay reconnect)
    await until(lambda: len(ws.sent) == 4)
    assert ws.sent == ["m2", "m3", "m4", "m5"]
    await hub.close_all(1001, "going away")


async def test_idle_client_holds_no_writer_and_bursts_keep_their_order() -> None:
    hub = Hub(no_history, queue_size=64)
    ws = FakeSocket()
    client = hub.connect(ws, "peer")  # type: ignore[arg-type]
    live_tasks = {t.get_name() for t in asyncio.all_tasks()}
    assert f"live-client-{client.id}" not in live_tasks and client.depth == 0
    for burst in range(3):  # each burst starts a writer that ends once the outbox is empty
        for i in range(10):
            hub.send(client, f"b{burst}-{i}")
        assert client.depth == 10
        await until(lambda: client.depth == 0 and f"live-client-{client.id}" not in
                    {t.get_name() for t in asyncio.all_tasks()})  # fmt: skip
    assert ws.sent == [f"b{b}-{i}" for b in range(3) for i in range(10)]
    await hub.close_all(1001, "going away")


async def test_a_message_offered_while_the_writer_drains_is_sent_after_the_others() -> None:
    hub = Hub(no_history, queue_size=64)
    ws = FakeSocket()
    client = hub.connect(ws, "peer")  # type: ignore[arg-type]
    hub.send(client, "first")
    await asyncio.sleep(0)  # the writer is running (inside send_str) when the next one comes
    hub.send(client, "second")
    hub.send(client, "third")
    await until(lambda: len(ws.sent) == 3)
    assert ws.sent == ["first", "second", "third"]
    await hub.close_all(1001, "going away")


class FakeTransport:
    """Records what a direct write puts on the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_run_of_consecutive_messages_is_one_write_and_a_socket_mid_run_gets_the_rest_once() -> None:
    from services.live.client import Live, text_frame

    hub = Hub(no_history, queue_size=16)
    sockets = {name: (FakeSocket(), FakeTransport()) for name in ("fresh", "ahead")}
    clients = {name: hub.connect(ws, name, transport) for name, (ws, transport) in sockets.items()}  # type: ignore[arg-type]
    for name, after in (("fresh", 0), ("ahead", 1)):  # "ahead" already has seq 1 (from its history)
        hub.follow(clients[name], ["G"])
        hub.send(clients[name], Sync("G", after))
    await until(lambda: all(client.depth == 0 for client in clients.values()))

    run = [Live("G", seq, f"m{seq}", text_frame(f"m{seq}")) for seq in (1, 2, 3)]
    hub.publish_run("G", run)
    await until(lambda: len(sockets["ahead"][0].sent) == 2)

    fresh_ws, fresh_transport = sockets["fresh"]
    assert fresh_transport.writes == [b"".join(item.frame for item in run)] and fresh_ws.sent == []
    assert clients["fresh"].sent == 3
    ahead_ws, ahead_transport = sockets["ahead"]
    assert ahead_ws.sent == ["m2", "m3"] and ahead_transport.writes == []

    hub.publish("G", 4, "m4")  # both are up to date now: a direct write each
    await until(lambda: len(fresh_transport.writes) == 2 and len(ahead_transport.writes) == 1)
    assert fresh_transport.writes[1] == ahead_transport.writes[0] == text_frame("m4")
    await hub.close_all(1001, "going away")
