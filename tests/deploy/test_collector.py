"""deploy/observability/otel-collector.yaml holds together: what the pipeline names is defined,
both OTLP protocols are received on their standard ports, and the processors are in the order
the collector's documentation asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "otel-collector.yaml"


def _config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def test_the_traces_pipeline_names_only_defined_components() -> None:
    config = _config()
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert pipeline[kind], f"the traces pipeline has no {kind}"
        assert set(pipeline[kind]) <= set(config[kind]), (
            f"undefined {kind}: {set(pipeline[kind]) - set(config[kind])}"
        )
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_otlp_is_received_over_http_and_grpc_on_the_standard_ports() -> None:
    protocols = _config()["receivers"]["otlp"]["protocols"]
    # The services' exporter posts to <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces on 4318.
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert protocols["grpc"]["endpoint"].endswith(":4317")


def test_memory_limiter_comes_first_and_batch_last() -> None:
    processors = _config()["service"]["pipelines"]["traces"]["processors"]
    assert processors[0] == "memory_limiter" and processors[-1] == "batch"
