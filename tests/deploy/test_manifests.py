"""Static checks of compose.yml, deploy/k8s/ and the Dockerfile against what the code expects.

No Docker engine or cluster is needed: the files are parsed and held to the environment
variable names shared/config.py reads, the services' ports and probes, and the image's command.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.config import DEFAULT_PORTS, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("gateway", "ingest", "query", "analytics", "live")
INFRA = ("kafka", "postgres", "redis")
WITH_HPA = ("gateway",)
# Scaled by KEDA on their consumer group's lag (keda.yaml); KEDA makes their HPA itself.
WITH_KEDA = ("query", "analytics", "live")
OBSERVABILITY = ("otel-collector", "prometheus", "grafana")
# Read by the OpenTelemetry exporter itself (the standard variable), not by shared/config.py.
EXPORTER_VARS = frozenset({"OTEL_EXPORTER_OTLP_ENDPOINT"})
# Variables whose value names another container or Service: (scheme added when missing).
URL_VARS = ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "KAFKA_BOOTSTRAP")
UPSTREAM_VARS = {f"{name.upper()}_URL": name for name in SERVICES if name != "gateway"}


# --- what shared/config.py reads ------------------------------------------------------------


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def names_read(module: str) -> frozenset[str]:
    """Every environment variable `Settings.from_env(module)` looks up."""
    env = RecordingEnv()
    Settings.from_env(module, env)
    return frozenset(env.names)


def module_of(args: list[str]) -> str:
    """The settings name of `python -m <args>`: services.ingest -> ingest, shared.topics -> topics."""
    assert len(args) == 1, f"expected one module argument after `python -m`, got {args}"
    return args[0].rsplit(".", 1)[-1]


def test_recorder_sees_what_settings_read() -> None:
    read = names_read("ingest")
    assert {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP", "INGEST_HOST", "INGEST_PORT"} <= read
    assert {"QUERY_URL", "SHUTDOWN_TIMEOUT", "JWT_KEYS_FILE"} <= read
    assert "QUERY_PORT" not in read and "GATEWAY_HOST" not in read
    # Every literal upper-case name in from_env's source is seen by the recorder, so a name
    # read some other way (os.environ directly) cannot slip past these tests.
    source = inspect.getsource(Settings.from_env)
    literals = set(re.findall(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']", source))
    assert literals and literals <= read, literals - read


# --- compose.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yml").read_text())
    return data["services"]  # type: ignore[no-any-return]


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the project's image."""
    return {name: svc for name, svc in compose.items() if "build" in svc}


def host_port(value: str) -> tuple[str, int | None]:
    parts = urlsplit(value if "://" in value else f"tcp://{value.split(',')[0]}")
    return parts.hostname or "", parts.port


def test_compose_declares_services_and_dependencies(compose: dict[str, Any]) -> None:
    missing = set(SERVICES + INFRA + ("topics",)) - set(compose)
    assert not missing, f"compose.yml lacks {sorted(missing)}"
    assert set(app_services(compose)) == set(SERVICES) | {"topics", "jwt-keys"}


