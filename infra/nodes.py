"""One node of several: the services `photos-stack up --cassandra-nodes N --kafka-brokers N --api-processes N
--stream-workers N` starts when N is more than 1 (infra/cluster.py decides which).

Node i of Cassandra or Kafka is named `cassandra-i` / `kafka-i`, listens on 127.0.0.(i+1) with the same ports
as a single node (so a one-node stack on 127.0.0.1 and a cluster never take each other's addresses) and keeps
its conf, data and logs under <stack_dir>/<name>. `api-i` and `streams-i` are the same console scripts as
`api` and `streams`: the API processes share the API's port (SO_REUSEPORT: the kernel spreads the
connections, as a load balancer would), the stream workers share the consumer group.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psutil

from app.settings import Settings
from infra import configs
from infra.services import (
    JAVA17_EXPORTS,
    JAVA17_OPENS,
    Api,
    Cassandra,
    Kafka,
    Streams,
    random_kafka_cluster_id,
)


def node_host(index: int) -> str:
    """Node `index` (from 1) of a cluster on this machine: 127.0.0.2, 127.0.0.3, ... (Linux routes all of
    127.0.0.0/8 to loopback; nothing needs configuring)."""
    return f"127.0.0.{index + 1}"


class CassandraNode(Cassandra):
    """Node `index` of a `count`-node ring. Node 1 is the seed; the others join one at a time
    (`joins_one_at_a_time`): Cassandra refuses two bootstraps at once."""

    ready_timeout_s = 180.0
    joins_one_at_a_time = True

    def __init__(self, settings: Settings, index: int, count: int) -> None:
        super().__init__(settings)
        self.index = index
        self.count = count
        self.name = f"cassandra-{index}"

    @property
    def host(self) -> str:
        return node_host(self.index)

    @property
    def heap(self) -> str:
        return self.settings.cassandra_node_heap

    @property
    def jmx_port(self) -> int:
        """On 127.0.0.1 (Cassandra's local JMX), one port per node: what nodetool connects to."""
        return self.settings.cassandra_jmx_port + self.index - 1

    @property
    def rackdc_file(self) -> Path:
        return self.conf_dir / "cassandra-rackdc.properties"

    @property
    def tools_logback_file(self) -> Path:
        return self.conf_dir / "logback-tools.xml"

    def config_files(self) -> dict[Path, str]:
        files = super().config_files()
        seed = f"{node_host(1)}:{self.settings.cassandra_storage_port}"
        files[self.config_file] = configs.cassandra_node_yaml(files[self.config_file], self.host, seed, self.count)
        files[self.rackdc_file] = configs.fill(
            configs.CASSANDRA_RACKDC_PROPERTIES, dc=self.settings.cassandra_local_dc, rack=f"rack{self.index}"
        )
        files[self.tools_logback_file] = configs.CASSANDRA_TOOLS_LOGBACK_XML
        return files

    def ring_flags(self) -> list[str]:
        """A ring of several: with ring_delay_ms=0 joiners give up ("Unable to contact any seeds") and the seed
        evicts them as silent fat clients (seen here); 5 s was clean. JMX on, for nodetool."""
        return [
            "-Dcassandra.ring_delay_ms=5000",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            f"-Dcassandra.jmx.local.port={self.jmx_port}",
            "-Djava.rmi.server.hostname=127.0.0.1",
            f"-Dcassandra-rackdc.properties=file://{self.rackdc_file}",
        ]

    def nodetool_command(self, *args: str) -> list[str]:
        """`nodetool ARGS` against this node, from the node's own jars (there is no bin/ to run)."""
        flags = [
            *(f"--add-exports={module}=ALL-UNNAMED" for module in JAVA17_EXPORTS),
            *(f"--add-opens={module}=ALL-UNNAMED" for module in JAVA17_OPENS),
            f"-Dlogback.configurationFile={self.tools_logback_file}",
        ]
        return self.java_command("128M", flags, "org.apache.cassandra.tools.NodeTool",
                                 "-h", "127.0.0.1", "-p", str(self.jmx_port), *args)


# Formatting the brokers of one quorum: the cluster id and each controller's directory id, the same for all.
_quorum_lock = threading.Lock()


class KafkaNode(Kafka):
    """Broker and controller `index` of a `count`-node KRaft quorum, formatted with every controller named
    (`--initial-controllers`): a dynamic quorum of all of them from the first start."""

    def __init__(self, settings: Settings, index: int, count: int) -> None:
        super().__init__(settings)
        self.index = index
        self.count = count
        self.name = f"kafka-{index}"

    @property
    def host(self) -> str:
        return node_host(self.index)

    @property
    def heap(self) -> str:
        return self.settings.kafka_broker_heap

    @property
    def controllers(self) -> list[str]:
        return [f"{node_host(i)}:{self.settings.kafka_controller_port}" for i in range(1, self.count + 1)]

    def config_files(self) -> dict[Path, str]:
        files = super().config_files()
        files[self.config_file] = configs.kafka_broker_properties(
            files[self.config_file], self.index, self.host, self.ports[0], self.settings.kafka_controller_port,
            self.controllers,
        )
        return files

    def format_arguments(self) -> list[str]:
        cluster_id, directory_ids = quorum_identity(self.stack_dir / "kafka-quorum.json", self.count)
        voters = ",".join(
            f"{i}@{controller}:{directory_ids[i - 1]}" for i, controller in enumerate(self.controllers, start=1)
        )
        return ["-t", cluster_id, "--initial-controllers", voters]


def quorum_identity(path: Path, count: int) -> tuple[str, list[str]]:
    """The cluster id and the `count` controller directory ids of this stack's quorum: made up once, kept in
    `path`, so that every broker is formatted into the same cluster (and one formatted later, too)."""
    with _quorum_lock:
        try:
            saved = json.loads(path.read_text())
            if len(saved["directory_ids"]) == count:
                return saved["cluster_id"], saved["directory_ids"]
        except (FileNotFoundError, ValueError, KeyError):
            pass
        cluster_id = random_kafka_cluster_id()
        directory_ids = [random_kafka_cluster_id() for _ in range(count)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cluster_id": cluster_id, "directory_ids": directory_ids}))
        return cluster_id, directory_ids


class ApiProcess(Api):
    """API process `index` of several on the API's port: one process each (`--workers 1`), so that killing
    `api-2` kills one server and the others go on serving the port."""

    port_is_shared = True

    def __init__(self, settings: Settings, index: int) -> None:
        super().__init__(settings)
        self.index = index
        self.name = f"api-{index}"

    def prepare(self) -> list[str]:
        return [str(self.executable), "--workers", "1"]

    async def answers(self) -> bool:
        """Its own process listens on the port (the app binds it once its start-up is done) and the port answers.
        The port alone would not do: while another process serves it, it answers before this one is ready."""
        pid = self.service_pid()
        return pid is not None and listens_on(pid, self.settings.api_port) and await super().answers()


def listens_on(pid: int, port: int) -> bool:
    """The process or one of its children (`photos-api --workers 1` serves from a child) listens on `port`."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
        return any(connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
                   for member in family for connection in member.net_connections("tcp"))
    except psutil.Error:
        return False


class StreamsWorker(Streams):
    """Stream worker `index` of several in one consumer group; each serves its metrics on a port of its own
    (the first on the single worker's)."""

    def __init__(self, settings: Settings, index: int) -> None:
        super().__init__(settings)
        self.index = index
        self.name = f"streams-{index}"

    @property
    def metrics_port(self) -> int:
        return super().metrics_port + self.index - 1

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(port + self.index - 1 for port in super().ports)
