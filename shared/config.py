"""Typed settings read once from the environment; nothing else in the project reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_PORTS = {"gateway": 8080, "ingest": 8081, "query": 8082, "analytics": 8083, "live": 8084}


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = "snapline"
    play_partitions: int = 6

    @property
    def plays_topic(self) -> str:
        return f"{self.topic_prefix}.plays.v1"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.plays.dlq.v1"


@dataclass(frozen=True)
class Settings:
    """Settings of one service process; build with `Settings.from_env(service)`."""

    service: str
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "postgresql://snapline:snapline@127.0.0.1:15432/snapline"
    database_replica_url: str | None = None
    redis_url: str = "redis://127.0.0.1:16379/0"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    log_level: str = "info"
    log_json: bool | None = None
    trace_exporter: str = "none"
    shutdown_timeout: float = 15.0
    max_body_bytes: int = 64 * 1024 * 1024
    # gateway
    jwt_secret: str = "dev-only-change-me-snapline-jwt-secret"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 14 * 24 * 3600
    rate_limit_per_minute: int = 6000
    upstreams: Mapping[str, str] = field(default_factory=dict)
    # consumers
    consumer_group: str = ""
    consumer_batch: int = 500

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings of `service` from the environment (or the mapping given)."""
        env = os.environ if env is None else env
        up = service.upper()
        upstreams = {
            name: env.get(f"{name.upper()}_URL", f"http://127.0.0.1:{port}")
            for name, port in DEFAULT_PORTS.items()
            if name != "gateway"
        }
        log_json = env.get("LOG_JSON")
        return cls(
            service=service,
            host=env.get(f"{up}_HOST", env.get("SERVICE_HOST", "127.0.0.1")),
            port=_int(env, f"{up}_PORT", DEFAULT_PORTS.get(service, 8080)),
            database_url=env.get("DATABASE_URL", cls.database_url),
            database_replica_url=env.get("DATABASE_REPLICA_URL") or None,
            redis_url=env.get("REDIS_URL", cls.redis_url),
            kafka=KafkaSettings(
                bootstrap=env.get("KAFKA_BOOTSTRAP", KafkaSettings.bootstrap),
                topic_prefix=env.get("KAFKA_TOPIC_PREFIX", KafkaSettings.topic_prefix),
                play_partitions=_int(env, "KAFKA_PLAY_PARTITIONS", 6),
            ),
            log_level=env.get("LOG_LEVEL", "info").lower(),
            log_json=None if log_json is None else log_json.lower() in ("1", "true", "yes"),
            trace_exporter=env.get("TRACE_EXPORTER", "none"),
            shutdown_timeout=_float(env, "SHUTDOWN_TIMEOUT", 15.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024 * 1024),
            jwt_secret=env.get("JWT_SECRET", cls.jwt_secret),
            access_token_ttl=_int(env, "ACCESS_TOKEN_TTL", 900),
            refresh_token_ttl=_int(env, "REFRESH_TOKEN_TTL", 14 * 24 * 3600),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 6000),
            upstreams=upstreams,
            consumer_group=env.get(f"{up}_CONSUMER_GROUP", f"snapline-{service}"),
            consumer_batch=_int(env, "CONSUMER_BATCH", 500),
        )

    def __repr__(self) -> str:
        return f"Settings(service={self.service!r}, port={self.port}, kafka={self.kafka.bootstrap!r})"
