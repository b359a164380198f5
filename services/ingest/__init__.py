"""Ingest: validates feed events and publishes them to Kafka, keyed by game."""
