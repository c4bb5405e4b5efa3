"""Credential and TLS settings -> the options each client is built with (app/client_security.py), the settings'
own checks, and the local stack's configuration with PHOTOS_STACK_AUTH. No server is contacted."""

from __future__ import annotations

import ssl

import faust
import pytest
from cassandra.auth import PlainTextAuthProvider
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.client_security import cassandra_options, faust_credentials, kafka_options, redis_options
from app.settings import Settings
from infra import StackError
from infra.services import Cassandra, Kafka, Redis

STACK_AUTH = {
    "PHOTOS_STACK_AUTH": "1",
    "PHOTOS_CASSANDRA_USERNAME": "photos_app",
    "PHOTOS_CASSANDRA_PASSWORD": "c-secret",
    "PHOTOS_REDIS_USERNAME": "photos_app",
    "PHOTOS_REDIS_PASSWORD": "r-secret",
    "PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PHOTOS_KAFKA_USERNAME": "photos_app",
    "PHOTOS_KAFKA_PASSWORD": "k-secret",
}


def settings(**environ: str) -> Settings:
    return Settings.from_env(environ)


def test_the_defaults_give_every_client_no_credentials_and_no_tls():
    defaults = settings()
    assert cassandra_options(defaults) == {}
    assert redis_options(defaults) == {}
    assert kafka_options(defaults) == {}
    assert faust_credentials(defaults) is None


def test_cassandra_gets_a_plain_text_auth_provider_and_a_verifying_tls_context():
    options = cassandra_options(settings(PHOTOS_CASSANDRA_USERNAME="photos_api", PHOTOS_CASSANDRA_PASSWORD="pw",
                                         PHOTOS_CASSANDRA_TLS="1"))
    provider = options["auth_provider"]
    assert isinstance(provider, PlainTextAuthProvider)
    assert (provider.username, provider.password) == ("photos_api", "pw")
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname  # the driver then sends SNI/checks
    unchecked = cassandra_options(settings(PHOTOS_CASSANDRA_TLS="1", PHOTOS_CASSANDRA_TLS_VERIFY_HOSTNAME="0"))
    assert unchecked["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the CA still vouches for the node
    assert not unchecked["ssl_context"].check_hostname
    assert "auth_provider" not in unchecked


def test_a_ca_file_that_is_not_there_stops_the_client_at_once():
    with pytest.raises(FileNotFoundError):
        cassandra_options(settings(PHOTOS_CASSANDRA_TLS="1", PHOTOS_CASSANDRA_TLS_CA_FILE="/nonexistent/ca.pem"))


def test_redis_gets_its_acl_user_or_the_default_users_password():
    assert redis_options(settings(PHOTOS_REDIS_USERNAME="photos_api", PHOTOS_REDIS_PASSWORD="pw")) == {
        "username": "photos_api", "password": "pw",
    }
    assert redis_options(settings(PHOTOS_REDIS_PASSWORD="pw")) == {"password": "pw"}  # requirepass


def test_redis_tls_options_come_only_with_a_rediss_url():
    options = redis_options(settings(PHOTOS_REDIS_URL="rediss://redis.internal:6380/0",
                                     PHOTOS_REDIS_TLS_CA_FILE="/etc/photos/ca.pem",
                                     PHOTOS_REDIS_TLS_CERT_FILE="/etc/photos/client.pem",
                                     PHOTOS_REDIS_TLS_KEY_FILE="/etc/photos/client.key"))
    assert options == {
        "ssl_cert_reqs": "required", "ssl_check_hostname": True, "ssl_ca_certs": "/etc/photos/ca.pem",
        "ssl_certfile": "/etc/photos/client.pem", "ssl_keyfile": "/etc/photos/client.key",
    }
    with pytest.raises(ValueError, match="PHOTOS_REDIS_URL is not rediss://"):
        settings(PHOTOS_REDIS_TLS_CA_FILE="/etc/photos/ca.pem")


def test_redis_pools_and_clients_accept_the_options():
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.connection import SSLConnection

    tls = settings(PHOTOS_REDIS_URL="rediss://u:x@redis.internal:6380/0", PHOTOS_REDIS_USERNAME="photos_api",
                   PHOTOS_REDIS_PASSWORD="pw", PHOTOS_REDIS_TLS_VERIFY_HOSTNAME="0")
    pool = BlockingConnectionPool.from_url(tls.redis_url, **redis_options(tls))
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_check_hostname"] is False
    plain = settings(PHOTOS_REDIS_USERNAME="photos_api", PHOTOS_REDIS_PASSWORD="pw")
    kwargs = BlockingConnectionPool.from_url(plain.redis_url, **redis_options(plain)).connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("photos_api", "pw")


def test_kafka_sasl_ssl_carries_scram_credentials_and_a_tls_context():
    options = kafka_options(settings(PHOTOS_KAFKA_SECURITY_PROTOCOL="SASL_SSL", PHOTOS_KAFKA_USERNAME="photos-api",
                                     PHOTOS_KAFKA_PASSWORD="pw"))
    context = options.pop("ssl_context")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "photos-api", "sasl_plain_password": "pw"}


