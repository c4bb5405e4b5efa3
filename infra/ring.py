"""What a cluster's servers think of each other, for `photos-stack status`: Cassandra's ring as a node sees it
(nodetool status) and Kafka's KRaft quorum as the brokers report it (MetadataQuorumCommand). Both run a JVM
of ~1.5 s on the servers' own jars; a problem is reported as a line, never raised.
"""

from __future__ import annotations

import asyncio

from infra.fetch import JarBundle
from infra.nodes import CassandraNode, KafkaNode
from infra.probes import tcp_accepts

TOOL_TIMEOUT_S = 60.0


async def cassandra_ring(nodes: list[CassandraNode]) -> list[str]:
    """`nodetool status` from the first node whose JMX port answers: every node Up/Down, Normal/Joining."""
    for node in nodes:
        if not await tcp_accepts("127.0.0.1", node.jmx_port):
            continue
        ok, output = await run_tool(node.nodetool_command("status"))
        if ok:
            return [f"ring as {node.name} sees it (nodetool status):", *ring_lines(output)]
        return [f"ring: nodetool on {node.name} failed: {last_line(output)}"]
    return ["ring: no Cassandra node answers on its JMX port"]


async def kafka_quorum(brokers: list[KafkaNode], tools: JarBundle) -> list[str]:
    """Every KRaft voter with its role (Leader, Follower) and lag, as the quorum's leader reports it."""
    if not tools.is_complete():
        return ["quorum: the Kafka tools are not fetched (`photos-stack up` fetches them for a cluster)"]
    bootstrap = ",".join(f"{broker.host}:{broker.ports[0]}" for broker in brokers)
    argv = [brokers[0].java, "-Xmx128M", "-cp", f"{tools.lib_dir}/*", "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server", bootstrap, "describe", "--replication"]
    ok, output = await run_tool(argv)
    if not ok:
        return [f"quorum: MetadataQuorumCommand failed: {last_line(output)}"]
    names = {broker.index: broker.name for broker in brokers}
    return ["KRaft quorum (MetadataQuorumCommand describe --replication):", *quorum_lines(output, names)]


def ring_lines(nodetool_status: str) -> list[str]:
    """nodetool's table, indented, without its blank and underlining lines."""
    return [f"  {line}" for line in nodetool_status.splitlines() if line.strip() and not line.startswith("=")]


def quorum_lines(replication: str, names: dict[int, str]) -> list[str]:
    """One line per voter of `describe --replication` (NodeId DirectoryId LogEndOffset Lag LastFetchTimestamp
    LastCaughtUpTimestamp Status): its node's name, id, role and lag."""
    lines = []
    for line in replication.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0].isdigit():
            node_id = int(fields[0])
            lines.append(f"  {names.get(node_id, '?'):<9} node {node_id}  {fields[-1]:<9} lag {fields[3]}")
    return lines


async def run_tool(argv: list[str]) -> tuple[bool, str]:
    """Run a JVM tool; whether it exited 0, and its standard output (its errors when it did not)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"no answer within {TOOL_TIMEOUT_S:.0f} s"
    if process.returncode != 0:
        return False, (stderr or stdout).decode(errors="replace")
    return True, stdout.decode(errors="replace")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
