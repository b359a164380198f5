"""The throw-away stacks of benchmarks and the suite end with the process that started them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The parent starts a child the way BenchStack starts a service, prints its pid, then waits.
PARENT = """
import subprocess, sys, time
from bench.stack import _child_setup
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=_child_setup)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_service_ends_when_its_starter_is_killed() -> None:
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", PARENT, cwd=ROOT,
                                                  stdout=asyncio.subprocess.PIPE)  # fmt: skip
    assert parent.stdout is not None
    child = int(await asyncio.wait_for(parent.stdout.readline(), 30))
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)  # as a killed test run or benchmark would be
    await parent.wait()
    async with asyncio.timeout(10):
        while _alive(child):
            await asyncio.sleep(0.05)
