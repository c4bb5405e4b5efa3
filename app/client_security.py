"""Credentials and TLS of every client the code builds, from settings: one function per kind of client.

Each returns the keyword arguments its client takes (the Cassandra driver's Cluster, redis-py's clients and
pools, aiokafka's producers, consumers and admin clients) or the credentials object Faust takes, and
nothing when a setting is at its default, so the local stack's clients stay as they were. No I/O here
beyond reading the certificate files an SSL context loads; tests/unit/test_client_security.py checks the
mapping. Docs: docs/configuration.md#credentials-and-tls, docs/operations.md#credentials-and-tls.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from cassandra.auth import PlainTextAuthProvider

from app.settings import Settings


def tls_context(ca_file: str, cert_file: str, key_file: str, verify_hostname: bool) -> ssl.SSLContext:
    """A client's TLS context: the server's certificate is always verified (against `ca_file`, or the system's
    CAs when empty), its name too unless `verify_hostname` is off; `cert_file`/`key_file` are the client's own
    certificate for servers that ask for one."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.check_hostname = verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def cassandra_options(settings: Settings) -> dict[str, Any]:
    """`Cluster(...)` arguments: a PlainTextAuthProvider (what PasswordAuthenticator asks for) and an
    ssl_context. With a context whose check_hostname is on, the driver verifies each node's certificate
    against the address it connects to."""
    options: dict[str, Any] = {}
    if settings.cassandra_username:
        options["auth_provider"] = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    if settings.cassandra_tls:
        options["ssl_context"] = tls_context(
            settings.cassandra_tls_ca_file, settings.cassandra_tls_cert_file, settings.cassandra_tls_key_file,
            settings.cassandra_tls_verify_hostname,
        )
    return options


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of redis-py's `from_url` (clients and pools, sync and asyncio): the ACL user or the
    default user's password, and with a rediss:// URL the TLS files (redis-py refuses ssl_* arguments for a
    plain redis:// connection). Credentials written in the URL itself win over these, as in redis-py."""
    options: dict[str, Any] = {}
    if settings.redis_password:
        options["password"] = settings.redis_password
        if settings.redis_username:
            options["username"] = settings.redis_username
    if settings.redis_url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required"
        options["ssl_check_hostname"] = settings.redis_tls_verify_hostname
        if settings.redis_tls_ca_file:
            options["ssl_ca_certs"] = settings.redis_tls_ca_file
        if settings.redis_tls_cert_file:
            options["ssl_certfile"] = settings.redis_tls_cert_file
            options["ssl_keyfile"] = settings.redis_tls_key_file or None
    return options


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client takes (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient):
    the security protocol, the SASL mechanism and credentials, and for SSL/SASL_SSL the TLS context."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password,
        }
    if protocol.endswith("SSL"):
        options["ssl_context"] = kafka_tls_context(settings)
    return options


def kafka_tls_context(settings: Settings) -> ssl.SSLContext:
    return tls_context(settings.kafka_tls_ca_file, settings.kafka_tls_cert_file, settings.kafka_tls_key_file,
                       settings.kafka_tls_verify_hostname)


def faust_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """The Faust app's `broker_credentials` (None: PLAINTEXT). Faust hands them to each aiokafka client it
    makes (consumer, producer, and the admin calls that create its internal topics): SASLCredentials is
    SASL_PLAINTEXT, or SASL_SSL when it carries an ssl_context; SSLCredentials is SSL."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kafka_tls_context(settings))
    return faust.SASLCredentials(
        username=settings.kafka_username,
        password=settings.kafka_password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=kafka_tls_context(settings) if protocol == "SASL_SSL" else None,
    )
