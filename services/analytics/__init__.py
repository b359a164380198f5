"""Analytics: exact aggregates of play events (PostgreSQL, cached in Redis), rankings and stats."""
