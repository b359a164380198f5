"""A private Prometheus for deploy/observability/render.py: a free port, data in a temporary
directory, the five services as targets (each labelled `service`, as deploy/local/obs.sh does),
5 s scrapes and the alert rules of alerts.yml; removed when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

import aiohttp

RULES = Path(__file__).resolve().parent / "alerts.yml"
SCRAPE_SECONDS = 5
STEP_SECONDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """`async with Prometheus(ports) as prom:` runs a private Prometheus scraping those services."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="snapline-render-prometheus-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"Prometheus({self.url}, data={self.folder})"

    def config(self) -> str:
        targets = "\n".join(
            f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{service: {name}}}'
            for name, port in self.ports.items()
        )
        return (f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: 15s\n"
                f"rule_files:\n  - {RULES}\n"
                f"scrape_configs:\n  - job_name: snapline\n    static_configs:\n{targets}\n")  # fmt: skip

    async def __aenter__(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit("prometheus is not installed (apt-get install prometheus)")
        (self.folder / "prometheus.yml").write_text(self.config())
        self._log = open(self.folder / "prometheus.log", "wb")  # noqa: SIM115 (closed in __aexit__)
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.folder / 'prometheus.yml'}", f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=self._log,
        )  # fmt: skip
        try:
            await self._ready()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _ready(self) -> None:
        assert self.proc is not None
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/-/ready") as resp:
                        if resp.status == 200:
                            return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited; see {self.folder / 'prometheus.log'}")
                await asyncio.sleep(0.2)

    async def scraped(self) -> None:
        """Wait until every service has been scraped twice: the run's counters start from a sample."""
        async with aiohttp.ClientSession() as http, asyncio.timeout(60):
            while True:
                async with http.get(f"{self.url}/api/v1/query", params={"query": "count(up == 1)"}) as resp:
                    result = (await resp.json())["data"]["result"]
                if result and int(result[0]["value"][1]) == len(self.ports):
                    break
                await asyncio.sleep(0.5)
        await asyncio.sleep(SCRAPE_SECONDS + 1)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def range_query(
        self, http: aiohttp.ClientSession, expr: str, start: float, end: float
    ) -> list[Any]:
        """The matrix a range query answers: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
        form = {"query": expr, "start": str(start), "end": str(end), "step": f"{STEP_SECONDS}s"}
        async with http.post(f"{self.url}/api/v1/query_range", data=form) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        result: list[Any] = body["data"]["result"]
        return result
