"""The ops of one WebSocket connection: subscribe, unsubscribe and resume."""

from __future__ import annotations

from redis.exceptions import RedisError

from services.live.client import Client, Drop, Sync
from services.live.hub import Hub
from services.live.messages import control, error
from services.live.protocol import ProtocolError, Resume, Subscribe, Unsubscribe, parse
from services.live.sequencer import Sequencer
from shared.deps import Unavailable


class Session:
    """Applies a client's ops to the hub; every answer goes through the client's queue, in order."""

    def __init__(self, client: Client, hub: Hub, sequencer: Sequencer, max_games: int) -> None:
        self._client = client
        self._hub = hub
        self._sequencer = sequencer
        self._max_games = max_games

    def __repr__(self) -> str:
        return f"Session({self._client!r})"

    async def handle(self, raw: str | bytes) -> None:
        """Act on one client message; problems are answered, never raised."""
        try:
            match parse(raw):
                case Subscribe(game_ids):
                    await self._subscribe(list(dict.fromkeys(game_ids)))
                case Unsubscribe(game_ids):
                    self._unsubscribe(list(dict.fromkeys(game_ids)))
                case Resume(game_id, after_seq):
                    await self._resume(game_id, after_seq)
        except ProtocolError as exc:
            self._hub.send(self._client, error(exc.code, exc.message))
        except (Unavailable, RedisError, OSError):
            self._hub.send(self._client, error("unavailable", "live state is unreachable; retry shortly"))

    def _check_room(self, game_ids: list[str]) -> None:
        following = self._client.games | set(game_ids)
        if len(following) > self._max_games:
            raise ProtocolError("too_many_games", f"a connection may follow at most {self._max_games} games")

    async def _subscribe(self, game_ids: list[str]) -> None:
        self._check_room(game_ids)
        new = [g for g in game_ids if g not in self._client.games]
        # Follow before reading the seqs: a message published in between is then either
        # in the stream the Sync reads or queued behind the Sync, never lost.
        self._hub.follow(self._client, new)
        try:
            current = await self._sequencer.current(game_ids)
        except BaseException:
            self._hub.unfollow(self._client, new)
            raise
        self._hub.send(self._client, control("subscribed", game_ids=game_ids, seq=current))
        for game_id in new:
            self._hub.send(self._client, Sync(game_id, current[game_id]))

    def _unsubscribe(self, game_ids: list[str]) -> None:
        self._hub.unfollow(self._client, game_ids)
        for game_id in game_ids:
            self._hub.send(self._client, Drop(game_id))
        self._hub.send(self._client, control("unsubscribed", game_ids=game_ids))

    async def _resume(self, game_id: str, after_seq: int) -> None:
        self._check_room([game_id])
        # The current seq lets a client whose after_seq is ahead of it see its state is stale.
        current = await self._sequencer.current([game_id])
        self._hub.follow(self._client, [game_id])
        self._hub.send(
            self._client, control("resumed", game_id=game_id, after_seq=after_seq, seq=current[game_id])
        )
        self._hub.send(self._client, Sync(game_id, after_seq))
