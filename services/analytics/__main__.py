"""python -m services.analytics"""

from __future__ import annotations

import gc

from services.analytics.app import create_app
from shared.config import Settings
from shared.http import serve


def main() -> None:
    settings = Settings.from_env("analytics")
    app = create_app(settings)
    # The modules and the app live as long as the process: freezing them keeps the cyclic
    # collector's full passes, which a large fetch of plays triggers, from rescanning them.
    gc.collect()
    gc.freeze()
    serve(app, settings)


if __name__ == "__main__":
    main()
