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


def _event_loop(value: str) -> str:
    value = value.strip().lower()
    if value not in ("uvloop", "asyncio"):
        raise SettingsError(f"EVENT_LOOP must be uvloop or asyncio, not {value!r}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = "snapline"
    play_partitions: int = 6
    # Replicas of each topic python -m shared.topics creates: 1 on a single local broker, 3 on a
    # cluster (min.insync.replicas follows it: see min_insync_replicas).
    replication_factor: int = 1
    # How every client of the project connects (shared/kafkaauth.py): PLAINTEXT locally; SASL_SSL
    # with SCRAM-SHA-512 against the Strimzi cluster of deploy/k8s.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""  # the brokers' CA (PEM); the system's CAs when empty
    ssl_certfile: str = ""  # a client certificate and its key, for mutual TLS
    ssl_keyfile: str = ""

    @property
    def plays_topic(self) -> str:
        return f"{self.topic_prefix}.plays.v1"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.plays.dlq.v1"

    @property
    def min_insync_replicas(self) -> int:
        """Replicas that must have a record before acks=all answers: 2 of 3 (one broker may be
        down and writes go on, and no acknowledged record lives on one disk only); 1 with fewer
        than three, where 2 would stop every write while one broker is down."""
        return 2 if self.replication_factor >= 3 else 1

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol.endswith("SSL")


def _secret(env: Mapping[str, str], name: str) -> str:
    """`name` from the environment, or the contents of the file `<name>_FILE` names (a mounted
    Secret), never both."""
    value, path = env.get(name, ""), env.get(f"{name}_FILE", "")
    if value and path:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    if not path:
        return value
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE names {path!r}, which cannot be read: {exc.strerror}") from None


def _kafka(env: Mapping[str, str]) -> KafkaSettings:
    """The Kafka settings, refused with one sentence when they cannot work together."""
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper() or "PLAINTEXT"
    if protocol not in KAFKA_SECURITY_PROTOCOLS:
        raise SettingsError(
            f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}, not {protocol!r}"
        )
    settings = KafkaSettings(
        bootstrap=env.get("KAFKA_BOOTSTRAP", KafkaSettings.bootstrap),
        topic_prefix=env.get("KAFKA_TOPIC_PREFIX", KafkaSettings.topic_prefix),
        play_partitions=_int(env, "KAFKA_PLAY_PARTITIONS", 6),
        replication_factor=_int(env, "KAFKA_REPLICATION_FACTOR", 1),
        security_protocol=protocol,
        sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "").strip().upper(),
        sasl_username=env.get("KAFKA_SASL_USERNAME", ""),
        sasl_password=_secret(env, "KAFKA_SASL_PASSWORD"),
        ssl_cafile=env.get("KAFKA_SSL_CAFILE", ""),
        ssl_certfile=env.get("KAFKA_SSL_CERTFILE", ""),
        ssl_keyfile=env.get("KAFKA_SSL_KEYFILE", ""),
    )
    _check_kafka(settings)
    return settings


