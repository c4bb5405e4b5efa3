"""The five services of the local stack: how each is configured, started and probed.

Three servers (Cassandra, Kafka, Redis) keep their files under <stack_dir>/<name>/
{conf,data,logs}; the two app processes (api, streams) are the project's own console
scripts, run from the bin dir of the Python that runs this launcher. Each runs under its
own supervisor (infra/supervise.py), which restarts it when it dies: the pid file names the
supervisor, and the supervisor's state file names the service's process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path

from cassandra import DriverException, Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.policies import DCAwareRoundRobinPolicy

from app.client_security import kafka_options
from app.settings import Settings
from app.storage.migrate import create_keyspace
from infra import StackError, configs, probes
from infra.fetch import JarBundle, cassandra_jars, kafka_jars
from infra.procs import process_alive, process_cmdline, read_pid
from infra.supervise import read_state

LOOPBACK = "127.0.0.1"
# the role every fresh Cassandra with PasswordAuthenticator has, and its well-known password
SUPERUSER = "cassandra"
DEFAULT_SUPERUSER_PASSWORD = "cassandra"
PERMISSIONS_CACHE_WAIT_S = 10.0  # well past Cassandra's permissions_validity (2 s)
KAFKA_BROKER_USER = "photos-broker"  # with PHOTOS_STACK_AUTH and SASL, the broker's own SCRAM user
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
    # several processes bind the port on purpose (SO_REUSEPORT): a listener there is no reason not to start
    port_is_shared: bool = False

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
            path.touch(mode=0o600)  # with PHOTOS_STACK_AUTH some hold passwords: readable by their owner only
            path.write_text(text)

    def missing_reason(self) -> str | None:
        """Why the service cannot be started at all on this machine, if it cannot."""
        return None

    async def provision(self) -> None:
        """Once the service answers, at every `up`: set up what it must hold before the apps use it (the app's
        role on a Cassandra with authentication). Idempotent."""
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
                auth=configs.CASSANDRA_AUTH if self.settings.stack_auth else "",
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
            *self.ring_flags(),
            self.cmdline_marker,
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.logdir={self.logs_dir}",
            f"-Dlogback.configurationFile={self.logback_file}",
        ]
        if self.settings.stack_auth:  # the default superuser at once, not 10 s after start-up
            flags.append("-Dcassandra.superuser_setup_delay_ms=0")
        return self.java_command(self.heap, flags, "org.apache.cassandra.service.CassandraDaemon")

    @property
    def heap(self) -> str:
        return self.settings.cassandra_heap

    def ring_flags(self) -> list[str]:
        """A one-node ring has no peers to wait for, or to tell about its shutdown."""
        return [
            "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.shutdown_announce_in_ms=0",
        ]

    async def answers(self) -> bool:
        """The node answers a query; with PHOTOS_STACK_AUTH, as the superuser (the app's role may not exist yet:
        `provision` makes it)."""
        if not self.settings.stack_auth:
            return await probes.cql_answers(self.host, self.ports[0], self.settings.cassandra_local_dc)
        for password in self.superuser_passwords():
            options = {"auth_provider": PlainTextAuthProvider(SUPERUSER, password)}
            if await probes.cql_answers(self.host, self.ports[0], self.settings.cassandra_local_dc, **options):
                return True
        return False

    # --- PHOTOS_STACK_AUTH -----------------------------------------------------------------------------
    @property
    def superuser_password_file(self) -> Path:
        """The password the launcher gave the default superuser in place of the well-known one."""
        return self.conf_dir / "superuser-password"

    def superuser_passwords(self) -> list[str]:
        """What the superuser's password may be: the launcher's own, then the default of a fresh node."""
        try:
            return [self.superuser_password_file.read_text().strip(), DEFAULT_SUPERUSER_PASSWORD]
        except FileNotFoundError:
            return [DEFAULT_SUPERUSER_PASSWORD]

    async def provision(self) -> None:
        if self.settings.stack_auth:
            await asyncio.to_thread(self.provision_roles)

    def provision_roles(self) -> None:
        """Give the default superuser a password of the launcher's own (kept in conf/, mode 0600), and make the
        app's role with the password of the settings: it may log in and create keyspaces, and owns (so may do
        anything in) the keyspaces and tables it creates; nothing else."""
        role = self.settings.cassandra_username
        if not re.fullmatch(r"[a-z][a-z0-9_]*", role) or role == SUPERUSER:
            raise StackError(f"PHOTOS_CASSANDRA_USERNAME={role!r}: photos-stack makes roles named in lower case "
                             f"letters, digits and _, and not {SUPERUSER!r}")
        session, cluster, password = self._superuser_session()
        try:
            if password == DEFAULT_SUPERUSER_PASSWORD:
                own = secrets.token_urlsafe(24)
                self.superuser_password_file.touch(mode=0o600)
                self.superuser_password_file.write_text(own)  # first: a crash after the ALTER still finds it
                session.execute(f"ALTER ROLE {SUPERUSER} WITH PASSWORD = %s", (own,))
            session.execute(f"CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = %s AND LOGIN = true",
                            (self.settings.cassandra_password,))
            if not self._logs_in(role, self.settings.cassandra_password):  # the setting changed since
                session.execute(f"ALTER ROLE {role} WITH PASSWORD = %s", (self.settings.cassandra_password,))
            session.execute(f"GRANT CREATE ON ALL KEYSPACES TO {role}")
        except DriverException as error:
            raise StackError(f"cassandra: setting up the role {role!r} failed: {error}") from None
        finally:
            cluster.shutdown()
        self._until_role_may_create_keyspaces(role)

    def _until_role_may_create_keyspaces(self, role: str) -> None:
        """Wait until the node's permission cache (permissions_validity, 2 s) shows the role its grant, by making
        the app's keyspace as photos-migrate would (IF NOT EXISTS, the settings' replication): the migrations
        that follow must not fail on a cache entry from before the grant."""
        cluster = self._cluster(role, self.settings.cassandra_password)
        deadline = time.monotonic() + PERMISSIONS_CACHE_WAIT_S
        try:
            session = cluster.connect()
            while True:
                try:
                    create_keyspace(session, self.settings, self.settings.cassandra_keyspace)
                    return
                except Unauthorized:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.25)
        except DriverException as error:
            raise StackError(f"cassandra: the role {role!r} cannot create its keyspace: {error}") from None
        finally:
            cluster.shutdown()

    def _logs_in(self, role: str, password: str) -> bool:
        cluster = self._cluster(role, password)
        try:
            cluster.connect()
            return True
        except NoHostAvailable:
            return False
        finally:
            cluster.shutdown()

    def _cluster(self, role: str, password: str) -> Cluster:
        return Cluster([self.host], port=self.ports[0], protocol_version=5,
                       auth_provider=PlainTextAuthProvider(role, password),
                       load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=self.settings.cassandra_local_dc))

    def _superuser_session(self):
        """(session, cluster, password) of a superuser login; StackError when no known password works."""
        for password in self.superuser_passwords():
            cluster = self._cluster(SUPERUSER, password)
            try:
                return cluster.connect(), cluster, password
            except NoHostAvailable:
                cluster.shutdown()
        raise StackError(f"cassandra: the superuser {SUPERUSER!r} logs in with neither the default password nor "
                         f"the one in {self.superuser_password_file}; `photos-stack wipe` starts afresh")


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
                client_listener="SASL_PLAINTEXT" if self.sasl else "PLAINTEXT",
                sasl=self.sasl_lines(),
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
        return self.java_command(self.heap, flags, "kafka.Kafka", str(self.config_file))

    @property
    def heap(self) -> str:
        return self.settings.kafka_heap

    async def answers(self) -> bool:
        """A Metadata request is answered, logged in as the app's user when the broker asks for SCRAM."""
        options = kafka_options(self.settings) if self.sasl else {}
        return await probes.kafka_answers(self.host, self.ports[0], **options)

    # --- PHOTOS_STACK_AUTH -----------------------------------------------------------------------------
    @property
    def sasl(self) -> bool:
        """Clients log in with SCRAM: PHOTOS_STACK_AUTH with PHOTOS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (TLS,
        SASL_SSL, is for production: infra/production/kafka-broker.properties)."""
        return self.settings.stack_auth and self.settings.kafka_security_protocol == "SASL_PLAINTEXT"

    @property
    def broker_password(self) -> str:
        """The broker's own SCRAM password (it logs in to itself on the one listener), derived from the app's so
        that the server.properties the settings make stay the same from one `up` to the next."""
        return hashlib.sha256(f"photos-stack broker:{self.settings.kafka_password}".encode()).hexdigest()

    def sasl_lines(self) -> str:
        if not self.sasl:
            return ""
        mechanism = self.settings.kafka_sasl_mechanism
        if not mechanism.startswith("SCRAM-"):
            raise StackError(f"PHOTOS_KAFKA_SASL_MECHANISM={mechanism}: photos-stack sets up SCRAM only")
        for value in (self.settings.kafka_username, self.settings.kafka_password):
            if not re.fullmatch(r"[A-Za-z0-9_.:@%+-]+", value):
                raise StackError("PHOTOS_KAFKA_USERNAME/PASSWORD: photos-stack writes them into Kafka's SCRAM and "
                                 "JAAS settings, where = , ] \" or a space would end them; use letters, digits "
                                 "and _.:@%+-")
        return configs.fill(configs.KAFKA_SASL, mechanism=mechanism, mechanism_lower=mechanism.lower(),
                            username=KAFKA_BROKER_USER, password=self.broker_password)

    def scram_arguments(self) -> list[str]:
        """StorageTool's --add-scram for the broker's user and the app's: KRaft keeps SCRAM credentials in the
        metadata log, so a node that must authenticate its first clients gets them when it is formatted."""
        if not self.sasl:
            return []
        mechanism = self.settings.kafka_sasl_mechanism
        users = ((KAFKA_BROKER_USER, self.broker_password),
                 (self.settings.kafka_username, self.settings.kafka_password))
        return [argument for name, password in users
                for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")]

    def _format_storage(self, flags: list[str]) -> None:
        """Give a fresh KRaft log dir its cluster id and this node's controller identity (and, with SASL, its
        users' SCRAM credentials)."""
        argv = self.java_command(
            "256M", flags, "kafka.tools.StorageTool",
            "format", "-c", str(self.config_file), *self.format_arguments(), *self.scram_arguments(),
        )  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")

    def format_arguments(self) -> list[str]:
        """A cluster of its own, with this node its only controller."""
        return ["-t", random_kafka_cluster_id(), "--standalone"]


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
                            log_file=self.main_log, auth=self.auth_lines())
        return {self.config_file: text}

    def auth_lines(self) -> str:
        """With PHOTOS_STACK_AUTH: the app's ACL user (and the default user off), or the default user's password."""
        if not self.settings.stack_auth:
            return ""
        username, password = self.settings.redis_username, self.settings.redis_password
        if not re.fullmatch(r"[A-Za-z0-9_.:@%+=-]+", password) or (username and not re.fullmatch(r"\w+", username)):
            raise StackError("PHOTOS_REDIS_USERNAME/PASSWORD: photos-stack writes them into redis.conf, where a "
                             "space, quote or # would end them early; use letters, digits and _.:@%+=-")
        if username:
            return configs.fill(configs.REDIS_ACL_USER, username=username, password=password)
        return configs.fill(configs.REDIS_REQUIREPASS, password=password)

    def prepare(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config_files()
        return [shutil.which("redis-server") or "redis-server", str(self.config_file)]

    async def answers(self) -> bool:
        """PING is answered, as the app's user when the server was configured with one."""
        if not self.settings.stack_auth:
            return await probes.redis_answers(self.host, self.ports[0])
        return await probes.redis_answers(self.host, self.ports[0], self.settings.redis_username or None,
                                          self.settings.redis_password)


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
