"""`python -m services.gateway`: read settings from the environment and serve."""

from __future__ import annotations

from services.gateway.app import create_app
from shared.config import Settings
from shared.http import serve


def main() -> None:
    settings = Settings.from_env("gateway")
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
