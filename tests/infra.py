"""Throw-away Redis, PostgreSQL and Kafka instances that a test may stop, kill and restart.

The shared set-up's engines (deploy/local/infra.sh) serve every engineer and the dev stack; a
test that takes a dependency down needs one of its own. Each class here runs its engine on free
ports with its data in a temp directory under `.local/`, records the engine's pid, and stops only
that pid (never a process found by name); leaving the `async with` removes the process and data:

    async with PrivateRedis() as redis:
        settings = make_settings("ingest", REDIS_URL=redis.url)
        await redis.kill()      # SIGKILL, as an OOM killer or a node loss would
        await redis.start()     # the same port and data directory
        await redis.stop()      # a clean shutdown (SIGTERM / PostgreSQL's fast shutdown)

The binaries are the set-up's: `redis-server` from PATH, PostgreSQL from PG_BIN (run as the
`postgres` user when this is root, which initdb refuses), Kafka from `.local/kafka/lib`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
LOCAL = Path(os.environ.get("SNAPLINE_LOCAL", ROOT / ".local"))
KAFKA_LIB = LOCAL / "kafka" / "lib"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    """The direct child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def sweep_orphans() -> list[Path]:
    """Remove the engines and data of test runs that died without cleaning up (a killed pytest).

    Each instance's directory records the test process that made it (`owner.pid`) and the engine's
    pid (`engine.pid`); an instance whose owner is gone has its recorded engine (and that engine's
    children) SIGKILLed, if that pid still runs from this directory, and its directory removed.
    """
    swept = []
    for directory in LOCAL.glob("test-*-*"):
        owner, engine = directory / "owner.pid", directory / "engine.pid"
        with contextlib.suppress(OSError, ValueError):
            if pid_alive(int(owner.read_text())):
                continue
        with contextlib.suppress(OSError, ValueError):
            pid = int(engine.read_text())
            # The pid may have been reused since: only a process started from this directory (named
            # in its arguments, or its working directory: redis-server rewrites its title) is ours.
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if str(directory) in argv or os.readlink(f"/proc/{pid}/cwd") == str(directory):
                for victim in (pid, *children(pid)):
                    os.kill(victim, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
        swept.append(directory)
    return swept


class PrivateProcess:
    """One engine process of a test's own: started, stopped or killed by its recorded pid."""

    name = "engine"

    def __init__(self) -> None:
        LOCAL.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"test-{self.name}-", dir=LOCAL))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        self.port = free_port()
        self.pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}(port={self.port}, {state}, dir={str(self.dir)!r})"

    @property
    def running(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the engine (again, on the same port and data) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running; stop or kill it first")
        await self._launch()
        (self.dir / "engine.pid").write_text(str(self.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while not await self._ready():
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited while starting; see {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not answer within {START_TIMEOUT} s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL the engine (and the processes it forked), as a crash would; wait until gone."""
        await self._signal(signal.SIGKILL, with_children=True)

    async def stop(self) -> None:
        """Shut the engine down cleanly; SIGKILL if it has not exited within STOP_TIMEOUT."""
        try:
            await self._signal(self.stop_signal, with_children=False, timeout=STOP_TIMEOUT)
        except TimeoutError:
            await self.kill()

    async def close(self) -> None:
        """Stop the engine if it runs and remove its data directory."""
        if self.running:
            await self.stop()
        await self._reap()
        shutil.rmtree(self.dir, ignore_errors=True)

    stop_signal = signal.SIGTERM

    async def _signal(self, signum: int, with_children: bool, timeout: float = STOP_TIMEOUT) -> None:
        if not self.running:
            return
        assert self.pid is not None
        pids = [self.pid, *(children(self.pid) if with_children else ())]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        while any(pid_alive(pid) for pid in pids):
            await self._reap()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} pid {self.pid} still runs {timeout} s after signal {signum}")
            await asyncio.sleep(0.05)
        await self._reap()

    async def _reap(self) -> None:
        """Collect the exit status of the process this object spawned (no zombie left)."""
        if (
            self._process is not None
            and self._process.returncode is None
            and not pid_alive(self._process.pid)
        ):
            await self._process.wait()
        if self._process is not None and self._process.returncode is not None:
            self._process = None

    async def _spawn(self, *argv: str) -> None:
        log = self.log_path.open("ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        self.pid = self._process.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    async def _launch(self) -> None:
        raise NotImplementedError

    async def _ready(self) -> bool:
        raise NotImplementedError


class PrivateRedis(PrivateProcess):
    """A redis-server of its own, append-only as the set-up's, so a restart keeps its data."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _launch(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: `make infra` installs it (deploy/local/infra.sh)"
            )
        await self._spawn(binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                          "--appendonly", "yes", "--save", "", "--protected-mode", "no")  # fmt: skip

    async def _ready(self) -> bool:
        if not await port_open(self.port):
            return False
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"PING\r\n")
            return (await reader.readline()).startswith(b"+PONG")  # not -LOADING
        finally:
            writer.close()


def _pg_bin() -> Path:
    given = os.environ.get("PG_BIN")
    if given:
        return Path(given)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
    )
    if not found:
        raise RuntimeError(
            "no PostgreSQL under /usr/lib/postgresql: `make infra` installs it (deploy/local/infra.sh)"
        )
    return found[-1]


class PrivatePostgres(PrivateProcess):
    """A PostgreSQL cluster of its own (initdb in the temp dir) with a `snapline` database."""

    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown: sessions are ended, then it exits
    user = "snapline"
    password = "snapline"
    database = "snapline"

    def __init__(self, **settings: str) -> None:
        super().__init__()
        self.bin = _pg_bin()
        self.data = self.dir / "data"
        self._initialised = False
        # fsync and full-page writes off: the data only has to survive a process kill (the page
        # cache does), not a machine crash. A primary with a replica keeps full-page writes on
        # (pg_basebackup needs them): settings override these.
        self.settings = {"fsync": "off", "shared_buffers": "32MB", "max_connections": "60",
                         "full_page_writes": "off", **settings}  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, *argv: str) -> list[str]:
        # initdb and postgres refuse to run as root: infra.sh runs them as the postgres user.
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)

    async def _run(self, *argv: str, env: dict[str, str] | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._as_owner(*argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{out.decode(errors='replace')}"
            )

    async def _init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        await self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8",
                        "--no-sync")  # fmt: skip
        pwfile.unlink()
        self._initialised = True

    async def _launch(self) -> None:
        if not self._initialised:
            await self._init()
        # The postmaster itself, not pg_ctl: its pid is the one recorded.
        options = [arg for name, value in self.settings.items() for arg in ("-c", f"{name}={value}")]
        await self._spawn(*self._as_owner(
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", *options,
        ))  # fmt: skip
        if os.geteuid() == 0:
            # runuser stays the parent: the postmaster is its child, and the pid to signal.
            deadline = time.monotonic() + 10
            while not (postmaster := children(self._runuser_pid())) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not postmaster:
                raise RuntimeError(f"postgres did not start:\n{self.log_tail()}")
            self.pid = postmaster[0]

    def _runuser_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def _ready(self) -> bool:
        import asyncpg

        if not await port_open(self.port):
            return False
        try:
            conn = await asyncpg.connect(self.url.rsplit("/", 1)[0] + "/postgres", timeout=5)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database):
                await conn.execute(f"CREATE DATABASE {self.database}")
        finally:
            await conn.close()
        return True

    async def _signal(self, signum: int, with_children: bool, timeout: float = STOP_TIMEOUT) -> None:
        await super()._signal(signum, with_children, timeout)
        if self._process is not None:  # runuser exits with the postmaster
            await asyncio.wait_for(self._process.wait(), timeout)
            self._process = None