def _check_kafka(k: KafkaSettings) -> None:
    if k.replication_factor < 1:
        raise SettingsError(f"KAFKA_REPLICATION_FACTOR must be 1 or more, got {k.replication_factor}")
    if k.uses_sasl:
        if k.sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise SettingsError(
                f"KAFKA_SECURITY_PROTOCOL={k.security_protocol} needs KAFKA_SASL_MECHANISM, one of "
                f"{', '.join(KAFKA_SASL_MECHANISMS)}; got {k.sasl_mechanism or 'nothing'}"
            )
        if not (k.sasl_username and k.sasl_password):
            raise SettingsError(
                f"KAFKA_SECURITY_PROTOCOL={k.security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
    elif k.sasl_mechanism or k.sasl_username or k.sasl_password:
        raise SettingsError(
            f"KAFKA_SASL_* settings are given but KAFKA_SECURITY_PROTOCOL is {k.security_protocol}: "
            "set it to SASL_SSL (or SASL_PLAINTEXT) to use them, or remove them"
        )
    tls_files = {"KAFKA_SSL_CAFILE": k.ssl_cafile, "KAFKA_SSL_CERTFILE": k.ssl_certfile,
                 "KAFKA_SSL_KEYFILE": k.ssl_keyfile}  # fmt: skip
    given = [name for name, value in tls_files.items() if value]
    if given and not k.uses_tls:
        raise SettingsError(
            f"{', '.join(given)} given but KAFKA_SECURITY_PROTOCOL is {k.security_protocol}: "
            "set it to SSL or SASL_SSL to use them, or remove them"
        )
    if bool(k.ssl_certfile) != bool(k.ssl_keyfile):
        raise SettingsError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither")
    for name in given:
        if not os.path.isfile(tls_files[name]):
            raise SettingsError(f"{name} names {tls_files[name]!r}, which is not a readable file")


TRACE_EXPORTERS = ("none", "console", "otlp")


@dataclass(frozen=True)
class TraceSettings:
    """Where spans go (TRACE_EXPORTER) and the bounds of the queue that holds them until then."""

    exporter: str = "none"  # none: nothing recorded (the context still travels); console; otlp
    # OTLP/HTTP: the collector's traces URL (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
    # OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, as the OpenTelemetry specification reads them).
    endpoint: str = "http://localhost:4318/v1/traces"
    # Spans finished and not yet sent; past it a new span is dropped (counted). 2048 spans are
    # ~2-4 MB, a few seconds of a busy gateway while the collector is slow.
    queue_size: int = 2048
    batch_size: int = 512  # spans per export request
    delay_seconds: float = 5.0  # the longest a finished span waits for a batch to fill

    def __post_init__(self) -> None:
        if self.exporter not in TRACE_EXPORTERS:
            raise SettingsError(
                f"TRACE_EXPORTER must be one of {', '.join(TRACE_EXPORTERS)}, not {self.exporter!r}"
            )
        if not 0 < self.batch_size <= self.queue_size:
            raise SettingsError("TRACE_BATCH_SIZE must be at least 1 and at most TRACE_QUEUE_SIZE")
        if self.delay_seconds <= 0:
            raise SettingsError("TRACE_BATCH_DELAY_SECONDS must be more than 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TraceSettings:
        """The tracing settings of `env` (TRACE_* and the standard OTEL_EXPORTER_OTLP_*ENDPOINT)."""
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or (
            f"{base.rstrip('/')}/v1/traces" if base else cls.endpoint
        )
        return cls(
            exporter=env.get("TRACE_EXPORTER", "none").strip().lower() or "none",
            endpoint=endpoint,
            queue_size=_int(env, "TRACE_QUEUE_SIZE", cls.queue_size),
            batch_size=_int(env, "TRACE_BATCH_SIZE", cls.batch_size),
            delay_seconds=_float(env, "TRACE_BATCH_DELAY_SECONDS", cls.delay_seconds),
        )


@dataclass(frozen=True)
class Settings:
    """Settings of one service process; build with `Settings.from_env(service)`."""

    service: str
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "postgresql://snapline:snapline@127.0.0.1:15432/snapline"
    database_replica_url: str | None = None
    redis_url: str = "redis://127.0.0.1:16379/0"
    # A command holds a connection for a round trip (~0.1-1 ms); 128 covers thousands of requests
    # a second, and one Redis serves commands one at a time anyway, so more only queue there.
    redis_max_connections: int = 128
    redis_pool_timeout: float = 2.0  # seconds a command waits for a free connection
    # Replies the gateway's pipelined gate connection (shared/redisline.py) awaits at once: one
    # per request in its gate; 1024 is far above what the upstream pools let be in flight
    # (64 per upstream) plus sign-ins, so a caller waits for a slot only when Redis has stalled.
    redis_pipeline_max_pending: int = 1024
    database_pool_max: int = 0  # 0: each service's own default
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    log_level: str = "info"
    log_json: bool | None = None
    tracing: TraceSettings = field(default_factory=TraceSettings)
    shutdown_timeout: float = 15.0
    # SO_REUSEPORT: several processes of one service share its port, the kernel spreading
    # connections (a gateway process holds two descriptors per live viewer).
    reuse_port: bool = False
    # The asyncio event loop: "uvloop" (libuv; its transports and call scheduling take about a
    # third of the gateway's own time per proxied request off) or "asyncio" (the standard loop).
    event_loop: str = "uvloop"
    # Every GC_FREEZE_SECONDS a young collector pass, then the survivors leave later passes
    # (gc.freeze; 0 turns it off); they are returned every GC_THAW_SECONDS (shared/http.py).
    gc_freeze_seconds: float = 1.0
    gc_thaw_seconds: float = 600.0
    max_body_bytes: int = 64 * 1024 * 1024
    # HTTP input limits (parser limits answer in the JSON error format; see shared/server.py).
    # 8 KiB request line: the longest real URL, /v1/plays with a few dozen game ids, is under 2 KiB;
    # it is what Apache and nginx allow by default. 16 KiB per header line: a bearer token and a
    # browser's cookies fit with room to spare. 100 headers: browsers and proxies send under 30.
    max_line_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    # POST /v1/events: a feed posts a few plays at a time, `snapline import` 4 games a request.
    max_events_body_bytes: int = 8 * 1024 * 1024
    # gateway
    # gateway identity: Ed25519 signing keys in a file of the installation's own (make up writes
    # .local/secrets/jwt-keys.json); no default, so nothing in the repository signs by default.
    jwt_keys_file: str = ""
    jwt_issuer: str = "snapline"
    jwt_audience: str = "snapline-api"
    development: bool = False  # SNAPLINE_DEVELOPMENT: allows the key set that ships in deploy/dev/
    access_token_ttl: int = 900
    refresh_token_ttl: int = 14 * 24 * 3600
    password_hash_concurrency: int = 2  # argon2id hashes at once: 64 MiB and one core each
    # gateway limits, per minute (GCRA: the whole budget may be spent at once, then it refills)
    rate_limit_per_minute: int = 6000  # per user or API key
    rate_limit_ip_per_minute: int = 12000  # per client address, every request (offices share one)
    auth_failures_per_minute: int = 30  # failed authentications per client address
    signin_ip_per_minute: int = 20  # sign-in attempts per client address
    signin_account_ip_per_minute: int = 5  # per username from one address
    signin_account_per_minute: int = 50  # per username from all addresses (> signin_ip: no lockout by one)
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed
    # Seconds the rate-limit round trip may take (including a wait for a pooled connection)
    # before the request goes on unlimited: a slow Redis must not slow every request down.
    rate_limit_redis_budget: float = 0.5
    # Proxied reads of callers with ample budget go upstream while their gate runs (auth.check).
    speculative_reads: bool = True
    upstreams: Mapping[str, str] = field(default_factory=dict)
    # The audit log (services/gateway/audit.py): records waiting for the background writer, and
    # how long a request may wait for room in a full queue before its record is dropped (counted
    # and logged whole, so the log still holds it).
    audit_queue_size: int = 10000
    audit_batch: int = 500
    audit_enqueue_timeout: float = 1.0
    # gateway upstream capacity
    # REST connections per upstream service (each has its own pool; WebSockets use none of them).
    # 64: one upstream process answers a few thousand requests/s at 5-20 ms each, which Little's
    # law puts at 10-60 in flight; more only queues inside the upstream, where no timeout or 503
    # can reach it, while a caller waiting here gets a 503 + Retry-After after the acquire timeout.
    upstream_connections: int = 64
    upstream_acquire_timeout: float = 2.0  # seconds a request may wait for a pooled connection
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 120.0  # between reads, never a whole long stream
    # The live service's side of the same sockets: permessage-deflate costs ~100 KB per viewer.
    live_ws_compress: bool = False
    # Messages kept per game for resumes (a game is ~200 plays and their corrections); a resume
    # from before the oldest kept is answered `reload`. ~700 bytes each in Redis.
    live_history_length: int = 5000
    # ...and for this long once the game is final (a late viewer catches up from the stream;
    # after it, `reload not_live` sends the viewer to the query API, which holds every play).
    live_final_history_seconds: int = 24 * 3600
    # Games whose plays a live instance keeps to value the next snap (services/live/values.py):
    # a Sunday has up to 16 games at once and replays add a few; a game is ~180 plays of ~0.4 KB,
    # so 256 games are ~18 MB at most. The least recently played goes first; a final game at once.
    live_value_games: int = 256
    # query and analytics: answers kept in process (shared/answers.py), valid while the generations
    # of what they read are unchanged. 4,000 entries of the usual 2-60 KB are 10-100 MB at most, and
    # the byte bound holds whatever they weigh; an answer over the per-entry bound is not kept.
    answer_cache_entries: int = 4000
    answer_cache_bytes: int = 96 * 1024 * 1024
    answer_cache_entry_bytes: int = 2 * 1024 * 1024
    # ingest: seconds a game's dedupe marks are kept after its last event. 8 days: a feed retries
    # within minutes, and the league's stat corrections come within the week after a game (a
    # correction is a new revision, which needs no mark); past the window a retry is published
    # again and the consumers' revision guard applies it once.
    ingest_dedupe_window: float = 8 * 24 * 3600.0
    # EP/WP: the fitted model's artifact (`snapline model fit` writes it) and how often services
    # look for a new one; without it everything is served but the values (/readyz says so).
    model_path: str = ".local/models/epwp.json"
    model_reload_seconds: float = 10.0
    # analytics: defender snaps held in process for the pressure ranking (services/analytics/index.py),
    # ~21 bytes each. The corpus (631 k plays) is about 1.6 M, 5 M plays about 13 M: 20 M rows are
    # ~420 MB at most. Past the bound the ranking is answered by SQL (logged, and the gauge says so);
    # 0 turns the index off.
    analytics_index_rows: int = 20_000_000
    # Season lifecycle (`snapline archive`/`restore`, shared/lifecycle.py): where archived seasons go
    # (a directory, or s3://bucket/prefix), how many of the newest seasons stay active (the design
    # overview's "current + 2 previous"), and the rows per Parquet row group and per COPY batch,
    # which bound the archive's memory (a row group of plays is ~1 KB a row).
    archive_url: str = ".local/archive"
    archive_keep_seasons: int = 3
    archive_batch_rows: int = 20_000
    # S3-compatible storage: the endpoint (MinIO, Ceph...; empty: AWS) and region. Credentials are
    # never settings: pyarrow's S3 client reads AWS's own chain (AWS_ACCESS_KEY_ID, profiles, roles).
    archive_s3_endpoint: str = ""
    archive_s3_region: str = ""
    # A read of an archived season restores the reading service's part of it in the background
    # (503 season_restoring until it is back) instead of answering 410 (shared/ondemand.py).
    archive_restore_on_demand: bool = False
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
        if env.get("JWT_SECRET"):
            raise SettingsError(
                "JWT_SECRET is no longer used: access tokens are signed with Ed25519 keys from JWT_KEYS_FILE"
            )
        log_json = env.get("LOG_JSON")
        return cls(
            service=service,
            host=env.get(f"{up}_HOST", env.get("SERVICE_HOST", "127.0.0.1")),
            port=_int(env, f"{up}_PORT", DEFAULT_PORTS.get(service, 8080)),
            database_url=env.get("DATABASE_URL", cls.database_url),
            database_replica_url=env.get("DATABASE_REPLICA_URL") or None,
            redis_url=env.get("REDIS_URL", cls.redis_url),
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 128),
            redis_pool_timeout=_float(env, "REDIS_POOL_TIMEOUT", 2.0),
            redis_pipeline_max_pending=_int(env, "REDIS_PIPELINE_MAX_PENDING", 1024),
            database_pool_max=_int(env, "DATABASE_POOL_MAX", 0),
            kafka=_kafka(env),
            log_level=env.get("LOG_LEVEL", "info").lower(),
            log_json=None if log_json is None else log_json.lower() in ("1", "true", "yes"),
            tracing=TraceSettings.from_env(env),
            shutdown_timeout=_float(env, "SHUTDOWN_TIMEOUT", 15.0),
            reuse_port=_bool(env, "REUSE_PORT"),
            event_loop=_event_loop(env.get("EVENT_LOOP", "uvloop")),
            gc_freeze_seconds=_float(env, "GC_FREEZE_SECONDS", 1.0),
            gc_thaw_seconds=_float(env, "GC_THAW_SECONDS", 600.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024 * 1024),
            max_line_bytes=_int(env, "MAX_LINE_BYTES", 8 * 1024),
            max_header_bytes=_int(env, "MAX_HEADER_BYTES", 16 * 1024),
            max_headers=_int(env, "MAX_HEADERS", 100),
            max_events_body_bytes=_int(env, "MAX_EVENTS_BODY_BYTES", 8 * 1024 * 1024),
            jwt_keys_file=env.get("JWT_KEYS_FILE", ""),
            jwt_issuer=env.get("JWT_ISSUER", cls.jwt_issuer),
            jwt_audience=env.get("JWT_AUDIENCE", cls.jwt_audience),
            development=_bool(env, "SNAPLINE_DEVELOPMENT"),
            access_token_ttl=_int(env, "ACCESS_TOKEN_TTL", 900),
            refresh_token_ttl=_int(env, "REFRESH_TOKEN_TTL", 14 * 24 * 3600),
            password_hash_concurrency=_int(env, "PASSWORD_HASH_CONCURRENCY", 2),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 6000),
            rate_limit_ip_per_minute=_int(env, "RATE_LIMIT_IP_PER_MINUTE", 12000),
            auth_failures_per_minute=_int(env, "AUTH_FAILURES_PER_MINUTE", 30),
            signin_ip_per_minute=_int(env, "SIGNIN_IP_PER_MINUTE", 20),
            signin_account_ip_per_minute=_int(env, "SIGNIN_ACCOUNT_IP_PER_MINUTE", 5),
            signin_account_per_minute=_int(env, "SIGNIN_ACCOUNT_PER_MINUTE", 50),
            rate_limit_redis_budget=_float(env, "RATE_LIMIT_REDIS_BUDGET", 0.5),
            trusted_proxies=tuple(p.strip() for p in env.get("TRUSTED_PROXIES", "").split(",") if p.strip()),
            speculative_reads=env.get("GATEWAY_SPECULATIVE_READS", "true").lower() in ("1", "true", "yes"),
            upstreams=upstreams,
            audit_queue_size=_int(env, "AUDIT_QUEUE_SIZE", 10000),
            audit_batch=_int(env, "AUDIT_BATCH", 500),
            audit_enqueue_timeout=_float(env, "AUDIT_ENQUEUE_TIMEOUT", 1.0),
            # gateway upstream capacity
            upstream_connections=_int(env, "GATEWAY_UPSTREAM_CONNECTIONS", 64),
            upstream_acquire_timeout=_float(env, "GATEWAY_UPSTREAM_ACQUIRE_TIMEOUT", 2.0),
            upstream_connect_timeout=_float(env, "GATEWAY_UPSTREAM_CONNECT_TIMEOUT", 5.0),
            upstream_read_timeout=_float(env, "GATEWAY_UPSTREAM_READ_TIMEOUT", 120.0),
            live_ws_compress=env.get("LIVE_WS_COMPRESS", "").lower() in ("1", "true", "yes"),
            live_history_length=_int(env, "LIVE_HISTORY_LENGTH", 5000),
            live_final_history_seconds=_int(env, "LIVE_FINAL_HISTORY_SECONDS", 24 * 3600),
            live_value_games=_int(env, "LIVE_VALUE_GAMES", 256),
            answer_cache_entries=_int(env, "ANSWER_CACHE_ENTRIES", 4000),
            answer_cache_bytes=_int(env, "ANSWER_CACHE_BYTES", 96 * 1024 * 1024),
            answer_cache_entry_bytes=_int(env, "ANSWER_CACHE_ENTRY_BYTES", 2 * 1024 * 1024),
            ingest_dedupe_window=_float(env, "INGEST_DEDUPE_WINDOW", 8 * 24 * 3600.0),
            model_path=env.get("MODEL_PATH", cls.model_path),
            model_reload_seconds=_float(env, "MODEL_RELOAD_SECONDS", 10.0),
            analytics_index_rows=_int(env, "ANALYTICS_INDEX_ROWS", 20_000_000),
            archive_url=env.get("ARCHIVE_URL", cls.archive_url),
            archive_keep_seasons=_int(env, "ARCHIVE_KEEP_SEASONS", 3),
            archive_batch_rows=_int(env, "ARCHIVE_BATCH_ROWS", 20_000),
            archive_s3_endpoint=env.get("ARCHIVE_S3_ENDPOINT", ""),
            archive_s3_region=env.get("ARCHIVE_S3_REGION", ""),
            archive_restore_on_demand=_bool(env, "ARCHIVE_RESTORE_ON_DEMAND"),
            consumer_group=env.get(f"{up}_CONSUMER_GROUP", f"snapline-{service}"),
            consumer_batch=_int(env, "CONSUMER_BATCH", 500),
        )

    def __repr__(self) -> str:
        return f"Settings(service={self.service!r}, port={self.port}, kafka={self.kafka.bootstrap!r})"
