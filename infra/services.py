"""The five services of the local stack: how each is configured, started and probed.

Three servers (Cassandra, Kafka, Redis) keep their files under <stack_dir>/<name>/
{conf,data,logs}; the two app processes (api, streams) are the project's own console
scripts, run from the bin dir of the Python that runs this launcher. Each runs under its
own supervisor (infra/supervise.py), which restarts it when it dies: the pid file names the
supervisor, and the supervisor's state file names the service's process.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from app.settings import Settings
from infra import StackError, configs, probes
from infra.fetch import JarBundle, cassandra_jars, kafka_jars
from infra.procs import process_alive, process_cmdline, read_pid
from infra.supervise import read_state

LOOPBACK = "127.0.0.1"
JAVA_PACKAGE = "openjdk-17-jre-headless"

# Cassandra 5.0 on Java 17, from its conf/jvm17-server.options: without these module
# exports/opens start-up dies with IllegalAccessException.
JAVA17_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
)
JAVA17_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "java.base/java.lang",
    "java.base/java.util",
    "java.base/java.nio",
)


def project_script(name: str) -> Path:
    """A console script of this project: it sits next to the Python running the launcher."""
    return Path(sys.executable).parent / name


class Service(ABC):
    """One process of the stack, identified by a pid file under <stack_dir>/run."""

    name: str
    is_server: bool  # Cassandra, Kafka, Redis; the app processes depend on them
    ready_timeout_s: float
    stop_timeout_s: float = 30.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack_dir = Path(settings.stack_dir)

    @property
    def pid_file(self) -> Path:
        """Names the service's supervisor."""
        return self.stack_dir / "run" / f"{self.name}.pid"

    @property
    def state_file(self) -> Path:
        """Written by the supervisor: the service's own pid, its restarts and how it last ended."""
        return self.stack_dir / "run" / f"{self.name}.state.json"

    @property
    def workdir(self) -> Path:
        """Current directory of the process; anything it writes relative lands here."""
        return self.stack_dir / self.name

    @property
    @abstractmethod
    def host(self) -> str: ...

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port the service binds; the first is the one clients use."""

    @property
    @abstractmethod
    def console_log(self) -> Path:
        """Where the process's stdout and stderr go."""

    @property
    def log_files(self) -> tuple[Path, ...]:
        """Logs worth showing when the service fails, most useful first."""
        return (self.console_log,)

    @property
    @abstractmethod
    def cmdline_marker(self) -> str:
        """Text in /proc/<pid>/cmdline that tells our process from a recycled pid."""

    @abstractmethod
    def prepare(self) -> list[str]:
        """Write config files and initialise storage as needed; return the command to run."""

    @abstractmethod
    async def answers(self) -> bool:
        """The service responds to a real request."""

    def config_files(self) -> dict[Path, str]:
        """The configuration files the service starts with, as `prepare` would write them now."""
        return {}

    def config_changed(self) -> bool:
        """A configuration file on disk differs from what the settings make now: a restart applies it."""
        for path, text in self.config_files().items():
            try:
                if path.read_text() != text:
                    return True
            except FileNotFoundError:
                return True
        return False

    def write_config_files(self) -> None:
        for path, text in self.config_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def missing_reason(self) -> str | None:
        """Why the service cannot be started at all on this machine, if it cannot."""
        return None

    def environment(self) -> dict[str, str]:
        """Variables the service starts with unless the launcher's environment sets them."""
        return {}

    def supervised_command(self, argv: list[str]) -> list[str]:
        """`argv` run under infra/supervise.py, which restarts it when it dies."""
        supervisor = [sys.executable, "-m", "infra.supervise", "--name", self.name, "--state", str(self.state_file)]
        return [*supervisor, "--", *argv]

    def running_pid(self) -> int | None:
        """Pid of the service's live supervisor, or None if stopped (or the pid file is stale)."""
        pid = read_pid(self.pid_file)
        if pid is None or not process_alive(pid):
            return None
        cmdline = process_cmdline(pid)
        if "infra.supervise" not in cmdline or str(self.state_file) not in cmdline:
            return None
        return pid

    def supervisor_state(self) -> dict:
        """What the supervisor last reported (empty when it has not run)."""
        return read_state(self.state_file) or {}

    def service_pid(self) -> int | None:
        """Pid of the service's own process while its supervisor runs it (None between restarts)."""
        if self.running_pid() is None:
            return None
        pid = self.supervisor_state().get("child_pid")
        return pid if isinstance(pid, int) and process_alive(pid) else None

    def unsupervised_pid(self) -> int | None:
        """A live process of this service that no supervisor of ours watches: started by a photos-stack
        from before supervision, or left behind by a supervisor that was killed. Returns its process group."""
        if self.running_pid() is not None:
            return None
        old_style = read_pid(self.pid_file)  # the pid file once named the service itself, a group leader
        if old_style is not None and process_alive(old_style) and self.cmdline_marker in process_cmdline(old_style):
            return old_style
        state = self.supervisor_state()
        child, group = state.get("child_pid"), state.get("supervisor_pid")
        if isinstance(child, int) and isinstance(group, int) and process_alive(child):
            if self.cmdline_marker in process_cmdline(child):
                return group  # the orphan is still in its dead supervisor's process group
        return None