class PrivateReplica(PrivatePostgres):
    """A streaming replica of a PrivatePostgres (made with `pg_basebackup -R`): read-only, hot standby."""

    name = "replica"

    def __init__(self, primary: PrivatePostgres) -> None:
        super().__init__()
        self.primary = primary

    async def _init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        await self._run(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                        "-U", self.user, "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
                        env={"PGPASSWORD": self.password})  # fmt: skip
        self._initialised = True

    async def _ready(self) -> bool:
        import asyncpg

        if not await port_open(self.port):
            return False
        try:
            conn = await asyncpg.connect(self.url, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        finally:
            await conn.close()


class PrivateKafka(PrivateProcess):
    """A second single-node KRaft broker (broker and controller on ports of its own)."""

    name = "kafka"

    def __init__(self, heap: str = "384m") -> None:
        super().__init__()
        self.controller_port = free_port()
        self.heap = heap
        self.config = self.dir / "server.properties"
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str, heap: str = "256m", quick: bool = True) -> list[str]:
        if not any(KAFKA_LIB.glob("kafka_*.jar")):
            raise RuntimeError(f"no Kafka under {KAFKA_LIB}: `make infra` fetches it (deploy/local/infra.sh)")
        log4j = ROOT / "deploy" / "local" / "kafka" / "log4j2.properties"
        # A tool run is short: the C1 compiler alone starts it faster on two busy cores.
        tuning = ["-XX:TieredStopAtLevel=1"] if quick else [f"-Xms{heap}"]
        return ["java", f"-Xmx{heap}", *tuning, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{KAFKA_LIB}/*", *args]  # fmt: skip

    async def _format(self) -> None:
        template = (ROOT / "deploy" / "local" / "kafka" / "server.properties").read_text()
        rendered = (
            template.replace("@DATA@", str(self.dir / "data"))
            .replace("@PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
        )
        self.config.write_text(rendered + "num.io.threads=2\nnum.network.threads=1\n")
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")  # Kafka's cluster id form
        proc = await asyncio.create_subprocess_exec(
            *self._java("kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cid}", "-c", str(self.config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{out.decode(errors='replace')}")
        self._formatted = True

    async def _launch(self) -> None:
        if not self._formatted:
            await self._format()
        await self._spawn(*self._java("kafka.Kafka", str(self.config), heap=self.heap, quick=False))

    async def _ready(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.errors import KafkaError

        if not await port_open(self.port):
            return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            # The group coordinator answers once __consumer_offsets can be created: ask for one.
            await admin.find_coordinator("private-kafka-ready")
        except (KafkaError, OSError):
            return False
        finally:
            await admin.close()
        return True
