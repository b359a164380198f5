"""`python -m shared.topics`: create the platform's Kafka topics (auto-creation is off)."""

from __future__ import annotations

import asyncio
import sys

from shared.config import Settings
from shared.kafka import ensure_topics


async def _main() -> int:
    settings = Settings.from_env("topics")
    for attempt in range(60):
        try:
            created = await ensure_topics(settings.kafka)
        except Exception as exc:
            print(f"kafka not reachable yet ({exc}); retrying", file=sys.stderr)
            await asyncio.sleep(min(0.5 * (attempt + 1), 3))
            continue
        print(f"topics ready; created: {', '.join(created) or 'none'}")
        return 0
    print(f"could not reach Kafka at {settings.kafka.bootstrap}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main()))