class Server(Service):
    """A server with conf/, data/ and logs/ under <stack_dir>/<name>."""

    is_server = True
    apt_programs: dict[str, str]  # program -> Debian package that provides it
    jar_bundle: JarBundle | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "console.log"

    @property
    def main_log(self) -> Path:
        return self.logs_dir / f"{self.name}.log"

    @property
    def log_files(self) -> tuple[Path, ...]:
        return (self.main_log, self.console_log)


class JvmServer(Server):
    """A server run by Java 17 from its own lib dir of jars (never a shared classpath)."""

    jar_bundle: JarBundle

    @property
    def java(self) -> str:
        return str(Path(self.settings.java_home) / "bin" / "java")

    @property
    def apt_programs(self) -> dict[str, str]:
        return {self.java: JAVA_PACKAGE}

    def java_command(self, heap: str, jvm_flags: list[str], main_class: str, *args: str) -> list[str]:
        common = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError"]
        classpath = f"{self.jar_bundle.lib_dir}/*"
        return [self.java, *common, *jvm_flags, "-cp", classpath, main_class, *args]


class Cassandra(JvmServer):
    name = "cassandra"
    ready_timeout_s = 120.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.jar_bundle = cassandra_jars(settings)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.cassandra_port, self.settings.cassandra_storage_port)

    @property
    def config_file(self) -> Path:
        return self.conf_dir / "cassandra.yaml"

    @property
    def cmdline_marker(self) -> str:
        return f"-Dcassandra.config=file://{self.config_file}"

    @property
    def logback_file(self) -> Path:
        return self.conf_dir / "logback.xml"

    def config_files(self) -> dict[Path, str]:
        commitlog = configs.commitlog_lines(
            self.settings.cassandra_commitlog_sync, self.settings.cassandra_commitlog_window_ms
        )
        return {
            self.config_file: configs.fill(
                configs.CASSANDRA_YAML,
                storage_port=self.settings.cassandra_storage_port,
                native_port=self.settings.cassandra_port,
                commitlog=commitlog,
                concurrent_writes=self.settings.cassandra_concurrent_writes,
            ),
            self.logback_file: configs.fill(configs.CASSANDRA_LOGBACK_XML, log_file=self.main_log),
        }

    def prepare(self) -> list[str]:
        self.write_config_files()
        flags = [
            "-Xss256k",
            "-XX:+PerfDisableSharedMem",  # no mmap'ed hsperfdata file: writes to it can stall GC
            "-Djava.net.preferIPv4Stack=true",
            "-Djdk.attach.allowAttachSelf=true",
            *(f"--add-exports={module}=ALL-UNNAMED" for module in JAVA17_EXPORTS),
            *(f"--add-opens={module}=ALL-UNNAMED" for module in JAVA17_OPENS),
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
            "-Dchronicle.analytics.disable=true",
            "-Dcassandra-foreground=yes",  # otherwise Cassandra closes stdout/stderr
            # A one-node ring has no peers to wait for, or to tell about its shutdown.
            "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.shutdown_announce_in_ms=0",
            self.cmdline_marker,
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self.logs_dir}",
            f"-Dlogback.configurationFile={self.logback_file}",
        ]
        return self.java_command(self.settings.cassandra_heap, flags, "org.apache.cassandra.service.CassandraDaemon")

    async def answers(self) -> bool:
        return await probes.cql_answers(self.host, self.ports[0], self.settings.cassandra_local_dc)


