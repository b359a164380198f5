"""How every Kafka client of the project connects: bootstrap servers, protocol, SASL and TLS."""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

from aiokafka.helpers import create_ssl_context

from shared.config import KafkaSettings, SettingsError


@cache
def _ssl_context(cafile: str, certfile: str, keyfile: str) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=cafile or None, certfile=certfile or None, keyfile=keyfile or None
        )
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"the Kafka TLS files (KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE) "
            f"cannot be loaded: {exc}"
        ) from None
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka producer, consumer or admin client.

    TLS verifies the brokers' certificates and host names against KAFKA_SSL_CAFILE (the system's
    CAs without it); SASL sends the user's credentials only over the protocol asked for.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.security_protocol,
    }
    if settings.uses_sasl:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    if settings.uses_tls:
        options["ssl_context"] = _ssl_context(
            settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile
        )
    return options


def check(settings: KafkaSettings) -> None:
    """Load the TLS files now, so that a bad one stops the process at start with one sentence."""
    client_options(settings)
