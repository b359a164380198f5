"""A throw-away copy of the platform for benchmarks and the test suite's stack tests: five service
processes on their own ports, their own database, topics, consumer groups and Redis key prefix;
removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from services.gateway import keyset
from shared.config import KafkaSettings, Settings
from shared.kafka import delete_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"ingest": 18081, "query": 18082, "analytics": 18083, "live": 18084, "gateway": 18080}
# Benchmarks measure the path, not the limits: a load generator is one caller on one address.
BENCH_ENV = {"RATE_LIMIT_PER_MINUTE": "100000000", "RATE_LIMIT_IP_PER_MINUTE": "100000000"}
# The gateway holds two descriptors per WebSocket viewer (bench/gateway.py connects 10,000).
OPEN_FILES = 65536


_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In each service process, before it runs: it ends when the process that started it dies
    (a killed benchmark or test run leaves no service behind), and it may open as many
    descriptors as allowed (as root, past the hard limit)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES if os.geteuid() == 0 else max(soft, hard)
    with contextlib.suppress(ValueError, OSError):  # not allowed: keep what the parent had
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))


def _cpu(pid: int, tick: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / tick


def _tree_cpu(pid: int, tick: int) -> float:
    """CPU of a process, its running children (PostgreSQL's backends) and the children it reaped.

    Reaped children are autovacuum workers and Redis's AOF rewrites: seconds of CPU per run
    that the live processes alone do not show.
    """
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / tick
    return _cpu(pid, tick) + sum(_cpu(c, tick) for c in children) + reaped


class BenchStack:
    """`async with BenchStack(settings) as stack:` runs the services until the block ends."""

    def __init__(
        self,
        settings: Settings,
        log_level: str = "warning",
        gateways: int = 1,
        *,
        name: str = "bench",
        prefix: str | None = None,
        ports: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.gateways = gateways
        self.name = name  # names its logs (.local/logs/<name>-<service>.log) and key file
        self.ports = dict(ports or SERVICES)
        self.extra_env = BENCH_ENV if env is None else env
        self.prefix = prefix or f"{name}{int(time.time())}"
        base, _, _ = settings.database_url.rpartition("/")
        self.admin_url = settings.database_url
        self.database = f"snapline_{self.prefix}"
        self.database_url = f"{base}/{self.database}"
        self.kafka = KafkaSettings(settings.kafka.bootstrap, self.prefix, settings.kafka.play_partitions)
        self.redis_url = settings.redis_url
        self.gateway_url = f"http://127.0.0.1:{self.ports['gateway']}"
        self.log_level = log_level
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __repr__(self) -> str:
        return f"BenchStack({self.prefix!r}, running={sorted(self.procs)})"

    def jwt_keys_file(self) -> Path:
        """The benchmark gateway's own signing keys, made on first use under .local/."""
        path = ROOT / ".local" / "secrets" / f"{self.name}-jwt-keys.json"
        if not path.exists():
            keyset.write(path, [keyset.new_key()])
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ, DATABASE_URL=self.database_url, KAFKA_TOPIC_PREFIX=self.prefix,
                   KAFKA_BOOTSTRAP=self.kafka.bootstrap, REDIS_URL=self.redis_url, LOG_LEVEL=self.log_level,
                   LOG_JSON="true", JWT_KEYS_FILE=str(self.jwt_keys_file()),
                   REUSE_PORT="true" if self.gateways > 1 else "false", **self.extra_env)  # fmt: skip
        for name, port in self.ports.items():
            env[f"{name.upper()}_PORT"] = str(port)
            env[f"{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
            env[f"{name.upper()}_CONSUMER_GROUP"] = f"{self.prefix}-{name}"
        return env

    async def __aenter__(self) -> BenchStack:
        conn = await asyncpg.connect(self.admin_url)
        await conn.execute(f"CREATE DATABASE {self.database}")
        await conn.close()
        await ensure_topics(self.kafka)
        for name in self.ports:
            self._spawn(name, "services." + name, "wb")
        # More gateway processes on the same port (SO_REUSEPORT): one public entry point.
        for i in range(2, self.gateways + 1):
            self._spawn(f"gateway-{i}", "services.gateway", "wb")
        await self._wait_ready()
        return self

    def _spawn(self, name: str, module: str, mode: str) -> None:
        logs = ROOT / ".local" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{self.name}-{name}.log", mode) as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=self.env(),
                                                stdout=log, stderr=log, preexec_fn=_child_setup)  # fmt: skip

    def kill(self, name: str) -> None:
        """SIGKILL service `name` (as a crash or an OOM kill would) and reap it."""
        self.procs[name].kill()
        self.procs[name].wait()

    async def restart(self, name: str) -> None:
        """Start service `name` again, as `make up` starts what is not running; wait until ready."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{self.name} {name} is still running")
        self._spawn(name, "services." + name.split("-")[0], "ab")
        await self._wait_ready(only=name)

    async def _wait_ready(self, timeout: float = 120, only: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            for name, port in self.ports.items():
                if only is not None and name != only:
                    continue
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if self.procs[name].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{self.name} {name} did not become ready; see .local/logs/{self.name}-{name}.log"
                        )
                    await asyncio.sleep(0.3)

    def profile(self, out: Path) -> list[subprocess.Popen[bytes]]:
        """Start py-spy on every service process, writing collapsed stacks to `out/<name>.txt`."""
        out.mkdir(parents=True, exist_ok=True)

        spy = Path(sys.executable).with_name("py-spy")
        if not spy.is_file():
            raise SystemExit("--profile needs py-spy: pip install py-spy (it is in the dev extras)")

        def command(name: str, pid: int) -> list[str]:
            return [str(spy), "record", "--nonblocking", "--format", "raw", "--rate", "50",
                    "--pid", str(pid), "--output", str(out / f"{name}.txt")]  # fmt: skip

        return [
            subprocess.Popen(command(name, proc.pid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, proc in self.procs.items()
        ]

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each service process and of this process (the CLI side)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {name: _cpu(proc.pid, tick) for name, proc in self.procs.items()}
        run = ROOT / ".local" / "run"
        for name in ("kafka", "redis", "postgres"):
            pid_file = run / f"{name}.pid"
            if pid_file.is_file():
                out[f"{name} (all processes)"] = _tree_cpu(int(pid_file.read_text().split()[0]), tick)
        t = os.times()
        out["cli (parse + post)"] = t.user + t.system + t.children_user + t.children_system
        return out

    async def __aexit__(self, *exc: object | TracebackType | None) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await delete_topics(self.kafka)
        redis = aioredis.Redis.from_url(self.redis_url)
        keys = [k async for k in redis.scan_iter(match=f"{self.prefix}:*", count=10000)]
        for i in range(0, len(keys), 5000):
            await redis.delete(*keys[i : i + 5000])
        await redis.aclose()
        conn = await asyncpg.connect(self.admin_url)
        await conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        await conn.close()
