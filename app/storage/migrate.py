"""Apply the numbered CQL migrations in cql/migrations, once each, in order, and create the Kafka topics.

`photos-migrate` creates the keyspace (replication from settings), records every
applied file with its checksum in `schema_migrations`, and refuses to run when an
already-applied file has changed: fix forward with a new file instead.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

import cql
from app.events import ensure_topics
from app.settings import Settings
from app.storage.cassandra import make_cluster

log = logging.getLogger("photos.migrate")
MIGRATIONS_DIR = Path(cql.__file__).parent / "migrations"  # shipped as package data
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.cql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise SystemExit(f"migration file name must look like 0001_name.cql: {path.name}")
        text = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(split_statements(text)),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise SystemExit("two migration files share a version number")
    return migrations


def split_statements(text: str) -> list[str]:
    """Statements of a .cql file: `--` comments dropped, split on semicolons ending a line."""
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    statements, current = [], []
    for line in lines:
        if not line.strip():
            continue
        current.append(line)
        if line.endswith(";"):
            statements.append("\n".join(current).rstrip(";").strip())
            current = []
    if current:
        raise SystemExit("a .cql migration ends without a semicolon")
    return statements


def create_keyspace(session: Session, settings: Settings, keyspace: str) -> None:
    """The keyspace with the settings' replication, unless it exists."""
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {settings.cassandra_replication}")


def migrate(session: Session, settings: Settings, keyspace: str, migrations: list[Migration]) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    create_keyspace(session, settings, keyspace)
    session.set_keyspace(keyspace)
    session.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
    )
    applied = {row.version: row for row in session.execute("SELECT version, name, checksum FROM schema_migrations")}
    done = []
    for migration in migrations:
        previous = applied.get(migration.version)
        if previous is not None:
            if previous.checksum != migration.checksum:
                raise SystemExit(
                    f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                    "add a new migration instead"
                )
            continue
        started = time.monotonic()
        for statement in migration.statements:
            session.execute(statement, timeout=120)
        session.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
            " VALUES (%s, %s, %s, toTimestamp(now()))",
            (migration.version, migration.name, migration.checksum),
        )
        log.info("applied %04d_%s in %.1f s", migration.version, migration.name, time.monotonic() - started)
        done.append(migration.version)
    return done


def prepare_storage(settings: Settings, keyspace: str | None = None) -> list[int]:
    """Migrate the keyspace and create the Kafka topics: everything a fresh system needs before it
    runs. Returns the migrations applied. (Tests and benchmarks call this for their own keyspace.)"""
    cluster = make_cluster(settings)
    try:
        done = migrate(cluster.connect(), settings, keyspace or settings.cassandra_keyspace, load_migrations())
    finally:
        cluster.shutdown()
    asyncio.run(ensure_topics(settings))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--keyspace", help="keyspace to migrate (default: settings.cassandra_keyspace)")
    parser.add_argument("--skip-kafka", action="store_true", help="do not create the Kafka topics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    keyspace = args.keyspace or settings.cassandra_keyspace
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", keyspace):
        raise SystemExit(f"not a valid keyspace name: {keyspace!r}")
    cluster = make_cluster(settings)
    try:
        session = cluster.connect()
        done = migrate(session, settings, keyspace, load_migrations())
    finally:
        cluster.shutdown()
    log.info("keyspace %s: %s", keyspace, f"applied {len(done)} migration(s)" if done else "up to date")
    if not args.skip_kafka:
        created = asyncio.run(ensure_topics(settings))
        log.info("kafka topics: %s", f"created {', '.join(created)}" if created else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
