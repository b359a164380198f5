"""python -m services.analytics"""

from __future__ import annotations

from services.analytics.app import create_app
from shared.config import Settings
from shared.http import serve


def main() -> None:
    settings = Settings.from_env("analytics")
    app = create_app(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
