"""The engines deploy/k8s runs (Strimzi Kafka, CloudNativePG, Redis, KEDA) and the observability
stack of both deploy/k8s and compose.yml, held to what the services read and expect."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.config import DEFAULT_PORTS, KafkaSettings, Settings
from shared.kafka import topic_specs
from tests.deploy.test_manifests import (
    K8S,
    ROOT,
    SERVICES,
    WITH_KEDA,
    configmap,
    containers,
    env_of,
    find,
    host_port,
    one,
    snapline_containers,
)

OBS = ROOT / "deploy" / "observability"
KAFKA_SERVICES = ("ingest", "query", "analytics", "live")
KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool")


def container_of(name: str) -> dict[str, Any]:
    [(_, container)] = containers(one("Deployment", name))
    return container


def pod_env(name: str, ca_file: str = __file__) -> dict[str, str]:
    """The environment a service's pod starts with: the ConfigMap, then its own variables, a
    Secret's value stood in for by a placeholder and $(NAME) expanded as the kubelet does."""
    env = dict(configmap())
    for item in container_of(name).get("env", []):
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
        else:
            value = f"from-secret-{item['valueFrom']['secretKeyRef']['key']}"
        env[item["name"]] = value
    if "KAFKA_SSL_CAFILE" in env:
        env["KAFKA_SSL_CAFILE"] = ca_file  # the mounted file is not here (its mount is checked apart)
    return env


def kafka_settings() -> KafkaSettings:
    return Settings.from_env("topics", configmap()).kafka


# --- Kafka (Strimzi) ------------------------------------------------------------------------


def test_kafka_keeps_three_replicas_and_two_in_sync() -> None:
    kafka = one("Kafka", "snapline")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3  # the consumers' committed offsets too
    assert config["auto.create.topics.enable"] is False
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in find("KafkaNodePool")
        if pool["metadata"]["labels"]["strimzi.io/cluster"] == "snapline"
        and "broker" in pool["spec"]["roles"]
    )
    controllers = [p for p in find("KafkaNodePool") if "controller" in p["spec"]["roles"]]
    assert brokers >= 3 and sum(p["spec"]["replicas"] for p in controllers) % 2 == 1, (
        "KRaft needs an odd quorum"
    )
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka_settings().replication_factor == 3 and kafka_settings().min_insync_replicas == 2


def test_kafka_topics_are_the_ones_shared_kafka_makes() -> None:
    """The KafkaTopics hold the names, partitions, replicas and settings `python -m shared.topics`
    would give the ConfigMap's prefix, so that nothing else needs to create or fix them."""
    topics = {t["spec"]["topicName"]: t["spec"] for t in find("KafkaTopic")}
    specs = topic_specs(kafka_settings())
    assert set(topics) == {s.name for s in specs}
    for spec in specs:
        topic = topics[spec.name]
        assert (topic["partitions"], topic["replicas"]) == (spec.num_partitions, spec.replication_factor), (
            spec.name
        )
        assert {k: str(v) for k, v in topic["config"].items()} == spec.topic_configs, spec.name
    assert topics["snapline.plays.v1"]["partitions"] == int(configmap()["KAFKA_PLAY_PARTITIONS"])


def test_kafka_listener_is_what_the_services_connect_to() -> None:
    [listener] = one("Kafka", "snapline")["spec"]["kafka"]["listeners"]
    host, port = host_port(configmap()["KAFKA_BOOTSTRAP"])
    assert (host, port) == ("snapline-kafka-bootstrap", listener["port"])
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    for name in KAFKA_SERVICES:
        env = {**pod_env(name), "KAFKA_SSL_CAFILE": env_of(container_of(name))["KAFKA_SSL_CAFILE"]}
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        mounts = {m["mountPath"]: m["name"] for m in container_of(name)["volumeMounts"]}
        volumes = {v["name"]: v for v in one("Deployment", name)["spec"]["template"]["spec"]["volumes"]}
        folder, file = env["KAFKA_SSL_CAFILE"].rsplit("/", 1)
        secret = volumes[mounts[folder]]["secret"]
        assert secret["secretName"] == "snapline-cluster-ca-cert", name  # Strimzi's <cluster>-cluster-ca-cert
        assert {"key": "ca.crt", "path": file} in secret["items"], name


