"""A node of the cluster dies under load; nothing acknowledged is lost and the writes go on while it is down.

`photos-stack up --cassandra-nodes 3 --kafka-brokers 3` launches a stack of its own (tests/e2e/private_stack.py):
three Cassandra nodes on 127.0.0.2-4 with the keyspace at NetworkTopologyStrategy RF 3, the app at
LOCAL_QUORUM, three Kafka brokers in one KRaft quorum with topics at RF 3 and min.insync.replicas 2, and
one API and one stream worker told of them. The crash tests' write load (tests/e2e/write_load.py) runs
through the API; one Cassandra node, then one Kafka broker is SIGKILLed together with its supervisor
(`photos-stack kill --stay-down`), the load must be acknowledged while it is down (which a single node
cannot do), `photos-stack start` brings it back, and the audit checks every acknowledged write and that
every derived count converged, with the API and the stream worker the same processes throughout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.settings import Settings
from app.storage import cassandra
from infra.cluster import build_stack, find_service, read_environment_file, recorded_topology
from infra.procs import free_port
from infra.services import SERVICE_NAMES
from tests.e2e.private_stack import PrivateStack
from tests.e2e.write_load import Audit, Cast, WriteLoad, make_cast
from tests.support.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.own_stack]

# The suite's version: 3 Kafka brokers and one Cassandra node, the broker killed (4.5 min measured on a busy
# machine, 2.4 of them `up`). The full one (`make cluster-test`, PHOTOS_TEST_CLUSTER_FULL=1): 3 Cassandra nodes
# too, and a node of each killed (about 8.5 min, most of it the ring's start and the migrations on it: more than
# the suite can spend).
FULL = os.environ.get("PHOTOS_TEST_CLUSTER_FULL") == "1"
CASSANDRA_NODES = 3 if FULL else 1
full_only = pytest.mark.skipif(not FULL, reason="a 3-node ring: PHOTOS_TEST_CLUSTER_FULL=1 (make cluster-test)")
SCALE = int(os.environ.get("PHOTOS_TEST_CRASH_SCALE", "1"))  # as in test_stack_crashes.py
USERS = 12 * min(SCALE, 4)
POSTS = 6 * SCALE
LOAD_BEFORE_KILL = 40 * SCALE  # writes acknowledged before the kill
LOAD_WHILE_DOWN = 40 * SCALE  # writes acknowledged while the node is dead
LOAD_AFTER_RETURN = 40 * SCALE  # and after it is back
UP_TIMEOUT_S = 600  # three Cassandra nodes join one at a time, on two cores shared with the rest of the suite


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive free loopback ports (the JMX ports of the nodes)."""
    while True:
        first = free_port()
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


@pytest.fixture(scope="module")
def stack():
    stack = PrivateStack(
        "cluster",
        PHOTOS_CASSANDRA_JMX_PORT=str(free_ports_in_a_row(3)),
        PHOTOS_MEDIA_SWEEP_GRACE_S="20",
        PHOTOS_MEDIA_SWEEP_INTERVAL_S="5",
        PHOTOS_STREAMS_SESSION_TIMEOUT_S="10",
        PHOTOS_LIKE_RATE_PER_USER="100000",
        PHOTOS_COMMENT_RATE_PER_USER="100000",
        PHOTOS_UPLOAD_PIXELS_PER_ADDRESS="1000000000000",
        PHOTOS_FOLLOW_RATE_PER_ADDRESS="1000000",
    )
    began = time.monotonic()
    try:
        output = stack.up("--cassandra-nodes", str(CASSANDRA_NODES), "--kafka-brokers", "3", timeout=UP_TIMEOUT_S)
        print(f"\n{output}photos-stack up took {time.monotonic() - began:.0f} s")
        # what the launcher told its API and worker, the test is told too
        told = read_environment_file(stack.dir / "cluster.env")
        stack.settings = Settings.from_env({**os.environ, **stack.env, **told})
        yield stack
    finally:
        stack.down()


def node(stack: PrivateStack, name: str):
    return find_service(build_stack(stack.settings, recorded_topology(stack.dir), SERVICE_NAMES), name)


@pytest.fixture(scope="module")
async def stack_cass(stack):
    cluster, session = await cassandra.connect(stack.settings, stack.settings.cassandra_keyspace)
    yield session
    await cassandra.shutdown(cluster)


@pytest.fixture(scope="module")
async def cast(stack, stack_http) -> Cast:
    return await make_cast(stack_http, stack.api_url, USERS, POSTS)


