"""The topology of the local stack: how many Cassandra nodes, Kafka brokers, API processes and stream workers
`photos-stack` runs, the services that makes, what the app processes are told about them, and what this
machine can hold.

One of each (the default) is the stack as it always was: services named cassandra, kafka, redis, api and
streams, the servers on 127.0.0.1. More than one of a kind makes nodes (infra/nodes.py) named `<kind>-<i>`.
With several Cassandra nodes the keyspace is created with NetworkTopologyStrategy and replication factor
min(3, nodes) in the settings' local data center, and the app reads and writes at its configured consistency
(LOCAL_QUORUM); with several Kafka brokers the topics get replication factor min(3, brokers), the brokers
min.insync.replicas one less, and every producer already sends with acks=all (app/events.py,
streams/app.py). The app processes learn of the cluster through `app_environment`: `photos-stack` exports it
to every process it starts (photos-migrate, photos-api, photos-streams) and writes it to
<stack_dir>/cluster.env for the shell.

The servers' data decides what a stack dir holds: a 1-node stack keeps <stack_dir>/cassandra/data, a 3-node one
<stack_dir>/cassandra-{1,2,3}/data. `up` with another count refuses to start over them instead of mixing the
two (`check_data_matches`). The counts asked for last are kept in <stack_dir>/topology.json, so `up`, `status`,
`down` and the node commands without flags act on the stack that was started.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from infra import StackError
from infra.nodes import ApiProcess, CassandraNode, KafkaNode, StreamsWorker, node_host
from infra.services import SERVICE_NAMES, SERVICE_TYPES, Service

# The largest counts `up` accepts on this machine (2 cores, 24 GiB; docs/operations.md). Cassandra and Kafka:
# 3, the replication factor; a 4th node would hold no extra copy of anything, only take another share of
# the 2 cores (each node's start-up alone is ~16 s of a core) and ~1 GB of memory. App processes: 4 of each,
# twice the cores.
MAX_COUNTS = {"cassandra": 3, "kafka": 3, "api": 4, "streams": 4}

GIB = 1024**3
# Resident memory measured here for each kind of process (docs/operations.md): `up` of a multi-node stack
# checks that what it is about to start fits in the memory available, less MEMORY_RESERVE.
EXPECTED_RSS_BYTES = {
    "cassandra": int(1.7 * GIB),  # one node, cassandra_heap 1G
    "cassandra-node": int(1.1 * GIB),  # a node of several, cassandra_node_heap 512M
    "kafka": int(0.6 * GIB),  # kafka_heap 512M
    "kafka-broker": int(0.45 * GIB),  # kafka_broker_heap 384M
    "redis": int(0.05 * GIB),
    "api": int(0.3 * GIB),  # one API process (the single `api` runs one per core: counted once per core)
    "streams": int(0.3 * GIB),
}
MEMORY_RESERVE_BYTES = 2 * GIB  # for the system, the shell, the tests and whatever else the machine runs

CLUSTER_APP_READY_TIMEOUT_S = 120.0

COUNT_FIELDS = {"cassandra": "cassandra_nodes", "kafka": "kafka_brokers", "api": "api_processes",
                "streams": "stream_workers"}
NODE_NAME = re.compile(r"^(?P<kind>[a-z]+)-(?P<index>[0-9]+)$")


@dataclass(frozen=True)
class Topology:
    cassandra_nodes: int = 1
    kafka_brokers: int = 1
    api_processes: int = 1
    stream_workers: int = 1

    def count(self, kind: str) -> int:
        """How many processes of `kind` (a service name) run; Redis is always one."""
        return getattr(self, COUNT_FIELDS[kind]) if kind in COUNT_FIELDS else 1

    def with_counts(self, **counts: int | None) -> Topology:
        """This topology with the counts given (None: keep this one's)."""
        return dataclasses.replace(self, **{name: value for name, value in counts.items() if value is not None})


def check_bounds(topology: Topology) -> None:
    """StackError (one line) for a count below 1 or above what this machine holds."""
    for kind, most in MAX_COUNTS.items():
        count = topology.count(kind)
        flag = "--" + COUNT_FIELDS[kind].replace("_", "-")
        if count < 1:
            raise StackError(f"{flag} {count}: at least 1")
        if count > most:
            raise StackError(f"{flag} {count}: this machine holds at most {most} (2 cores; see docs/operations.md)")


def build_stack(settings: Settings, topology: Topology, names: list[str] | tuple[str, ...]) -> list[Service]:
    """The services of `topology` whose kind is in `names`, in start order (servers first, nodes by index)."""
    services: list[Service] = []
    for kind, single in zip(SERVICE_NAMES, SERVICE_TYPES, strict=True):
        if kind not in names:
            continue
        count = topology.count(kind)
        if count == 1:
            services.append(single(settings))
        elif kind == "cassandra":
            services += [CassandraNode(settings, i, count) for i in range(1, count + 1)]
        elif kind == "kafka":
            services += [KafkaNode(settings, i, count) for i in range(1, count + 1)]
        elif kind == "api":
            services += [ApiProcess(settings, i) for i in range(1, count + 1)]
        elif kind == "streams":
            services += [StreamsWorker(settings, i) for i in range(1, count + 1)]
    if topology.cassandra_nodes > 1 or topology.kafka_brokers > 1:
        for service in services:
            if not service.is_server:  # 25-40 s measured here beside a cluster (statements prepared on every node)
                service.ready_timeout_s = max(service.ready_timeout_s, CLUSTER_APP_READY_TIMEOUT_S)
    return services


def find_service(services: list[Service], name: str) -> Service:
    """The service called `name`; `<kind>-1` also names the single one of its kind. StackError otherwise."""
    for service in services:
        if service.name == name:
            return service
    match = NODE_NAME.match(name)
    if match and match["index"] == "1":
        for service in services:
            if service.name == match["kind"]:
                return service
    known = ", ".join(service.name for service in services)
    raise StackError(f"unknown node {name!r}; this stack has {known}")


# --- what the app processes are told -------------------------------------------------


def app_environment(settings: Settings, topology: Topology) -> dict[str, str]:
    """The PHOTOS_* variables that point the app at the cluster of `topology` (none for single servers)."""
    env: dict[str, str] = {}
    if topology.cassandra_nodes > 1:
        replication = min(topology.cassandra_nodes, 3)
        env["PHOTOS_CASSANDRA_HOSTS"] = ",".join(node_host(i) for i in range(1, topology.cassandra_nodes + 1))
        env["PHOTOS_CASSANDRA_REPLICATION"] = (
            f"{{'class': 'NetworkTopologyStrategy', '{settings.cassandra_local_dc}': {replication}}}"
        )
        env["PHOTOS_CASSANDRA_CONSISTENCY"] = settings.cassandra_consistency
    if topology.kafka_brokers > 1:
        port = settings.kafka_port
        env["PHOTOS_KAFKA_BOOTSTRAP"] = ",".join(f"{node_host(i)}:{port}" for i in range(1, topology.kafka_brokers + 1))
        env["PHOTOS_KAFKA_REPLICATION_FACTOR"] = str(min(topology.kafka_brokers, 3))
    return env


def environment_file_text(env: dict[str, str]) -> str:
    lines = ["# Written by photos-stack up: how the app reaches this stack's cluster (docs/configuration.md).",
             "# `set -a; . .stack/cluster.env; set +a` points a shell's photos-* commands at it."]
    lines += [f'{name}="{value}"' for name, value in sorted(env.items())]  # no $, ` or " in these values
    return "\n".join(lines) + "\n"


def read_environment_file(path: Path) -> dict[str, str]:
    """The variables of a file `environment_file_text` wrote."""
    env = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


# --- what the stack dir holds --------------------------------------------------------


def topology_file(stack_dir: Path) -> Path:
    return stack_dir / "topology.json"


def servers_on_disk(stack_dir: Path, kind: str) -> int | None:
    """How many nodes of `kind` (cassandra, kafka) the stack dir holds data of; None if none."""
    if (stack_dir / kind / "data").is_dir():
        return 1
    indexes = [int(path.parent.name.rsplit("-", 1)[1]) for path in stack_dir.glob(f"{kind}-*/data")
               if path.parent.name.rsplit("-", 1)[1].isdigit()]
    return max(indexes, default=None)


def recorded_topology(stack_dir: Path) -> Topology:
    """The stack the dir holds: the counts `up` last saved, the servers' counted from their data."""
    try:
        topology = Topology(**json.loads(topology_file(stack_dir).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        topology = Topology()
    return topology.with_counts(cassandra_nodes=servers_on_disk(stack_dir, "cassandra"),
                                kafka_brokers=servers_on_disk(stack_dir, "kafka"))


def save_topology(stack_dir: Path, topology: Topology) -> None:
    stack_dir.mkdir(parents=True, exist_ok=True)
    topology_file(stack_dir).write_text(json.dumps(dataclasses.asdict(topology)) + "\n")


def check_data_matches(stack_dir: Path, wanted: Topology) -> None:
    """StackError (one line) when the stack dir holds the data of another count of Cassandra or Kafka nodes:
    a 3-node ring started on a 1-node data dir (or the reverse) would not be either."""
    for kind, label in (("cassandra", "Cassandra"), ("kafka", "Kafka")):
        held = servers_on_disk(stack_dir, kind)
        want = wanted.count(kind)
        if held is not None and held != want:
            raise StackError(
                f"{stack_dir} holds the data of a {held}-node {label}, not {want}: `photos-stack wipe` deletes it, "
                f"or give the {want}-node stack a directory of its own with PHOTOS_STACK_DIR"
            )


# --- what this machine holds ---------------------------------------------------------


def expected_rss_bytes(service: Service) -> int:
    if isinstance(service, CassandraNode):
        return EXPECTED_RSS_BYTES["cassandra-node"]
    if isinstance(service, KafkaNode):
        return EXPECTED_RSS_BYTES["kafka-broker"]
    kind = service.name.split("-")[0]
    processes = 1
    if kind == "api" and not isinstance(service, ApiProcess):
        processes = service.settings.api_workers or 2  # one per core
    return EXPECTED_RSS_BYTES[kind] * processes


def memory_shortfall(services: list[Service], available_bytes: int) -> str | None:
    """Why `services` do not fit in `available_bytes` (less the reserve), or None if they do."""
    needed = sum(expected_rss_bytes(service) for service in services)
    if needed + MEMORY_RESERVE_BYTES <= available_bytes:
        return None
    return (f"starting {', '.join(s.name for s in services)} needs about {needed / GIB:.1f} GiB and "
            f"{available_bytes / GIB:.1f} GiB is available ({MEMORY_RESERVE_BYTES / GIB:.0f} GiB kept for the "
            "rest): ask for fewer nodes or stop something")


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise StackError(f"no MemAvailable in {meminfo}")