def test_kafka_sasl_plaintext_has_no_tls_and_ssl_has_no_sasl():
    plaintext = kafka_options(settings(PHOTOS_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", PHOTOS_KAFKA_USERNAME="u",
                                       PHOTOS_KAFKA_PASSWORD="pw", PHOTOS_KAFKA_SASL_MECHANISM="PLAIN"))
    assert plaintext == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                         "sasl_plain_username": "u", "sasl_plain_password": "pw"}
    tls_only = kafka_options(settings(PHOTOS_KAFKA_SECURITY_PROTOCOL="SSL"))
    assert set(tls_only) == {"security_protocol", "ssl_context"}


@pytest.mark.parametrize("environ", [
    {},
    {"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SSL"},
    {"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "PHOTOS_KAFKA_USERNAME": "u", "PHOTOS_KAFKA_PASSWORD": "p"},
    {"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PHOTOS_KAFKA_USERNAME": "u", "PHOTOS_KAFKA_PASSWORD": "p",
     "PHOTOS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
], ids=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_the_faust_workers_kafka_clients_get_what_the_apis_get(environ):
    """Faust turns broker_credentials into aiokafka arguments itself: they must come out as kafka_options."""
    configured = settings(**environ)
    faust_side = dict(credentials_to_aiokafka_auth(faust_credentials(configured)))
    ours = {"security_protocol": "PLAINTEXT", **kafka_options(configured)}
    for side in (faust_side, ours):  # contexts are built twice: compare what they check
        context = side.pop("ssl_context", None)
        if context is not None:
            side["verify"] = (context.verify_mode, context.check_hostname)
    assert faust_side == ours


def test_faust_credentials_are_the_sasl_kind_for_sasl():
    credentials = faust_credentials(settings(**{k: v for k, v in STACK_AUTH.items() if "KAFKA" in k}))
    assert isinstance(credentials, faust.SASLCredentials)
    assert "k-secret" not in repr(credentials)


@pytest.mark.parametrize(("environ", "message"), [
    ({"PHOTOS_CASSANDRA_PASSWORD": "pw"}, "without PHOTOS_CASSANDRA_USERNAME"),
    ({"PHOTOS_CASSANDRA_TLS_CA_FILE": "/ca.pem"}, "PHOTOS_CASSANDRA_TLS is off"),
    ({"PHOTOS_REDIS_USERNAME": "photos_api"}, "without PHOTOS_REDIS_PASSWORD"),
    ({"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL"}, "choose one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs PHOTOS_KAFKA_USERNAME and PHOTOS_KAFKA_PASSWORD"),
    ({"PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PHOTOS_KAFKA_USERNAME": "u", "PHOTOS_KAFKA_PASSWORD": "p",
      "PHOTOS_KAFKA_SASL_MECHANISM": "GSSAPI"}, "PHOTOS_KAFKA_SASL_MECHANISM='GSSAPI'"),
    ({"PHOTOS_KAFKA_PASSWORD": "p"}, "PHOTOS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"PHOTOS_KAFKA_TLS_CA_FILE": "/ca.pem", "PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
      "PHOTOS_KAFKA_USERNAME": "u", "PHOTOS_KAFKA_PASSWORD": "p"}, "PHOTOS_KAFKA_TLS_\\* files are set"),
    ({"PHOTOS_STACK_AUTH": "1"}, "PHOTOS_STACK_AUTH=1 needs"),
])
def test_settings_that_cannot_work_together_stop_at_start_up(environ, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)


def test_passwords_never_show_in_the_settings_repr():
    shown = repr(Settings.from_env(STACK_AUTH))
    assert "photos_app" in shown
    assert not any(secret in shown for secret in ("c-secret", "r-secret", "k-secret"))


# --- the local stack with PHOTOS_STACK_AUTH -------------------------------------------------------------


def test_without_stack_auth_the_servers_configurations_have_no_authentication(tmp_path):
    plain = settings(PHOTOS_STACK_DIR=str(tmp_path))
    assert "authenticator" not in Cassandra(plain).config_files()[Cassandra(plain).config_file]
    assert "user " not in next(iter(Redis(plain).config_files().values()))
    kafka = Kafka(plain)
    properties = kafka.config_files()[kafka.config_file]
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in properties
    assert "sasl" not in properties and kafka.scram_arguments() == []


def test_with_stack_auth_cassandra_checks_passwords_and_permissions(tmp_path):
    node = Cassandra(settings(PHOTOS_STACK_DIR=str(tmp_path), **STACK_AUTH))
    yaml = node.config_files()[node.config_file]
    assert "authenticator: PasswordAuthenticator\n" in yaml and "authorizer: CassandraAuthorizer\n" in yaml
    assert "-Dcassandra.superuser_setup_delay_ms=0" in node.prepare()


def test_with_stack_auth_redis_has_the_apps_acl_user_and_no_default_user(tmp_path):
    conf = next(iter(Redis(settings(PHOTOS_STACK_DIR=str(tmp_path), **STACK_AUTH)).config_files().values()))
    assert "user default off\nuser photos_app on >r-secret ~* &* +@all -@dangerous -@admin\n" in conf
    without_user = {**STACK_AUTH, "PHOTOS_REDIS_USERNAME": ""}
    conf = next(iter(Redis(settings(PHOTOS_STACK_DIR=str(tmp_path), **without_user)).config_files().values()))
    assert "requirepass r-secret\n" in conf
    spaced = {**STACK_AUTH, "PHOTOS_REDIS_PASSWORD": "two words"}
    with pytest.raises(StackError, match="PHOTOS_REDIS_USERNAME/PASSWORD"):
        Redis(settings(PHOTOS_STACK_DIR=str(tmp_path), **spaced)).config_files()


def test_with_stack_auth_kafka_listens_with_scram_and_formats_its_users(tmp_path):
    kafka = Kafka(settings(PHOTOS_STACK_DIR=str(tmp_path), **STACK_AUTH))
    properties = kafka.config_files()[kafka.config_file]
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n" in properties
    assert "inter.broker.listener.name=SASL_PLAINTEXT\n" in properties
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512\n" in properties
    assert "k-secret" not in properties  # the broker logs in as its own user, not as the app
    assert kafka.scram_arguments() == [
        "--add-scram", f"SCRAM-SHA-512=[name=photos-broker,password={kafka.broker_password}]",
        "--add-scram", "SCRAM-SHA-512=[name=photos_app,password=k-secret]",
    ]
    assert Kafka(settings(PHOTOS_STACK_DIR=str(tmp_path), **STACK_AUTH)).config_files() == kafka.config_files()


def test_config_files_holding_passwords_are_readable_by_their_owner_only(tmp_path):
    server = Redis(settings(PHOTOS_STACK_DIR=str(tmp_path), **STACK_AUTH))
    server.write_config_files()
    assert server.config_file.stat().st_mode & 0o077 == 0
