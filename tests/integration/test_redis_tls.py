"""The Redis clients over TLS with a password (a rediss:// PHOTOS_REDIS_URL, docs/configuration.md),
against a real redis-server serving TLS with a certificate of a private CA made here with openssl.

The local stack runs Redis without TLS, so this module starts its own server (a few milliseconds) on a free port:
the app's pool (app/wiring.py) and a subscriber-style client must reach it with the CA file and the password, and
be refused without the CA, with a wrong password, or under a name the certificate does not carry."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from app.client_security import redis_options
from app.settings import Settings
from app.wiring import redis_client
from infra.procs import free_port
from tests.support.polling import wait_until

PASSWORD = "tls-test-password"

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("redis-server")),
                                reason="needs openssl and redis-server")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """A CA, and a server certificate it signed for the address 127.0.0.1 only (no DNS name)."""
    tls = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=photos test CA", cwd=tls)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=tls)
    (tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=tls)
    return tls


@pytest.fixture(scope="module")
def tls_port(certificates):
    """A redis-server answering TLS only, with a password for the default user."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--save", "",
         "--appendonly", "no", "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no", "--requirepass", PASSWORD],
        cwd=certificates, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: accepts(port), timeout=10)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tls_settings(certificates: Path, port: int, host: str = "127.0.0.1", **environ: str) -> Settings:
    return Settings.from_env({
        "PHOTOS_REDIS_URL": f"rediss://{host}:{port}/0",
        "PHOTOS_REDIS_PASSWORD": PASSWORD,
        "PHOTOS_REDIS_TLS_CA_FILE": str(certificates / "ca.pem"),
        **environ,
    })


async def ping(settings: Settings) -> bool:
    client = Redis.from_url(settings.redis_url, socket_timeout=5, **redis_options(settings))
    try:
        return await client.ping()
    finally:
        await client.aclose()


async def test_the_apps_pool_talks_tls_and_logs_in(certificates, tls_port):
    client = redis_client(tls_settings(certificates, tls_port))
    try:
        assert await client.set("tls-test", "1", ex=10)
        assert await client.get("tls-test") == b"1"
    finally:
        await client.aclose()


async def test_a_server_certificate_the_ca_file_does_not_vouch_for_is_refused(certificates, tls_port):
    untrusted = tls_settings(certificates, tls_port, PHOTOS_REDIS_TLS_CA_FILE="")  # the system's CAs
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await ping(untrusted)


async def test_a_name_the_certificate_does_not_carry_is_refused_unless_hostname_checks_are_off(certificates,
                                                                                              tls_port):
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await ping(tls_settings(certificates, tls_port, host="localhost"))
    assert await ping(tls_settings(certificates, tls_port, host="localhost", PHOTOS_REDIS_TLS_VERIFY_HOSTNAME="0"))


async def test_a_wrong_password_is_refused_over_tls(certificates, tls_port):
    with pytest.raises(AuthenticationError):
        await ping(tls_settings(certificates, tls_port, PHOTOS_REDIS_PASSWORD="wrong-password"))
