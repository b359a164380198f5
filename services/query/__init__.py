"""Query: projects play events into season-partitioned PostgreSQL and serves filtered reads."""
