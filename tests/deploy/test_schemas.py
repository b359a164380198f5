"""Every manifest of deploy/k8s validated offline: core kinds against Kubernetes' own OpenAPI schemas
(kubernetes-validate), the operators' custom resources against their CRDs' published schemas,
vendored under deploy/k8s/schemas/ with their source named."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_manifests import K8S, k8s_docs

SCHEMAS = K8S / "schemas"
# The Kubernetes release the core kinds are held to: the oldest one the README asks for would do,
# but kubernetes-validate ships recent schemas only; nothing here uses a field newer than 1.27.
KUBERNETES = "1.31.0"
CORE_GROUPS = ("", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io")


def group_version(doc: dict[str, Any]) -> tuple[str, str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    return group, version


@cache
def vendored() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> the vendored schema file's content."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        out[(data["group"], data["version"], data["kind"])] = {**data, "path": path}
    return out


def custom_resources() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in k8s_docs() if group_version(d)[0] not in CORE_GROUPS]


def core_resources() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in k8s_docs() if group_version(d)[0] in CORE_GROUPS]


def test_every_vendored_schema_names_its_source() -> None:
    assert len(vendored()) >= 7
    for key, data in vendored().items():
        lines = Path(data["path"]).read_text().splitlines()
        header = " ".join(line.lstrip("# ") for line in lines if line.startswith("#"))
        source = re.search(r"SOURCE: github\.com/[\w.-]+/[\w.-]+, \S+\.yaml at commit [0-9a-f]{40}", header)
        assert source, f"{data['path'].name} does not name its repository, file and commit"
        assert data["openAPIV3Schema"]["type"] == "object", key
        jsonschema.Draft7Validator.check_schema(data["openAPIV3Schema"])


def test_every_custom_resource_has_a_vendored_schema() -> None:
    kinds = {(*group_version(d), d["kind"]) for _, d in custom_resources()}
    assert {("keda.sh", "v1alpha1", "ScaledObject"), ("kafka.strimzi.io", "v1beta2", "Kafka"),
            ("postgresql.cnpg.io", "v1", "Cluster")} <= kinds  # fmt: skip
    missing = kinds - set(vendored())
    assert not missing, f"no schema vendored under {SCHEMAS} for {sorted(missing)}"


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Fields of `value` its schema does not name (what kubectl's strict field validation refuses),
    and anything inside a part the vendored copy trimmed away."""
    if schema.get("x-snapline-trimmed"):
        if value:
            yield f"{path} (trimmed from the vendored schema: vendor that part first)"
        return
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                yield from unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif not isinstance(schema.get("additionalProperties"), dict):
                yield f"{path}.{key}"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], f"{path}[{i}]")


def check_custom_resource(doc: dict[str, Any]) -> list[str]:
    """What is wrong with a custom resource against its vendored schema (empty when valid)."""
    group, version = group_version(doc)
    schema = vendored()[(group, version, doc["kind"])]["openAPIV3Schema"]
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]
    errors += [f"unknown field {field}" for field in unknown_fields(doc, schema)]
    name = doc["metadata"]["name"]
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
        errors.append(f"metadata.name {name!r} is not a DNS subdomain")
    return errors


@pytest.mark.parametrize("index", range(len(custom_resources())))
def test_custom_resources_match_their_crds(index: int) -> None:
    file, doc = custom_resources()[index]
    errors = check_custom_resource(doc)
    assert not errors, f"{file}: {doc['kind']} {doc['metadata']['name']}: {errors}"


def test_the_custom_resource_check_refuses_what_a_cluster_would() -> None:
    """The checks above can fail: a wrong type, a misspelt field, a value outside an enum, and a
    field inside a trimmed part are each caught."""
    _, scaled = next((f, d) for f, d in custom_resources() if d["kind"] == "ScaledObject")
    _, kafka = next((f, d) for f, d in custom_resources() if d["kind"] == "Kafka")
    wrong_type = copy.deepcopy(scaled)
    wrong_type["spec"]["maxReplicaCount"] = "twelve"
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["maxReplicas"] = 12
    bad_enum = copy.deepcopy(kafka)
    bad_enum["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    trimmed = copy.deepcopy(kafka)
    trimmed["spec"]["entityOperator"]["topicOperator"] = {"watchedNamespace": "elsewhere"}
    for broken, expected in (
        (wrong_type, "is not of type 'integer'"),
        (misspelt, "unknown field .spec.maxReplicas"),
        (bad_enum, "is not one of"),
        (trimmed, "trimmed from the vendored schema"),
    ):
        assert any(expected in e for e in check_custom_resource(broken)), (
            expected,
            check_custom_resource(broken),
        )
    assert not check_custom_resource(scaled) and not check_custom_resource(kafka)


@pytest.mark.parametrize("index", range(len(core_resources())))
def test_core_kinds_match_the_kubernetes_api(index: int) -> None:
    file, doc = core_resources()[index]
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(map(str, exc.path))
        pytest.fail(f"{file}: {doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")


def test_the_core_validation_is_strict() -> None:
    _, deployment = next((f, d) for f, d in core_resources() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 2  # an unknown field, which a lax validation would let through
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
