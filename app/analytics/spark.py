"""Spark over this project's Cassandra: a session with the connector on its class path, and tables as DataFrames.

The connector's jars (infra/fetch.py `spark_cassandra_jars`) are fetched with Maven on first use into the
jar cache, like the stack's servers. The connection settings come from `Settings` (hosts, port, local DC,
credentials, consistency), so a job reads the keyspace the API writes. `local[2]` runs everything in this
process's JVM; `--master spark://host:7077` (or `yarn`, `k8s://...`) sends the same jars to a cluster's
executors (docs/analytics.md).

Reads of the ranking log restrict its partition key (day, shard) so the connector reads only those
partitions (a pushed-down `IN` on both columns); other tables are full scans, split by token range.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import Settings

DAY_MS = 86_400_000  # the ranking log's `day` is Unix ms // DAY_MS (UTC days)
LOCAL_MASTER = "local[2]"
CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"
LOCAL_SHUFFLE_PARTITIONS = 4  # Spark's default 200 makes every small local join pay for 200 tasks


class SparkSetupError(Exception):
    """The session cannot be built as asked (bad settings, the connector's jars cannot be fetched)."""


@dataclass(frozen=True)
class SparkOptions:
    master: str = LOCAL_MASTER
    app_name: str = "photos-analytics"
    conf: tuple[tuple[str, str], ...] = ()  # extra `--conf key=value` pairs, applied last


def connector_jars(settings: Settings) -> list[str]:
    """The connector's jar files, fetched with Maven if the cache does not hold them yet."""
    from infra import StackError
    from infra.fetch import fetch, spark_cassandra_jars

    bundle = spark_cassandra_jars(settings)
    try:
        fetch({}, [bundle], settings.java_home)
    except StackError as exc:
        raise SparkSetupError(str(exc)) from exc
    return sorted(str(jar) for jar in bundle.lib_dir.glob("*.jar"))


def cassandra_conf(settings: Settings) -> dict[str, str]:
    """The connector's settings for this deployment's Cassandra."""
    conf = {
        "spark.cassandra.connection.host": ",".join(settings.cassandra_hosts),
        "spark.cassandra.connection.port": str(settings.cassandra_port),
        "spark.cassandra.connection.localDC": settings.cassandra_local_dc,
        "spark.cassandra.connection.timeoutMS": str(int(settings.cassandra_connect_timeout_s * 1000)),
        "spark.cassandra.read.timeoutMS": str(int(settings.cassandra_request_timeout_s * 1000)),
        "spark.cassandra.input.consistency.level": settings.cassandra_consistency,
        "spark.cassandra.output.consistency.level": settings.cassandra_consistency,
    }
    if settings.cassandra_username:
        conf["spark.cassandra.auth.username"] = settings.cassandra_username
        conf["spark.cassandra.auth.password"] = settings.cassandra_password
    if settings.cassandra_tls:
        conf["spark.cassandra.connection.ssl.enabled"] = "true"
        if settings.cassandra_tls_cert_file or settings.cassandra_tls_ca_file:
            # the connector reads JKS/PKCS12 stores, not the PEM files the Python driver takes
            raise SparkSetupError(
                "PHOTOS_CASSANDRA_TLS_*_FILE are PEM files, which the Spark connector cannot read: convert them "
                "to a trust store and pass --conf spark.cassandra.connection.ssl.trustStore.path=... (and "
                ".keyStore.path for a client certificate); docs/analytics.md#on-a-real-cluster")
    return conf


def session_conf(settings: Settings, options: SparkOptions, jars: Sequence[str]) -> dict[str, str]:
    """Every setting the session is built with (pure: the tests read it)."""
    spark_dir = Path(settings.stack_dir) / "spark"
    conf = {
        **({"spark.jars": ",".join(jars)} if jars else {}),
        "spark.local.dir": str(spark_dir / "tmp"),
        "spark.sql.warehouse.dir": str(spark_dir / "warehouse"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        **cassandra_conf(settings),
    }
    if options.master.startswith("local"):
        conf["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(options.conf)
    return conf


def spark_session(settings: Settings, options: SparkOptions = SparkOptions()) -> Any:
    """A SparkSession on this deployment's Cassandra (blocking, ~4 s locally: never call it on an event loop)."""
    from pyspark.sql import SparkSession

    given = dict(options.conf)
    # jars named by --conf (the connector's coordinates in spark.jars.packages, or jar paths): no fetch here
    jars = [] if "spark.jars" in given or "spark.jars.packages" in given else connector_jars(settings)
    if options.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver's JVM binds loopback only
    if "JAVA_HOME" not in os.environ and Path(settings.java_home).is_dir():
        os.environ["JAVA_HOME"] = settings.java_home  # Spark 3.5 runs on Java 8/11/17, not a newer default
    Path(settings.stack_dir, "spark", "tmp").mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(options.master).appName(options.app_name)
    for key, value in session_conf(settings, options, jars).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_table(spark: Any, settings: Settings, table: str, *, days: Iterable[int] | None = None,
               shards: Iterable[int] | None = None) -> Any:
    """The table as a DataFrame; `days` (and `shards`, default all of settings.ranking_log_shards) restrict a
    ranking-log table's (day, shard) partition key, which the connector pushes down to Cassandra."""
    from pyspark.sql import functions as F

    frame = spark.read.format(CASSANDRA_FORMAT).options(keyspace=settings.cassandra_keyspace, table=table).load()
    if days is not None:
        shard_list = list(range(settings.ranking_log_shards)) if shards is None else list(shards)
        frame = frame.where(F.col("day").isin(list(days)) & F.col("shard").isin(shard_list))
    return frame


@dataclass(frozen=True)
class Window:
    """Impressions served in [from_ms, to_ms): whole UTC days `first_day` .. `last_day`."""

    first_day: int
    last_day: int

    @property
    def from_ms(self) -> int:
        return self.first_day * DAY_MS

    @property
    def to_ms(self) -> int:
        return (self.last_day + 1) * DAY_MS

    def impression_days(self) -> list[int]:
        return list(range(self.first_day, self.last_day + 1))

    def engagement_days(self, label_window_s: int) -> list[int]:
        """The days an engagement labelling one of the window's impressions can fall on."""
        extra = -(-label_window_s * 1000 // DAY_MS)  # the window reaches this many days past the last one
        return list(range(self.first_day, self.last_day + extra + 1))


class Stopwatch:
    """Named phases' wall-clock seconds, in the order they ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._started
        self._started = now
        return self.seconds[name]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small fixed-width table for a terminal: numeric columns right-aligned, floats with 4 decimals."""
    raw = [list(row) for row in rows]
    cells = [["" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in raw]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in raw if row[i] is not None) for i in range(len(headers))]

    def line(values: Sequence[str], align: bool) -> str:
        return "  ".join(v.rjust(w) if align and numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    return "\n".join([line(headers, False), line(["-" * w for w in widths], False),
                      *(line(row, True) for row in cells)])
