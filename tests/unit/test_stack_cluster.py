"""The local cluster's launcher without launching anything: the services a topology makes, the configuration
each node gets, what the app is told, and the one-line refusals (unknown node, too many nodes, a stack dir
holding another topology's data)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import infra.stack
from app.settings import Settings
from infra import StackError
from infra.cluster import (
    GIB,
    Topology,
    app_environment,
    build_stack,
    check_bounds,
    check_data_matches,
    environment_file_text,
    find_service,
    memory_shortfall,
    read_environment_file,
    recorded_topology,
    save_topology,
)
from infra.nodes import ApiProcess, CassandraNode, StreamsWorker, listens_on, quorum_identity
from infra.ring import quorum_lines
from infra.services import SERVICE_NAMES, build_services
from infra.stack import is_paused, main


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PHOTOS_STACK_DIR": str(tmp_path)})


def test_the_default_topology_is_the_single_node_stack_unchanged(settings):
    cluster = build_stack(settings, Topology(), SERVICE_NAMES)
    single = build_services(settings, list(SERVICE_NAMES))
    assert [(type(s), s.name, s.host, s.ports) for s in cluster] == [(type(s), s.name, s.host, s.ports) for s in single]
    assert [s.config_files() for s in cluster] == [s.config_files() for s in single]
    assert app_environment(settings, Topology()) == {}


def test_a_cluster_names_each_node_and_puts_it_on_its_own_loopback_address(settings):
    services = build_stack(settings, Topology(3, 3, 2, 2), SERVICE_NAMES)
    assert [s.name for s in services] == [
        "cassandra-1", "cassandra-2", "cassandra-3", "kafka-1", "kafka-2", "kafka-3", "redis",
        "api-1", "api-2", "streams-1", "streams-2",
    ]
    assert [s.host for s in services[:6]] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"] * 2
    assert len({s.workdir for s in services}) == len(services)  # data, logs, pid files: each its own
    assert len({s.pid_file for s in services}) == len(services)
    nodes = [s for s in services if isinstance(s, CassandraNode)]
    assert [n.jmx_port for n in nodes] == [7199, 7200, 7201]
    workers = [s for s in services if isinstance(s, StreamsWorker)]
    assert [w.metrics_port for w in workers] == [9464, 9465]
    apis = [s for s in services if isinstance(s, ApiProcess)]
    assert {a.ports for a in apis} == {(8080, 8081)} and all(a.port_is_shared for a in apis)
    assert apis[0].prepare()[1:] == ["--workers", "1"]


def test_each_cassandra_node_gets_the_one_node_file_with_its_address_the_seed_and_the_cluster_keys(settings):
    node = build_stack(settings, Topology(cassandra_nodes=3), ["cassandra"])[2]
    one_node = build_services(settings, ["cassandra"])[0]
    single = one_node.config_files()[one_node.config_file]
    files = node.config_files()
    yaml = files[node.config_file]
    for line in ("listen_address: 127.0.0.4", "rpc_address: 127.0.0.4", '- seeds: "127.0.0.2:7000"',
                 "endpoint_snitch: GossipingPropertyFileSnitch", "num_tokens: 16", "hinted_handoff_enabled: true",
                 "allocate_tokens_for_local_replication_factor: 3", "commitlog_sync: batch"):
        assert line in yaml
    changed = set(yaml.splitlines()) - set(single.splitlines())
    assert len(changed) == 7  # the six keys above and the token allocation; the rest is the one-node file's
    assert files[node.rackdc_file].endswith("dc=datacenter1\nrack=rack3\n")
    argv = node.prepare()
    assert "-Dcassandra.ring_delay_ms=5000" in argv and "-Dcassandra.ring_delay_ms=0" not in argv
    assert "-Dcassandra.jmx.local.port=7201" in argv and "-Xmx512M" in argv
    assert node.nodetool_command("status")[-5:] == ["-h", "127.0.0.1", "-p", "7201", "status"]


def test_each_kafka_broker_is_a_voter_of_one_quorum_with_replicated_topics(settings, tmp_path):
    brokers = build_stack(settings, Topology(kafka_brokers=3), ["kafka"])
    properties = brokers[1].config_files()[brokers[1].config_file].splitlines()
    for line in ("node.id=2", "controller.quorum.bootstrap.servers=127.0.0.2:9093,127.0.0.3:9093,127.0.0.4:9093",
                 "listeners=PLAINTEXT://127.0.0.3:9092,CONTROLLER://127.0.0.3:9093",
                 "advertised.listeners=PLAINTEXT://127.0.0.3:9092,CONTROLLER://127.0.0.3:9093",
                 "default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
                 "transaction.state.log.min.isr=2", "share.coordinator.state.topic.min.isr=2"):
        assert line in properties
    assert sum(1 for line in properties if line.startswith("node.id=")) == 1
    arguments = [broker.format_arguments() for broker in brokers]
    assert len({tuple(a) for a in arguments}) == 1  # the same cluster id and voters for every broker
    voters = arguments[0][arguments[0].index("--initial-controllers") + 1].split(",")
    assert [v.rsplit(":", 1)[0] for v in voters] == ["1@127.0.0.2:9093", "2@127.0.0.3:9093", "3@127.0.0.4:9093"]
    directory_ids = [v.rsplit(":", 1)[1] for v in voters]
    assert quorum_identity(tmp_path / "kafka-quorum.json", 3) == (arguments[0][1], directory_ids)


def test_the_app_is_told_every_node_the_replication_and_the_consistency(settings, tmp_path):
    env = app_environment(settings, Topology(3, 3))
    assert env == {
        "PHOTOS_CASSANDRA_HOSTS": "127.0.0.2,127.0.0.3,127.0.0.4",
        "PHOTOS_CASSANDRA_REPLICATION": "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}",
        "PHOTOS_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
        "PHOTOS_KAFKA_BOOTSTRAP": "127.0.0.2:9092,127.0.0.3:9092,127.0.0.4:9092",
        "PHOTOS_KAFKA_REPLICATION_FACTOR": "3",
    }
    told = Settings.from_env(env)
    assert told.cassandra_hosts == ("127.0.0.2", "127.0.0.3", "127.0.0.4") and told.kafka_replication_factor == 3
    path = tmp_path / "cluster.env"
    path.write_text(environment_file_text(env))
    assert read_environment_file(path) == env
    assert set(app_environment(settings, Topology(kafka_brokers=3))) == {"PHOTOS_KAFKA_BOOTSTRAP",
                                                                         "PHOTOS_KAFKA_REPLICATION_FACTOR"}


def test_counts_beyond_this_machine_or_below_one_are_refused_in_one_line():
    check_bounds(Topology(3, 3, 4, 4))
    for topology, flag in ((Topology(cassandra_nodes=4), "--cassandra-nodes 4"),
                           (Topology(kafka_brokers=5), "--kafka-brokers 5"),
                           (Topology(api_processes=0), "--api-processes 0"),
                           (Topology(stream_workers=9), "--stream-workers 9")):
        with pytest.raises(StackError, match=flag) as refused:
            check_bounds(topology)
        assert "\n" not in str(refused.value)


def test_a_stack_that_does_not_fit_in_memory_is_refused(settings):
    services = build_stack(settings, Topology(3, 3), ["cassandra", "kafka"])
    assert memory_shortfall(services, 24 * GIB) is None
    refusal = memory_shortfall(services, 4 * GIB)
    assert refusal and "needs about 4.6 GiB" in refusal and "\n" not in refusal


def test_a_stack_dir_holding_another_topologys_data_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "cassandra" / "data").mkdir(parents=True)
    check_data_matches(tmp_path, Topology())
    with pytest.raises(StackError, match="holds the data of a 1-node Cassandra, not 3: `photos-stack wipe`"):
        check_data_matches(tmp_path, Topology(cassandra_nodes=3))

    other = tmp_path / "other"
    for name in ("cassandra-1", "cassandra-2", "cassandra-3", "kafka-1", "kafka-2", "kafka-3"):
        (other / name / "data").mkdir(parents=True)
    assert recorded_topology(other) == Topology(3, 3)
    check_data_matches(other, Topology(3, 3, 2, 2))
    with pytest.raises(StackError, match=r"3-node Kafka, not 1.*PHOTOS_STACK_DIR"):
        check_data_matches(other, Topology(cassandra_nodes=3))


def test_the_counts_last_started_are_remembered_and_the_data_has_the_last_word(tmp_path):
    assert recorded_topology(tmp_path) == Topology()
    save_topology(tmp_path, Topology(3, 3, 2, 3))
    assert recorded_topology(tmp_path) == Topology(3, 3, 2, 3)  # no data yet: as asked
    (tmp_path / "cassandra" / "data").mkdir(parents=True)
    assert recorded_topology(tmp_path) == Topology(1, 3, 2, 3)


def test_nodes_are_found_by_name_and_an_unknown_one_is_named_with_the_choices(settings):
    services = build_stack(settings, Topology(3, 3), SERVICE_NAMES)
    assert find_service(services, "kafka-3").host == "127.0.0.4"
    assert find_service(services, "streams-1").name == "streams"  # the single one answers to -1 too
    with pytest.raises(StackError, match="unknown node 'cassandra-4'; this stack has cassandra-1, "):
        find_service(services, "cassandra-4")


def test_the_command_line_refuses_misuse_with_one_line_and_a_failing_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHOTOS_STACK_DIR", str(tmp_path))
    (tmp_path / "cassandra" / "data").mkdir(parents=True)
    refusals = (
        (["kill", "cassandra-7"], "error: unknown node 'cassandra-7'; this stack has cassandra, "),
        (["stop", "kafka-2"], "error: unknown node 'kafka-2'"),
        (["up", "--cassandra-nodes", "4"], "error: --cassandra-nodes 4: this machine holds at most 3"),
        (["up", "--cassandra-nodes", "3"], "error: " + str(tmp_path) + " holds the data of a 1-node"),
        (["kill", "redis"], "error: redis is not running"),
        (["pause", "redis"], "error: redis is not running"),
        (["resume", "cassandra-9"], "error: unknown node 'cassandra-9'"),
    )
    for argv, message in refusals:
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "topology.json").exists()  # nothing was started or recorded
    assert not list(tmp_path.glob("cassandra-*"))


def test_status_shows_each_voter_by_name_with_its_role_and_lag():
    output = (
        "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t\n"
        "2     \tq7i9wB1aTZ6nYc5rH8kP0A\t1180        \t0  \t1765123456789     \t1765123456789        \tLeader  \t\n"
        "1     \tx4M2cV9bN7lK1jH5gF3dSa\t1180        \t0  \t1765123456701     \t1765123456701        \tFollower\t\n"
        "3     \tz8P6oI4uY2tR0eW7qA5sDf\t1175        \t5  \t1765123456650     \t1765123456650        \tFollower\t\n"
    )
    lines = quorum_lines(output, {1: "kafka-1", 2: "kafka-2", 3: "kafka-3"})
    assert [line.split() for line in lines] == [
        ["kafka-2", "node", "2", "Leader", "lag", "0"],
        ["kafka-1", "node", "1", "Follower", "lag", "0"],
        ["kafka-3", "node", "3", "Follower", "lag", "5"],
    ]


async def test_cassandra_nodes_start_one_after_the_other_and_the_rest_together(settings, monkeypatch):
    """Cassandra refuses two bootstraps at once; the Kafka brokers must start together (no quorum, no answer)."""
    events: list[str] = []

    async def fake_start(service) -> None:
        events.append(f"begin {service.name}")
        await asyncio.sleep(0.01)
        if service.name == "cassandra-2":
            raise StackError("cassandra-2 did not answer")
        events.append(f"end {service.name}")

    monkeypatch.setattr(infra.stack, "start", fake_start)
    services = build_stack(settings, Topology(3, 3), ["cassandra", "kafka"])
    failures = await infra.stack.start_all(services)
    assert [str(failure) for failure in failures] == ["cassandra-2 did not answer"]
    assert events[:3] == ["begin kafka-1", "begin kafka-2", "begin kafka-3"]  # together, before any ends
    cassandra = [event for event in events if "cassandra" in event]
    assert cassandra == ["begin cassandra-1", "end cassandra-1", "begin cassandra-2"]  # cassandra-3 never begun


def test_a_paused_process_is_told_apart_from_a_running_one():
    """`photos-stack pause` is SIGSTOP; status reads the stopped state from /proc."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not is_paused(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        eventually_sync(lambda: is_paused(child.pid))
        os.kill(child.pid, signal.SIGCONT)
        eventually_sync(lambda: not is_paused(child.pid))
    finally:
        child.kill()
        child.wait()
    assert not is_paused(child.pid)  # gone: not paused


def eventually_sync(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the process state did not change"
        time.sleep(0.01)


def test_an_api_process_is_ready_when_it_listens_on_the_port_itself():
    """A shared port answers while any process serves it: api-2's readiness is its own listening socket."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not listens_on(os.getpid(), port)  # bound, not listening
        server.listen()
        assert listens_on(os.getpid(), port)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not listens_on(child.pid, port)
    finally:
        child.kill()
        child.wait()
    assert not listens_on(child.pid, port)  # gone