def test_compose_long_running_containers_have_healthchecks(compose: dict[str, Any]) -> None:
    for name in SERVICES + INFRA:
        check = compose[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for name in SERVICES:
        port = DEFAULT_PORTS[name]
        assert f"127.0.0.1:{port}/readyz" in " ".join(compose[name]["healthcheck"]["test"]), name


def test_compose_depends_on_waits_for_health(compose: dict[str, Any]) -> None:
    for name, svc in compose.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions, not a bare list"
        for dep, spec in deps.items():
            assert dep in compose, f"{name} depends on unknown {dep}"
            one_shot = dep in ("topics", "jwt-keys")
            wanted = "service_completed_successfully" if one_shot else "service_healthy"
            assert spec.get("condition") == wanted, f"{name} -> {dep}: condition should be {wanted}"
    assert "kafka" in compose["topics"]["depends_on"]
    assert compose["topics"].get("restart") == "no"
    for name in ("ingest", "query", "analytics", "live"):
        assert "topics" in compose[name]["depends_on"], f"{name} must wait for the topics"


def test_compose_env_names_are_read_by_settings(compose: dict[str, Any]) -> None:
    for name, svc in app_services(compose).items():
        if name == "jwt-keys":  # a command line tool, not a service: it reads no settings
            continue
        module = module_of(svc["command"])
        unknown = set(svc.get("environment") or {}) - names_read(module) - EXPORTER_VARS
        assert not unknown, f"compose service {name} sets {sorted(unknown)}, which {module} never reads"


def test_compose_services_listen_on_their_ports(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        svc, up = compose[name], name.upper()
        assert svc["command"] == [f"services.{name}"]
        env = svc["environment"]
        assert env[f"{up}_HOST"] == "0.0.0.0", f"{name} would listen on loopback only"
        assert int(env[f"{up}_PORT"]) == DEFAULT_PORTS[name]
    assert compose["gateway"]["ports"] == ["8080:8080"]
    for name in ("topics", *SERVICES[1:]):
        assert "ports" not in compose[name], f"only the gateway is published; {name} is too"
    for name in (*INFRA, *OBSERVABILITY):
        for mapping in compose[name].get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} published beyond this machine"


def test_compose_addresses_name_services_it_waits_for(compose: dict[str, Any]) -> None:
    for name, svc in app_services(compose).items():
        env = svc.get("environment") or {}
        for var in (*URL_VARS, *UPSTREAM_VARS):
            if var not in env:
                continue
            host, port = host_port(env[var])
            assert host in compose, f"{name}: {var} points at {host!r}, not a compose service"
            assert host in svc.get("depends_on", {}), f"{name} uses {host} without waiting for it"
            if host in SERVICES:
                assert port == DEFAULT_PORTS[host], f"{name}: {var} has the wrong port"
    gateway_env = compose["gateway"]["environment"]
    assert {var: host_port(gateway_env[var])[0] for var in UPSTREAM_VARS} == UPSTREAM_VARS


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    kafka = compose["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["environment"]["CLUSTER_ID"]
    assert compose["postgres"]["image"] == "postgres:15"
    assert {compose["postgres"]["environment"][f"POSTGRES_{k}"] for k in ("USER", "PASSWORD", "DB")} == {
        "snapline"
    }
    assert compose["redis"]["image"] == "redis:7"


def test_compose_builds_the_dockerfile_and_drains(compose: dict[str, Any]) -> None:
    for name, svc in app_services(compose).items():
        build = svc["build"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), name
        grace = int(str(svc["stop_grace_period"]).removesuffix("s"))
        if name == "jwt-keys":
            continue
        assert grace > float(svc["environment"]["SHUTDOWN_TIMEOUT"]), f"{name} is killed mid-drain"


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instruction, _, rest = (current + line).partition(" ")
        out.append((instruction.upper(), rest.strip()))
        current = ""
    return out


def final_stage() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The global ARG defaults and the instructions of the last stage."""
    steps = dockerfile()
    first = next(i for i, (ins, _) in enumerate(steps) if ins == "FROM")
    last = max(i for i, (ins, _) in enumerate(steps) if ins == "FROM")
    args = dict(arg.split("=", 1) for ins, arg in steps[:first] if ins == "ARG" and "=" in arg)
    return args, steps[last:]


ENTRYPOINT = ["python", "-m"]


def test_dockerfile_runs_python_m_a_service() -> None:
    args, stage = final_stage()
    image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage[0][1].split()[0])
    assert image == "python:3.11-slim"
    last = {ins: rest for ins, rest in stage}
    assert json.loads(last["ENTRYPOINT"]) == ENTRYPOINT
    cmd = json.loads(last["CMD"])
    assert len(cmd) == 1 and re.fullmatch(r"services\.(\w+)", cmd[0]), cmd
    assert module_of(cmd) in SERVICES
    assert last.get("USER", "root").split(":")[0] not in ("root", "0"), "the image runs as root"


def test_dockerfile_installs_the_project_without_dev_extras() -> None:
    steps = dockerfile()
    runs = " ".join(rest for ins, rest in steps if ins == "RUN")
    assert re.search(r"pip install[^&;]* \.(\s|$)", runs), "the project itself is not pip-installed"
    assert "[dev]" not in runs and "dev" not in re.findall(r"\[(\w+)\]", runs)
    copied = " ".join(rest for ins, rest in steps if ins == "COPY")
    assert "pyproject.toml" in copied
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", pyproject)
    assert include is not None
    ignored = (ROOT / ".dockerignore").read_text().split()
    for package in re.findall(r'"(\w+)\*"', include.group(1)):
        assert re.search(rf"(^|\s){package}(\s|/)", copied), f"the image lacks package {package}"
        assert package not in ignored
    assert {".git", ".venv", ".local"} <= set(ignored)


def test_every_command_is_python_m_a_module_of_the_project() -> None:
    compose = yaml.safe_load((ROOT / "compose.yml").read_text())["services"]
    commands = {name: svc["command"] for name, svc in app_services(compose).items()}
    for _, doc in k8s_docs():
        for name, container in snapline_containers(doc):
            assert "command" not in container, f"k8s {name} overrides the image's ENTRYPOINT"
            commands[f"k8s {name}"] = container["args"]
    for name, args in commands.items():
        module = args[0]
        path = ROOT / module.replace(".", "/")
        runnable = path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
        assert runnable, f"{name}: `python -m {module}` finds nothing to run in the project"
        service = name.removeprefix("k8s ")
        if service in SERVICES:
            assert [*ENTRYPOINT, *args] == ["python", "-m", f"services.{service}"], name


# --- deploy/k8s ----------------------------------------------------------------------------


@cache
def k8s_docs() -> tuple[tuple[str, dict[str, Any]], ...]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.y*ml")):
        if path.name != "kustomization.yaml":
            out.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(out)


def find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def one(kind: str, name: str) -> dict[str, Any]:
    found = find(kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = pod_spec(doc)
    for container in spec["containers"] if spec else []:
        yield f"{doc['kind']} {doc['metadata']['name']}", container


def snapline_containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The containers that run the project's image (the others are the engines' and tools')."""
    for name, container in containers(doc):
        if container["image"] == "snapline":
            yield name, container


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert port in named, f"no container port named {port!r}"
    return int(named[port])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def configmap() -> dict[str, str]:
    return one("ConfigMap", "snapline-config")["data"]  # type: ignore[no-any-return]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "snapline"
    files = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a manifest is listed twice"
    # ../observability: the ConfigMaps generated from deploy/observability's files.
    folders = {r for r in listed if (K8S / r).is_dir()}
    assert folders == {"../observability"}, folders
    assert (K8S / "../observability/kustomization.yaml").is_file()
    listed_files = set(listed) - folders
    assert listed_files == files, f"unlisted: {files - listed_files}; missing: {listed_files - files}"


def test_every_service_has_its_objects() -> None:
    assert one("Namespace", "snapline")
    for name in SERVICES:
        assert one("Deployment", name)["spec"]["replicas"] >= 2
        assert one("Service", name) and one("PodDisruptionBudget", name)
    for name in WITH_HPA:
        hpa = one("HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    for name in WITH_KEDA:
        # KEDA makes the HPA of a ScaledObject; a second one on the Deployment would fight it.
        assert not find("HorizontalPodAutoscaler", name), f"{name} has an HPA beside its ScaledObject"
        scaled = one("ScaledObject", name)["spec"]
        assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert scaled["minReplicaCount"] == one("Deployment", name)["spec"]["replicas"]
    targets = [
        d["spec"]["scaleTargetRef"]["name"] for d in find("HorizontalPodAutoscaler") + find("ScaledObject")
    ]
    assert len(targets) == len(set(targets)), f"a Deployment has two autoscalers: {targets}"


def test_deployments_probe_and_serve_the_service_port() -> None:
    for name in SERVICES:
        deployment = one("Deployment", name)
        template = deployment["spec"]["template"]
        [(_, container)] = containers(deployment)
        [port] = [p["containerPort"] for p in container["ports"]]
        env = env_of(container)
        assert env[f"{name.upper()}_HOST"] == "0.0.0.0"
        assert int(env[f"{name.upper()}_PORT"]) == port, f"{name} listens elsewhere than its port"
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path and resolve_port(container, get["port"]) == port, (name, probe)
        assert resolve_port(container, container["startupProbe"]["httpGet"]["port"]) == port
        service = one("Service", name)["spec"]
        selector = service["selector"]
        assert selector.items() <= template["metadata"]["labels"].items(), f"Service {name} selects no pod"
        assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        [service_port] = service["ports"]
        assert resolve_port(container, service_port["targetPort"]) == port, f"Service {name} targetPort"
        assert service_port["port"] == DEFAULT_PORTS[name]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert (
            int(annotations["prometheus.io/port"]) == port and annotations["prometheus.io/path"] == "/metrics"
        )
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name} {kind}"


def test_deployments_drain_before_they_are_killed() -> None:
    shutdown = float(configmap()["SHUTDOWN_TIMEOUT"])
    for name in SERVICES:
        spec = one("Deployment", name)["spec"]["template"]["spec"]
        [(_, container)] = containers(one("Deployment", name))
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", f"{name} has no preStop sleep"
        assert spec["terminationGracePeriodSeconds"] > shutdown + float(command[1]), name
        # Service links would set e.g. QUERY_PORT=tcp://..., which config.py reads as a port.
        assert spec.get("enableServiceLinks") is False, name


def test_pods_run_locked_down() -> None:
    for file, doc in k8s_docs():
        spec = pod_spec(doc)
        for name, container in containers(doc):
            context = {**(spec or {}).get("securityContext", {}), **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, f"{file}: {name} may run as root"
            assert context.get("readOnlyRootFilesystem") is True, f"{file}: {name} root is writable"
            assert context.get("allowPrivilegeEscalation") is False, f"{file}: {name}"


# Secrets the operators write (never committed), and the keys of each the Deployments may read:
# CloudNativePG's app user of the Cluster snapline-pg, and Strimzi's KafkaUser Secrets (one per
# user, named like it).
GENERATED_SECRETS = {
    "snapline-pg-app": {"uri", "username", "password"},
    **{f"snapline-{name}": {"password"} for name in SERVICES if name != "gateway"},
}


def substituted(container: dict[str, Any]) -> set[str]:
    """Variables another variable of the container expands with $(NAME) (and no process reads)."""
    values = " ".join(str(e.get("value", "")) for e in container.get("env", []))
    return set(re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", values))


def test_k8s_env_names_are_read_by_settings() -> None:
    shared = configmap()
    for file, doc in k8s_docs():
        for name, container in snapline_containers(doc):
            read = names_read(module_of(container["args"]))
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]["name"]
                assert ref == "snapline-config", f"{file}: {name} reads unknown ConfigMap {ref}"
                unknown = set(shared) - read - EXPORTER_VARS
                assert not unknown, f"{file}: {name} gets {sorted(unknown)} but never reads them"
            helpers = substituted(container)
            names = [e["name"] for e in container.get("env", [])]
            for var, value in env_of(container).items():
                assert var in read or var in helpers, (
                    f"{file}: {name} sets {var}, which its settings never read"
                )
                ref = value.get("secretKeyRef") if isinstance(value, dict) else None
                if ref:
                    keys = GENERATED_SECRETS.get(ref["name"])
                    assert keys is not None, (
                        f"{file}: {var} reads Secret {ref['name']}, which nothing generates"
                    )
                    assert ref["key"] in keys, f"{file}: {var} reads key {ref['key']} of {ref['name']}"
            for helper in helpers:  # expanded only from variables defined before it
                users = [i for i, n in enumerate(names) if f"$({helper})" in str(env_of(container)[n])]
                assert helper in names and names.index(helper) < min(users), (
                    f"{file}: $({helper}) is not set first"
                )


def test_no_credential_is_committed() -> None:
    """Every credential is generated in the cluster: the manifests hold no Secret and no literal
    password; a variable that carries one reads an operator's Secret."""
    assert not find("Secret"), "a Secret is committed: let an operator or `kubectl create secret` make it"
    for file, doc in k8s_docs():
        for name, container in containers(doc):
            for var, value in env_of(container).items():
                if re.search(r"PASSWORD|SECRET|TOKEN", var) and not var.endswith("_FILE"):
                    assert isinstance(value, dict), f"{file}: {name} sets {var} to a literal"
            for var, value in env_of(container).items():
                assert not re.search(r"://[^/@\s$]+:[^/@\s$(]+@", str(value)), (
                    f"{file}: {name} {var} has a password"
                )


def test_configmap_upstreams_are_the_services() -> None:
    shared = configmap()
    for var, name in UPSTREAM_VARS.items():
        host, port = host_port(shared[var])
        service = one("Service", name)["spec"]["ports"][0]
        assert (host, port) == (name, service["port"]), f"{var} misses Service {name}"


def test_ingress_reaches_only_the_gateway_and_keeps_websockets_open() -> None:
    [ingress] = find("Ingress")
    gateway = one("Service", "gateway")["spec"]["ports"][0]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "gateway"
            assert backend["port"].get("name", backend["port"].get("number")) in (
                gateway["name"],
                gateway["port"],
            )
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600, key


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def test_network_policies_expose_only_the_gateway() -> None:
    policies = find("NetworkPolicy")
    assert any(
        p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"]["policyTypes"]
        and not p["spec"].get("ingress")
        for p in policies
    ), "no default-deny ingress policy"
    for name in SERVICES:
        labels = one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        rules = [
            r
            for p in policies
            if selects(p["spec"]["podSelector"], labels)
            for r in p["spec"].get("ingress", [])
        ]
        assert rules, f"nothing may reach {name}"
        if name == "gateway":
            continue
        for rule in rules:
            peers = rule.get("from")
            assert peers, f"{name} is open to every source"
            for peer in peers:
                assert "ipBlock" not in peer, f"{name} admits an address block"
                namespaces = peer.get("namespaceSelector")
                # Same-namespace pods, or the Prometheus namespace for /metrics (README.md).
                assert namespaces is None or namespaces == {
                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                }, f"{name} admits another namespace: {namespaces}"
        assert any(
            "namespaceSelector" not in peer
            and selects(peer["podSelector"], {"app.kubernetes.io/name": "gateway"})
            for rule in rules
            for peer in rule["from"]
            if "podSelector" in peer
        ), f"the gateway cannot reach {name}"


def test_the_replica_overlay_points_reads_at_a_standby_it_waits_for(compose: dict[str, Any]) -> None:
    overlay = yaml.safe_load((ROOT / "compose.replica.yml").read_text())
    replica = overlay["services"]["postgres-replica"]
    assert replica["image"] == compose["postgres"]["image"]
    assert "pg_basebackup" in replica["entrypoint"][-1] and "-R" in replica["entrypoint"][-1]
    assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("query", "analytics"):
        svc = overlay["services"][name]
        host, _ = host_port(svc["environment"]["DATABASE_REPLICA_URL"])
        assert (
            host == "postgres-replica"
            and svc["depends_on"]["postgres-replica"]["condition"] == "service_healthy"
        )
    # The primary lets the replica in (replication connections from the compose network).
    [config] = compose["postgres"]["configs"]
    configs = yaml.safe_load((ROOT / "compose.yml").read_text())["configs"]
    assert "host replication" in configs[config["source"]]["content"]
