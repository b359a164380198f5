"""python -m services.live"""

from __future__ import annotations

from services.live.app import create_app
from shared.config import Settings
from shared.http import serve


def main() -> None:
    settings = Settings.from_env("live")
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
