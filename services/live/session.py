"""The ops of one WebSocket connection: subscribe, unsubscribe and resume."""

from __future__ import annotations

from redis.exceptions import RedisError

from services.live.client import Client, Drop, Sync
from services.live.hub import Hub
from services.live.messages import control, error, reload
from services.live.metrics import RELOADS
from services.live.protocol import ProtocolError, Resume, Subscribe, Unsubscribe, parse
from services.live.sequencer import LEAGUE, Sequencer
from shared.deps import Unavailable

RELAY_WAIT_SECONDS = 5.0  # a relay that cannot subscribe this long answers `unavailable`


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
        except (Unavailable, RedisError, OSError, TimeoutError):
            self._hub.send(self._client, error("unavailable", "live state is unreachable; retry shortly"))

    def _check_room(self, game_ids: list[str]) -> None:
        following = self._client.games | set(game_ids)
        if len(following) > self._max_games:
            raise ProtocolError("too_many_games", f"a connection may follow at most {self._max_games} games")

    async def _subscribe(self, game_ids: list[str]) -> None:
        self._check_room(game_ids)
        if LEAGUE in game_ids:
            await self._join_league()
            game_ids = [g for g in game_ids if g != LEAGUE]
            if not game_ids:
                return
        new = [g for g in game_ids if g not in self._client.games]
        # Follow before reading the seqs: a message published in between is then either
        # in the stream the Sync reads or queued behind the Sync, never lost.
        self._hub.follow(self._client, new)
        try:
            state = await self._sequencer.state(game_ids)
        except BaseException:
            self._hub.unfollow(self._client, new)
            raise
        unknown = [g for g in game_ids if not state[g][1]]
        if unknown:
            # Still followed: a game that has not started is unknown until its first play, and
            # its messages then come from seq 1. The error tells a mistyped id from a live game.
            listed = ", ".join(unknown)
            message = (f"no game {listed} is known here yet (no live stream, no stored plays); "
                       "its messages follow from seq 1 if it starts")  # fmt: skip
            self._hub.send(self._client, error("unknown_game", message, game_ids=unknown))
        current = {g: state[g][0] for g in game_ids}
        known = [g for g in game_ids if g not in unknown]
        if known:
            self._hub.send(
                self._client, control("subscribed", game_ids=known, seq={g: current[g] for g in known})
            )
        for game_id in game_ids:
            if game_id in new:
                self._hub.send(self._client, Sync(game_id, current[game_id]))
            if game_id in known and current[game_id] == 0:  # stored as history only: in the query API
                self._reload(game_id, 0, "not_live")

    async def _join_league(self) -> None:
        """Follow every game's `score` and `game_state`: first the latest of each game live has
        sequenced within its ttl, then each change as it is published (unsequenced for this channel:
        each message carries its own game's seq)."""
        joined = LEAGUE in self._client.games
        self._hub.follow(self._client, [LEAGUE])
        try:
            # The league channel has no stream to catch up from: the latest messages are read
            # once the relay receives the channel, so a change published meanwhile is queued here
            # (and may come twice: each message carries its game's seq).
            await self._hub.until_relayed(LEAGUE, RELAY_WAIT_SECONDS)
            games, latest = await self._sequencer.league()
        except BaseException:
            if not joined:
                self._hub.unfollow(self._client, [LEAGUE])
            raise
        self._hub.send(self._client, control("subscribed", game_ids=[LEAGUE], games=games))
        for game_id, text in latest:
            if game_id not in self._client.games:  # a game followed itself has them in its stream
                self._hub.send(self._client, text)

    def _unsubscribe(self, game_ids: list[str]) -> None:
        self._hub.unfollow(self._client, game_ids)
        for game_id in game_ids:
            self._hub.send(self._client, Drop(game_id))
        self._hub.send(self._client, control("unsubscribed", game_ids=game_ids))

    async def _resume(self, game_id: str, after_seq: int) -> None:
        """The missed messages in order, or a `reload` naming why they cannot be sent."""
        if game_id == LEAGUE:
            raise ProtocolError("bad_request", 'the league channel "*" has no history: subscribe to it')
        self._check_room([game_id])
        followed = game_id in self._client.games
        self._hub.follow(self._client, [game_id])  # before reading: nothing published meanwhile is lost
        try:
            current, known = (await self._sequencer.state([game_id]))[game_id]
            oldest = await self._sequencer.oldest(game_id) if known and after_seq < current else None
        except BaseException:
            if not followed:
                self._hub.unfollow(self._client, [game_id])
            raise
        if not known:
            # Followed all the same: if the game starts, its messages come from seq 1.
            self._reload(game_id, 0, "unknown_game")
            self._hub.send(self._client, Sync(game_id, 0))
            return
        if current == 0:
            reason = "not_live"
        elif after_seq > current:
            reason = "ahead"
        elif after_seq < current and (oldest is None or oldest > after_seq + 1):
            reason = "trimmed"
        else:
            self._hub.send(
                self._client, control("resumed", game_id=game_id, after_seq=after_seq, seq=current)
            )
            self._hub.send(self._client, Sync(game_id, after_seq))
            return
        # The client reloads the game from the query API; what follows `current` comes live.
        self._reload(game_id, current, reason)
        self._hub.send(self._client, Sync(game_id, current))

    def _reload(self, game_id: str, seq: int, reason: str) -> None:
        RELOADS.labels(reason).inc()
        self._hub.send(self._client, reload(game_id, seq, reason))
