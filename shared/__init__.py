"""Snapline's common library: settings, event contract, adapters, logging and telemetry."""
