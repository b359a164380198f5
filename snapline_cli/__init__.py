"""`snapline`: the platform's command line (users, API keys; imports and replays)."""
