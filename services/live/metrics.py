"""Prometheus metrics of the live service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CLIENTS = Gauge("snapline_live_clients", "Connected WebSocket clients")
MESSAGES_SENT = Counter("snapline_live_messages_sent_total", "Messages written to WebSocket clients")
SOCKET_WRITES = Counter(
    "snapline_live_socket_writes_total",
    "Direct writes to sockets (one carries a run of a game's consecutive messages that arrived together)",
)
DIRECT_WRITES = Counter(
    "snapline_live_direct_writes_total",
    "Of those, messages written straight to an up-to-date socket (one frame built per message, no writer task)",
)
SLOW_DISCONNECTS = Counter(
    "snapline_live_slow_disconnects_total", "Clients disconnected because their queue was full"
)
DEAD_DISCONNECTS = Counter(
    "snapline_live_silent_disconnects_total",
    "Clients dropped because they sent nothing, not even a pong, for a ping interval and a half",
)
QUEUE_DEPTH = Histogram(
    "snapline_live_queue_depth",
    "Outgoing queue depth per client, sampled at each heartbeat",
    buckets=(0, 1, 2, 5, 10, 25, 50, 100, 250, 500),
)
QUEUE_DEPTH_MAX = Gauge("snapline_live_queue_depth_max", "Deepest client queue at the last heartbeat")
SEQUENCED = Counter("snapline_live_events_total", "Play events seen by the sequencer", ["outcome"])
# The live path's latency as an operator sees it: from the Kafka record's timestamp (ingest's clock
# when it published the record, just before its 202) to the end of the sequencing call that
# published its messages on Redis pub/sub. The relay's hop to the sockets comes after it
# (bench/live.py measures the whole path to a viewer); clocks of different hosts skew it.
DELIVERY_SECONDS = Histogram(
    "snapline_live_delivery_seconds",
    "From ingest's publish of a live record (its Kafka timestamp) to live's broadcast of its messages",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
REPLAYED = Counter(
    "snapline_live_replayed_total", "Messages sent from the stream rather than live: resumes and gap fills"
)
RELOADS = Counter(
    "snapline_live_reloads_total",
    "Clients told to reload a game from the query API, by reason (trimmed, ahead, unknown_game, not_live)",
    ["reason"],
)
READ_BATCH = Histogram(
    "snapline_live_redis_read_batch",
    "Redis reads of subscribes, resumes and catch-ups sent in one pipeline",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
READ_BATCHES_IN_FLIGHT = Gauge(
    "snapline_live_redis_read_batches_in_flight", "Read pipelines waiting for Redis"
)
