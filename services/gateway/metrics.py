"""Prometheus metrics of the gateway's own capacity: REST pools per upstream and spliced sockets."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POOL_IN_USE = Gauge(
    "snapline_gateway_upstream_connections_in_use", "REST requests holding a pooled connection", ["upstream"]
)
POOL_OPEN = Gauge(
    "snapline_gateway_upstream_connections_open", "REST connections open to the upstream (in use or idle)",
    ["upstream"],
)  # fmt: skip
POOL_CONNECTS = Counter(
    "snapline_gateway_upstream_connects_total", "REST connections opened to the upstream", ["upstream"]
)
POOL_LIMIT = Gauge("snapline_gateway_upstream_connections_limit", "Size of the REST pool", ["upstream"])
POOL_WAITERS = Gauge(
    "snapline_gateway_upstream_waiters", "REST requests waiting for a pooled connection", ["upstream"]
)
POOL_ACQUIRE = Histogram(
    "snapline_gateway_upstream_acquire_seconds",
    "Time a REST request waited for a pooled connection",
    ["upstream"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POOL_REJECTED = Counter(
    "snapline_gateway_upstream_busy_total",
    "REST requests answered 503 because no pooled connection freed up in time",
    ["upstream"],
)
LIVE_SPLICED = Gauge("snapline_gateway_live_spliced", "/v1/live connections spliced to the live service")
LIVE_CLOSES = Counter(
    "snapline_gateway_live_closes_total",
    "Spliced /v1/live connections ended, by cause (client, upstream, expired, revoked, shutdown, ...)",
    ["cause"],
)
