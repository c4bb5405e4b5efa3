"""Readiness probes: each asks a server a real question and returns whether it answered.

A probe never raises: while a server starts, every failure mode (refused connection,
timeout, protocol error from a half-started server) simply means "not yet".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from cassandra.cluster import Cluster
from cassandra.policies import DCAwareRoundRobinPolicy

from app.storage.cassandra import PING

PROBE_TIMEOUT_S = 5.0

# The clients log every failed connection attempt, and failing is what a probe does
# until the server is up: keep that out of the launcher's output.
for _noisy in ("cassandra", "aiokafka"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)


async def tcp_accepts(host: str, port: int) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    except OSError:  # TimeoutError included
        return False
    writer.close()
    return True


async def cql_answers(host: str, port: int, local_dc: str, **client_options: Any) -> bool:
    """`SELECT release_version FROM system.local` returns a row. `client_options`: the Cluster's credentials
    and TLS (app/client_security.py), when the node asks for them."""
    if not await tcp_accepts(host, port):  # cheap check first: a driver Cluster is costly to build
        return False
    return await asyncio.to_thread(_cql_release_version, host, port, local_dc, client_options) is not None


def _cql_release_version(host: str, port: int, local_dc: str, client_options: dict[str, Any]) -> str | None:
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=local_dc),
        connect_timeout=PROBE_TIMEOUT_S,
        control_connection_timeout=PROBE_TIMEOUT_S,
        **client_options,
    )
    try:
        session = cluster.connect()
        row = session.execute(PING, timeout=PROBE_TIMEOUT_S).one()
        return row.release_version if row else None
    except Exception:
        return None
    finally:
        cluster.shutdown()


async def kafka_answers(host: str, port: int, **client_options: Any) -> bool:
    """A Metadata request lists at least one broker. `client_options`: SASL and TLS (app/client_security.py)."""
    if not await tcp_accepts(host, port):
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                                **client_options)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster["brokers"])
    except Exception:
        return False
    finally:
        await admin.close()


async def redis_answers(host: str, port: int, username: str | None = None, password: str | None = None) -> bool:
    """PING gets PONG (as `username`, or the default user, when the server asks for a password)."""
    client = aioredis.Redis(host=host, port=port, socket_timeout=PROBE_TIMEOUT_S, username=username,
                            password=password)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def http_status(host: str, port: int, path: str) -> int | None:
    """Status code of `GET path`, or None if nothing answered HTTP."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    except OSError:  # TimeoutError included
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT_S)
        # "HTTP/1.1 200 OK"
        return int(status_line.split()[1])
    except (OSError, IndexError, ValueError):  # TimeoutError included
        return None
    finally:
        writer.close()