async def test_every_row_and_every_event_is_kept_on_three_nodes(stack, stack_cass):
    """Status shows the ring and the quorum as the servers see them; the keyspace and the topics are replicated
    three times, and a write to Kafka needs two of them in sync."""
    status = stack.photos_stack("status")
    voters = [line.split() for line in status.splitlines() if line.strip().startswith("kafka-") and " lag " in line]
    assert sorted(fields[-3] for fields in voters) == ["Follower", "Follower", "Leader"], status
    assert stack.settings.cassandra_consistency == "LOCAL_QUORUM"
    if FULL:
        ring = [line.split() for line in status.splitlines() if line.strip().startswith(("UN", "DN", "UJ"))]
        assert sorted((fields[0], fields[1]) for fields in ring) == [
            ("UN", "127.0.0.2"), ("UN", "127.0.0.3"), ("UN", "127.0.0.4")], status
        rows = await stack_cass.rows("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                                     (stack.settings.cassandra_keyspace,))
        assert rows[0].replication == {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
                                       "datacenter1": "3"}

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    await admin.start()
    try:
        topic = f"{stack.settings.kafka_topic_prefix}likes"
        described = await admin.describe_topics([topic])
        assert {len(partition["replicas"]) for partition in described[0]["partitions"]} == {3}
        [broker] = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
        configs = {entry[0]: entry[1] for entry in broker.resources[0][4]}
        assert configs["min.insync.replicas"] == "2"
    finally:
        await admin.close()


async def kill_one_node_under_load(stack: PrivateStack, http, cass, cast: Cast, name: str, seed: int) -> None:
    apps = {app: (stack.pid(app), stack.restarts(app)) for app in ("api", "streams")}
    load = WriteLoad(http, stack.api_url, cast, seed)
    load.start()
    try:
        await load.until_acknowledged(LOAD_BEFORE_KILL, after=0.0, timeout=120)
        print(stack.photos_stack("kill", "--stay-down", name).strip())
        killed_at = time.monotonic()
        await load.until_acknowledged(LOAD_WHILE_DOWN, after=killed_at, timeout=120)
        down_for = time.monotonic() - killed_at
        assert node(stack, name).service_pid() is None, f"{name} came back by itself"
        stack.photos_stack("start", name)
        back_at = time.monotonic()
        await load.until_acknowledged(LOAD_AFTER_RETURN, after=back_at, timeout=120)
    finally:
        await load.stop()
    print(f"{name}: {LOAD_WHILE_DOWN} writes acknowledged in the {down_for:.1f} s it was down; answers so far "
          f"{dict(load.ledger.statuses)}")
    await eventually(lambda: answers(cass), lambda ok: ok, timeout=30)
    began = time.monotonic()
    await Audit(cass, http, stack.api_url, cast).run()
    print(f"{name}: audit passed in {time.monotonic() - began:.1f} s")
    now = {app: (stack.pid(app), stack.restarts(app)) for app in apps}
    assert now == apps, "the API or the stream worker did not ride the node's loss out (pid, restarts)"


async def answers(cass) -> bool:
    try:
        await cass.ping(timeout=2)
    except Exception:
        return False
    return True


@full_only
async def test_a_cassandra_node_killed_under_load_loses_nothing_and_the_writes_go_on(stack, stack_http, stack_cass,
                                                                                    cast):
    await kill_one_node_under_load(stack, stack_http, stack_cass, cast, "cassandra-2", seed=11)


async def test_a_kafka_broker_killed_under_load_loses_nothing_and_the_writes_go_on(stack, stack_http, stack_cass,
                                                                                  cast):
    await kill_one_node_under_load(stack, stack_http, stack_cass, cast, "kafka-2", seed=12)


# The fault run's own test: seed traffic from Locust with its ledger, two faults the short stack can take
# without a 3-node ring (an API process and the stream worker killed), the report and the audit.
CHAOS_FAULTS = "api-kill,streams-kill"


def test_the_fault_run_audits_every_write_of_the_seed_traffic_and_reports_each_window(stack):
    env = {**os.environ, **stack.env, **read_environment_file(stack.dir / "cluster.env")}
    out = stack.dir / "chaos"
    seeded = subprocess.run([sys.executable, "-m", "loadtest.seed", "--users", "40", "--out", str(out),
                             "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.chaos", "--host", stack.api_url, "--out", str(out),
         "--credentials", str(out / "credentials.jsonl"), "--faults", CHAOS_FAULTS, "--users", "8",
         "--warmup-s", "5", "--quiet-s", "10", "--down-s", "5", "--recover-s", "5", "--settle-s", "2"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "report.json").read_text())
    assert [w["window"] for w in report["windows"]] == ["quiet (baseline)", "api-kill (api)", "streams-kill (streams)"]
    assert all(w["requests"] > 0 for w in report["windows"]), report["windows"]
    assert all(w["converged_after_s"] is not None for w in report["windows"][1:]), report["windows"]
    assert report["problems"] == []
    checked = report["audit"]["checked"]
    assert sum(checked.values()) > 0 and checked, checked
