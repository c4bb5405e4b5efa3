"""Download what the local servers need: jars from Maven Central, programs from Debian.

Jars go to <cache_dir>/<name>-<version>/lib. A stamp file, written only after Maven
finished copying, records which pom the lib dir was built from: a missing or different
stamp (interrupted download, version bump) means the lib dir is rebuilt from scratch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from infra import StackError

# Kafka 4's pom declares no logging backend; without one the broker runs silently. Kafka is
# on slf4j 1.7, so the binding is log4j-slf4j-impl (log4j-slf4j2-impl would be ignored).
LOG4J_VERSION = "2.24.3"

POM_TEMPLATE = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>photos.stack</groupId>
  <artifactId>{name}-jars</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

DEPENDENCY_TEMPLATE = """\
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>{exclusions}
    </dependency>"""

EXCLUSION_TEMPLATE = """
        <exclusion>
          <groupId>{group}</groupId>
          <artifactId>*</artifactId>
        </exclusion>"""

# What pyspark's own jars already hold: the Spark Cassandra connector's dependencies of these groups would
# put a second Scala library, slf4j binding or commons jar on Spark's class path
PYSPARK_SHIPS = ("org.scala-lang", "org.scala-lang.modules", "org.slf4j", "io.dropwizard.metrics",
                 "org.apache.commons", "com.thoughtworks.paranamer")
SPARK_CASSANDRA_CONNECTOR = ("com.datastax.spark", "spark-cassandra-connector_2.12", "3.5.1")


@dataclass(frozen=True)
class JarBundle:
    """A set of Maven artifacts, with their transitive dependencies, in one lib dir."""

    name: str
    version: str
    artifacts: tuple[tuple[str, str, str], ...]  # (groupId, artifactId, version)
    cache_dir: Path
    # transitive dependencies of these groups are left out (what the program that loads the jars already has)
    exclude_groups: tuple[str, ...] = ()

    @property
    def home(self) -> Path:
        return self.cache_dir / f"{self.name}-{self.version}"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def stamp_file(self) -> Path:
        return self.home / "complete.stamp"

    def pom(self) -> str:
        exclusions = "".join(EXCLUSION_TEMPLATE.format(group=group) for group in self.exclude_groups)
        if exclusions:
            exclusions = f"\n      <exclusions>{exclusions}\n      </exclusions>"
        dependencies = "\n".join(
            DEPENDENCY_TEMPLATE.format(group=group, artifact=artifact, version=version, exclusions=exclusions)
            for group, artifact, version in self.artifacts
        )
        return POM_TEMPLATE.format(name=self.name, version=self.version, dependencies=dependencies)

    def _pom_digest(self) -> str:
        return hashlib.sha256(self.pom().encode()).hexdigest()

    def is_complete(self) -> bool:
        try:
            return self.stamp_file.read_text().strip() == self._pom_digest()
        except FileNotFoundError:
            return False

    def download(self, java_home: str) -> None:
        """Rebuild lib_dir with Maven, then write the stamp."""
        print(f"fetching {self.name} {self.version} jars with Maven ...", flush=True)
        started = time.monotonic()
        self.stamp_file.unlink(missing_ok=True)
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        self.home.mkdir(parents=True, exist_ok=True)
        pom_file = self.home / "pom.xml"
        pom_file.write_text(self.pom())
        argv = [
            "mvn", "-q", "-B", "-f", str(pom_file),
            "dependency:copy-dependencies", f"-DoutputDirectory={self.lib_dir}",
        ]  # fmt: skip
        result = subprocess.run(argv, env={**os.environ, "JAVA_HOME": java_home}, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"Maven could not fetch {self.name} jars:\n{result.stdout}{result.stderr}")
        self.stamp_file.write_text(self._pom_digest() + "\n")
        jars = len(list(self.lib_dir.glob("*.jar")))
        print(f"fetched {jars} {self.name} jars in {time.monotonic() - started:.1f} s", flush=True)


def cassandra_jars(settings: Settings) -> JarBundle:
    return JarBundle(
        name="cassandra",
        version=settings.cassandra_version,
        artifacts=(("org.apache.cassandra", "cassandra-all", settings.cassandra_version),),
        cache_dir=Path(settings.cache_dir),
    )


def kafka_jars(settings: Settings) -> JarBundle:
    return JarBundle(
        name="kafka",
        version=settings.kafka_version,
        artifacts=(
            ("org.apache.kafka", "kafka_2.13", settings.kafka_version),
            ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ),
        cache_dir=Path(settings.cache_dir),
    )


def kafka_tools_jars(settings: Settings) -> JarBundle:
    """Kafka's admin tools (MetadataQuorumCommand for a cluster's `photos-stack status`), which the broker's
    artifacts do not pull in: a bundle of their own, so the brokers' lib dir is never rebuilt for them."""
    return JarBundle(
        name="kafka-tools",
        version=settings.kafka_version,
        artifacts=(("org.apache.kafka", "kafka-tools", settings.kafka_version),),
        cache_dir=Path(settings.cache_dir),
    )


def spark_cassandra_jars(settings: Settings) -> JarBundle:
    """The Spark Cassandra connector and what it needs beyond pyspark's own jars (app/analytics/spark.py)."""
    group, artifact, version = SPARK_CASSANDRA_CONNECTOR
    return JarBundle(
        name="spark-cassandra-connector",
        version=version,
        artifacts=((group, artifact, version),),
        cache_dir=Path(settings.cache_dir),
        exclude_groups=PYSPARK_SHIPS,
    )


def is_installed(program: str) -> bool:
    """`program` is an absolute path that exists, or a name found on PATH."""
    return Path(program).is_file() if os.path.isabs(program) else shutil.which(program) is not None


def install_debian_packages(packages: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise StackError(f"not a Debian system: install {', '.join(packages)} yourself")
    print(f"installing {', '.join(packages)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(
                f"`{' '.join(argv)}` failed (root is needed; or install {' '.join(packages)} yourself):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )


def fetch(programs: dict[str, str], bundles: list[JarBundle], java_home: str) -> None:
    """Install the missing `programs` ({program: Debian package}), then the missing jar bundles."""
    missing_bundles = [bundle for bundle in bundles if not bundle.is_complete()]
    if missing_bundles:
        programs = {**programs, "mvn": "maven"}
    packages = sorted({package for program, package in programs.items() if not is_installed(program)})
    if packages:
        install_debian_packages(packages)
    for bundle in missing_bundles:
        bundle.download(java_home)
