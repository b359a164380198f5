"""Kafka connection settings: read and checked at start, then given to every client the project builds."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared import kafka, rebuild
from shared.config import KafkaSettings, Settings, SettingsError
from shared.kafkaauth import client_options

SCRAM = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAFKA_SASL_MECHANISM": "scram-sha-512",
    "KAFKA_SASL_USERNAME": "snapline-query",
    "KAFKA_SASL_PASSWORD": "pw-from-test",
}


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A self-signed CA certificate (PEM) made for the test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snapline-test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("kafka-ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings.from_env("query", {}).kafka
    assert (settings.security_protocol, settings.replication_factor, settings.min_insync_replicas) == (
        "PLAINTEXT",
        1,
        1,
    )
    assert client_options(settings) == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }


def test_scram_over_tls_reaches_the_options(ca_file: str) -> None:
    settings = Settings.from_env("query", {**SCRAM, "KAFKA_SSL_CAFILE": ca_file}).kafka
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "snapline-query",
        "pw-from-test",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "snapline-test-ca"),),)]
    assert "pw-from-test" not in repr(settings), "the password would reach a log line"


def test_the_password_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    env = {**SCRAM, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD_FILE": str(secret)}
    del env["KAFKA_SASL_PASSWORD"]
    assert Settings.from_env("live", env).kafka.sasl_password == "from-a-file"
    with pytest.raises(SettingsError, match="set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both"):
        Settings.from_env("live", {**env, "KAFKA_SASL_PASSWORD": "x"})
    with pytest.raises(SettingsError, match=r"KAFKA_SASL_PASSWORD_FILE names .*, which cannot be read"):
        Settings.from_env("live", {**env, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, not 'TLS'"),
        ({**SCRAM, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "needs KAFKA_SASL_MECHANISM, one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; got GSSAPI"),
        ({**SCRAM, "KAFKA_SASL_MECHANISM": ""}, "needs KAFKA_SASL_MECHANISM, .*; got nothing"),
        ({**SCRAM, "KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({**SCRAM, "KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SASL_\\* settings are given but KAFKA_SECURITY_PROTOCOL is SSL"),
        ({"KAFKA_SSL_CAFILE": "/etc/ssl/ca.crt"}, "KAFKA_SSL_CAFILE given but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"}, "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.crt"}, "KAFKA_SSL_CAFILE names '/nonexistent/ca.crt', which is not a readable file"),
        ({"KAFKA_REPLICATION_FACTOR": "0"}, "KAFKA_REPLICATION_FACTOR must be 1 or more, got 0"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_with_a_sentence(env: dict[str, str], sentence: str) -> None:
    with pytest.raises(SettingsError, match=sentence):
        Settings.from_env("ingest", env)


def test_a_ca_file_that_is_no_certificate_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate\n")
    settings = Settings.from_env("ingest", {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(bad)})
    with pytest.raises(SettingsError, match=r"the Kafka TLS files .* cannot be loaded"):
        kafka.producer_dependency(settings)


def test_topics_are_replicated_as_configured() -> None:
    for factor, insync in ((1, "1"), (2, "1"), (3, "2"), (5, "2")):
        settings = KafkaSettings(replication_factor=factor)
        for topic in kafka.topic_specs(settings):
            assert topic.replication_factor == factor
            assert topic.topic_configs["min.insync.replicas"] == insync
            assert topic.topic_configs["retention.ms"] == "-1"


class Recorded(Exception):
    """Raised by a recording client's start(), after its arguments were kept."""


def recorder(calls: list[dict[str, Any]]) -> type:
    class Client:
        def __init__(self, *_: Any, **kwargs: Any) -> None:
            calls.append(kwargs)

        async def start(self) -> None:
            raise Recorded

        async def close(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    return Client


async def test_every_client_gets_the_connection_settings(
    ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(
        "analytics", {**SCRAM, "KAFKA_SSL_CAFILE": ca_file, "KAFKA_BOOTSTRAP": "k:9093"}
    )
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", recorder(calls))
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", recorder(calls))
    monkeypatch.setattr(rebuild, "AIOKafkaConsumer", recorder(calls))

    async def handler(_: Any) -> None:
        pass

    with pytest.raises(Recorded):
        await kafka.ConsumerLoop(settings, "g", ["t"], handler).start()
    with pytest.raises(Recorded):
        await kafka.ensure_topics(settings.kafka)
    with pytest.raises(Recorded):
        await kafka.delete_topics(settings.kafka)
    rebuild._Replay(settings, "query", "g-rebuild", handler)  # type: ignore[arg-type]
    producer = kafka.make_producer(settings.kafka, "snapline-analytics")
    try:
        client = producer.client
        calls.append({
            "bootstrap_servers": ",".join(client._bootstrap_servers) if isinstance(client._bootstrap_servers, list) else client._bootstrap_servers,
            "security_protocol": client._security_protocol,
            "sasl_mechanism": client._sasl_mechanism,
            "sasl_plain_username": client._sasl_plain_username,
            "sasl_plain_password": client._sasl_plain_password,
            "ssl_context": client._ssl_context,
        })  # fmt: skip
    finally:
        await producer.stop()
    assert isinstance(producer, AIOKafkaProducer)
    assert len(calls) == 5
    wanted = client_options(settings.kafka)
    for kwargs in calls:
        assert {k: kwargs.get(k) for k in wanted} == wanted