def test_engines_admit_only_the_services_that_use_them() -> None:
    def names(peer: dict[str, Any]) -> set[str]:
        [expression] = peer["podSelector"]["matchExpressions"]
        assert (expression["key"], expression["operator"]) == ("app.kubernetes.io/name", "In")
        return set(expression["values"])

    [listener] = one("Kafka", "snapline")["spec"]["kafka"]["listeners"]
    pods = [names(p) for p in listener["networkPolicyPeers"] if "podSelector" in p]
    assert pods == [set(KAFKA_SERVICES)]
    for policy, users in (
        ("redis-from-services", set(SERVICES)),
        ("postgres-from-services", {"gateway", "ingest", "query", "analytics"}),
        ("otel-collector-from-services", set(SERVICES)),
    ):
        rules = one("NetworkPolicy", policy)["spec"]["ingress"]
        assert names(rules[0]["from"][0]) == users, policy


def test_the_manifests_settings_are_accepted_at_start(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    for name in SERVICES:
        settings = Settings.from_env(name, pod_env(name, str(ca)))
        if name in KAFKA_SERVICES:
            assert settings.kafka.uses_sasl and settings.kafka.uses_tls, name
            assert settings.kafka.sasl_username == f"snapline-{name}"


def acl_allows(user: dict[str, Any], kind: str, name: str, operation: str) -> bool:
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if acl.get("type", "allow") != "allow" or resource["type"] != kind:
            continue
        pattern = resource.get("name", "")
        matches = name.startswith(pattern) if resource.get("patternType") == "prefix" else name == pattern
        if (kind == "cluster" or matches) and operation in acl["operations"]:
            return True
    return False


def test_each_service_has_a_kafka_user_allowed_what_it_does() -> None:
    settings = kafka_settings()
    for name in KAFKA_SERVICES:
        user = one("KafkaUser", f"snapline-{name}")
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "snapline"
        password = env_of(container_of(name))["KAFKA_SASL_PASSWORD"]["secretKeyRef"]
        assert password == {"name": user["metadata"]["name"], "key": "password"}, name
        assert acl_allows(user, "cluster", "", "IdempotentWrite"), f"{name}'s producer is idempotent"
        if name == "ingest":
            assert acl_allows(user, "topic", settings.plays_topic, "Write")
            assert not acl_allows(user, "topic", settings.plays_topic, "Read")
            continue
        group = Settings.from_env(name, pod_env(name)).consumer_group
        assert acl_allows(user, "topic", settings.plays_topic, "Read"), name
        assert not acl_allows(user, "topic", settings.plays_topic, "Write"), name
        assert acl_allows(user, "group", group, "Read"), name
        assert acl_allows(user, "group", f"{group}-rebuild-20260101T000000", "Delete"), "snapline rebuild"
        assert acl_allows(user, "topic", settings.dead_letter_topic, "Write"), name
        assert not acl_allows(user, "group", "snapline-other", "Read"), name


# --- KEDA -----------------------------------------------------------------------------------


def test_consumers_scale_on_their_groups_lag() -> None:
    partitions = int(configmap()["KAFKA_PLAY_PARTITIONS"])
    for name in WITH_KEDA:
        spec = one("ScaledObject", name)["spec"]
        [kafka] = [t for t in spec["triggers"] if t["type"] == "kafka"]
        meta = kafka["metadata"]
        settings = Settings.from_env(name, pod_env(name))
        assert meta["bootstrapServers"] == settings.kafka.bootstrap
        assert meta["consumerGroup"] == settings.consumer_group
        assert meta["topic"] == settings.kafka.plays_topic
        assert meta["allowIdleConsumers"] == "false"
        assert spec["maxReplicaCount"] == partitions, f"{name}: the partitions are the ceiling"
        assert 0 < int(meta["lagThreshold"]) <= 10_000
        assert meta["offsetResetPolicy"] == "earliest"  # as the consumers' auto_offset_reset
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        auth = one("TriggerAuthentication", kafka["authenticationRef"]["name"])["spec"]
        params = {ref["parameter"]: ref for ref in auth.get("secretTargetRef", []) + auth.get("env", [])}
        assert (
            params["username"]["name"] == "KAFKA_SASL_USERNAME"
            and params["username"]["containerName"] == name
        )
        password = env_of(container_of(name))["KAFKA_SASL_PASSWORD"]["secretKeyRef"]
        assert (params["password"]["name"], params["password"]["key"]) == (password["name"], password["key"])
        assert (params["ca"]["name"], params["ca"]["key"]) == ("snapline-cluster-ca-cert", "ca.crt")


# --- PostgreSQL (CloudNativePG) -------------------------------------------------------------


def test_postgres_has_a_streaming_replica_the_read_pool_uses() -> None:
    [cluster] = find("Cluster")
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    assert spec["instances"] >= 2, "a primary and at least one streaming replica"
    database = spec["bootstrap"]["initdb"]["database"]
    for service in ("gateway", "ingest", "query", "analytics"):
        env = env_of(container_of(service))
        assert env["DATABASE_URL"] == {"secretKeyRef": {"name": f"{name}-app", "key": "uri"}}, service
    for service in ("query", "analytics"):
        url = urlsplit(pod_env(service)["DATABASE_REPLICA_URL"])
        assert (url.hostname, url.port, url.path) == (f"{name}-ro", 5432, f"/{database}"), service
        assert (url.username, url.password) == ("from-secret-username", "from-secret-password"), service
    assert "DATABASE_REPLICA_URL" not in env_of(container_of("ingest"))  # writes and their reads: primary


# --- Redis ----------------------------------------------------------------------------------


def test_redis_persists_to_a_volume_behind_its_service() -> None:
    redis = one("StatefulSet", "redis")
    [(_, container)] = containers(redis)
    args = container["args"]
    option = {
        args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")
    }
    assert option["appendonly"] == "yes" and option["appendfsync"] in ("everysec", "always")
    [claim] = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == option["dir"], "the append-only file is not on the volume"
    assert redis["spec"]["replicas"] == 1  # one primary: README.md argues it
    service = one("Service", "redis")["spec"]
    assert service["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    host, port = host_port(configmap()["REDIS_URL"])
    assert (host, port) == ("redis", service["ports"][0]["port"])


# --- observability --------------------------------------------------------------------------


def test_k8s_services_send_spans_to_the_collector() -> None:
    shared = configmap()
    assert shared["TRACE_EXPORTER"] == "otlp"
    endpoint = urlsplit(shared["OTEL_EXPORTER_OTLP_ENDPOINT"])
    ports = {p["port"] for p in one("Service", endpoint.hostname or "")["spec"]["ports"]}
    assert endpoint.port in ports and endpoint.port == 4318  # OTLP over HTTP
    assert one("Deployment", "otel-collector")


def generated_configmaps() -> dict[str, list[str]]:
    """ConfigMap name -> the files ../observability/kustomization.yaml makes it from."""
    kustomization = yaml.safe_load((OBS / "kustomization.yaml").read_text())
    return {
        g["name"]: [f.split("=")[-1] for f in g.get("files", [])] for g in kustomization["configMapGenerator"]
    }


def test_observability_configmaps_come_from_the_repositorys_files() -> None:
    generated = generated_configmaps()
    for files in generated.values():
        for file in files:
            assert (OBS / file).is_file(), f"{file} is not in deploy/observability"
    assert "otel-collector.yaml" in generated["otel-collector-config"]
    assert {"prometheus-k8s.yml", "alerts.yml"} <= set(generated["prometheus-config"])
    dashboards = sorted(str(p.relative_to(OBS)) for p in (OBS / "grafana" / "dashboards").glob("*.json"))
    assert sorted(generated["grafana-dashboards"]) == dashboards, "list every dashboard in the kustomization"
    provisioning = sorted(str(p.relative_to(OBS)) for p in (OBS / "grafana" / "provisioning").rglob("*.y*ml"))
    assert sorted(generated["grafana-datasources"] + generated["grafana-dashboard-providers"]) == provisioning
    known = set(generated) | {c["metadata"]["name"] for c in find("ConfigMap")}
    for doc in find("Deployment") + find("StatefulSet"):
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in known, volume


def test_k8s_prometheus_scrapes_annotated_pods_with_the_alert_rules() -> None:
    config = yaml.safe_load((OBS / "prometheus-k8s.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    keep = job["relabel_configs"][0]
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    assert (keep["action"], keep["regex"]) == ("keep", "true")
    [(_, prometheus)] = containers(one("Deployment", "prometheus"))
    mount = next(m["mountPath"] for m in prometheus["volumeMounts"] if m["name"] == "config")
    assert config["rule_files"] == [f"{mount}/alerts.yml"]
    assert f"--config.file={mount}/prometheus.yml" in prometheus["args"]
    role = one("Role", "prometheus")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    for name in SERVICES:
        annotations = one("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (its built-in kustomize) is not installed")
def test_kustomize_builds_the_folder() -> None:
    done = subprocess.run([KUBECTL, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert all(d["metadata"].get("namespace") == "snapline" for d in docs if d["kind"] != "Namespace")
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:  # generated names carry a hash, and the references follow it
                assert volume["configMap"]["name"] in names, volume


# --- compose.yml observability --------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yml").read_text())["services"]  # type: ignore[no-any-return]


def binds(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> the repository file or folder a compose service mounts there."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            out[target] = source
    return out


def test_compose_runs_the_observability_stack(compose: dict[str, Any]) -> None:
    assert {"otel-collector", "prometheus", "grafana"} <= set(compose)
    for name, service in compose.items():
        for source in binds(service).values():
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    collector = compose["otel-collector"]
    mounted = binds(collector)
    config = next(a.split("=", 1)[1] for a in collector["command"] if a.startswith("--config="))
    assert mounted[config] == "./deploy/observability/otel-collector.yaml"
    grafana = binds(compose["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./deploy/observability/grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "./deploy/observability/grafana/dashboards"
    env = compose["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env, "a committed Grafana password signs anyone in"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_compose_services_send_spans_to_the_collector(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        env = compose[name]["environment"]
        assert env["TRACE_EXPORTER"] == "otlp", name
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (
            endpoint.hostname == "otel-collector"
            and str(endpoint.port) in compose["otel-collector"]["expose"]
        )
    provisioning = ROOT / "deploy/observability/grafana/provisioning/datasources"
    urls = [
        d["url"] for f in provisioning.glob("*.y*ml") for d in yaml.safe_load(f.read_text())["datasources"]
    ]
    assert "http://prometheus:9090" in urls  # the compose service and the k8s Service alike


def test_compose_prometheus_scrapes_the_five_services_with_the_rules(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    mounted = binds(compose["prometheus"])
    config_path = next(
        a.split("=", 1)[1] for a in compose["prometheus"]["command"] if a.startswith("--config.file=")
    )
    config = yaml.safe_load((ROOT / mounted[config_path]).read_text())
    [rules] = config["rule_files"]
    assert mounted[rules] == "./deploy/observability/alerts.yml"
    targets = {
        target: group["labels"]["service"]
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{name}:{DEFAULT_PORTS[name]}": name for name in SERVICES}
    if PROMTOOL:  # the same file, its rule path pointed at the repository's copy
        local = tmp_path / "prometheus.yml"
        local.write_text(yaml.safe_dump({**config, "rule_files": [str(OBS / "alerts.yml")]}))
        done = subprocess.run([PROMTOOL, "check", "config", str(local)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_snapline_containers_are_the_services() -> None:
    images = {c["image"] for d in find("Deployment") + find("StatefulSet") for _, c in containers(d)}
    assert "snapline" in images and "redis:7.4" in images
    names = {name for d in find("Deployment") for name, _ in snapline_containers(d)}
    assert names == {f"Deployment {s}" for s in SERVICES}