class Kafka(JvmServer):
    name = "kafka"
    ready_timeout_s = 90.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.jar_bundle = kafka_jars(settings)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.kafka_port, self.settings.kafka_controller_port)

    @property
    def config_file(self) -> Path:
        return self.conf_dir / "server.properties"

    @property
    def cmdline_marker(self) -> str:
        return str(self.config_file)

    @property
    def log4j_file(self) -> Path:
        return self.conf_dir / "log4j2.xml"

    def config_files(self) -> dict[Path, str]:
        return {
            self.config_file: configs.fill(
                configs.KAFKA_SERVER_PROPERTIES,
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                data_dir=self.data_dir,
                partitions=self.settings.kafka_topic_partitions,
            ),
            self.log4j_file: configs.fill(configs.KAFKA_LOG4J2_XML, log_file=self.main_log),
        }

    def prepare(self) -> list[str]:
        self.write_config_files()
        flags = [
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(flags)
        return self.java_command(self.settings.kafka_heap, flags, "kafka.Kafka", str(self.config_file))

    async def answers(self) -> bool:
        return await probes.kafka_answers(self.host, self.ports[0])

    def _format_storage(self, flags: list[str]) -> None:
        """Give a fresh KRaft log dir its cluster id and this node's controller identity."""
        argv = self.java_command(
            "256M", flags, "kafka.tools.StorageTool",
            "format", "-t", random_kafka_cluster_id(), "-c", str(self.config_file), "--standalone",
        )  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")


def random_kafka_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64, unpadded."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these: they read as CLI options
            return cluster_id


class Redis(Server):
    name = "redis"
    ready_timeout_s = 20.0
    stop_timeout_s = 10.0
    apt_programs = {"redis-server": "redis-server"}

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.redis_port,)

    @property
    def cmdline_marker(self) -> str:
        # Redis rewrites its process title to "<program> <bind>:<port>", dropping the config path.
        return f"redis-server {LOOPBACK}:{self.settings.redis_port}"

    @property
    def config_file(self) -> Path:
        return self.conf_dir / "redis.conf"

    def config_files(self) -> dict[Path, str]:
        text = configs.fill(configs.REDIS_CONF, port=self.settings.redis_port, data_dir=self.data_dir,
                            log_file=self.main_log)
        return {self.config_file: text}

    def prepare(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config_files()
        return [shutil.which("redis-server") or "redis-server", str(self.config_file)]

    async def answers(self) -> bool:
        return await probes.redis_answers(self.host, self.ports[0])


STREAMS_METRICS_PORT = 9464  # the stack's stream worker's metrics (loadtest/run.py scrapes it there)


class AppProcess(Service):
    """One of the project's console scripts, run in the background."""

    is_server = False
    script: str

    @property
    def executable(self) -> Path:
        return project_script(self.script)

    @property
    def console_log(self) -> Path:
        return self.stack_dir / "logs" / f"{self.name}.log"

    @property
    def cmdline_marker(self) -> str:
        return str(self.executable)

    def missing_reason(self) -> str | None:
        if self.executable.exists():
            return None
        return f"{self.script} is not installed in {self.executable.parent}"

    def prepare(self) -> list[str]:
        return [str(self.executable)]


class Api(AppProcess):
    name = "api"
    script = "photos-api"
    ready_timeout_s = 30.0
    stop_timeout_s = 15.0

    @property
    def host(self) -> str:
        return self.settings.api_host

    @property
    def ports(self) -> tuple[int, ...]:
        """The public port, and the ops listener's (/metrics, the detailed /readyz) when it has one."""
        return (self.settings.api_port, self.settings.ops_port) if self.settings.ops_port else (self.settings.api_port,)

    async def answers(self) -> bool:
        """The public port answers /healthz: it opens only once the API has reached Cassandra."""
        return await probes.http_status(self.host, self.ports[0], "/healthz") == 200

    def environment(self) -> dict[str, str]:
        """The local stack is a development machine: its API may sign cursors with the development secret
        (app/settings.py), which it refuses to do anywhere that does not say so."""
        return {"PHOTOS_ALLOW_DEV_SECRET": "1"}


class Streams(AppProcess):
    name = "streams"
    script = "photos-streams"
    ready_timeout_s = 60.0
    stop_timeout_s = 20.0

    @property
    def metrics_port(self) -> int:
        """Where the stack's worker serves Prometheus metrics (docs/metrics.md): PHOTOS_STREAMS_METRICS_PORT,
        else STREAMS_METRICS_PORT. Not among `ports`, which must be free before a start: a second stack on
        the machine (the crash tests' private ones) still starts, its worker then logs that the port is
        taken and serves no metrics."""
        return self.settings.streams_metrics_port or STREAMS_METRICS_PORT

    def prepare(self) -> list[str]:
        return [str(self.executable), "--metrics-port", str(self.metrics_port)]

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.streams_web_port,) if self.settings.streams_web_port > 0 else ()

    async def answers(self) -> bool:
        """Faust's web server answers (any status), or, without one, the worker is alive."""
        if not self.ports:
            return self.service_pid() is not None or self.unsupervised_pid() is not None
        return await probes.http_status(self.host, self.ports[0], "/") is not None


SERVICE_TYPES: tuple[type[Service], ...] = (Cassandra, Kafka, Redis, Api, Streams)
SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICE_TYPES)
SERVER_NAMES = frozenset(service.name for service in SERVICE_TYPES if service.is_server)


def build_services(settings: Settings, names: list[str]) -> list[Service]:
    """The named services, in start order (servers first)."""
    return [service(settings) for service in SERVICE_TYPES if service.name in names]
