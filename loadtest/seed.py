"""`photos-seed`: a deterministic data set for load tests, written as the API and the stream workers would.

    photos-seed --users 10000 --seed 1 --keyspace photos_seed10k     # seed (the keyspace migrated first)
    photos-seed --users 10000 --seed 1 --keyspace photos_seed10k --verify

Seeding writes users and sessions, a Zipf-shaped follow graph, posts with real JPEG media, hashtags,
mentions, likes, comments and live stories spread over the last four weeks, and everything the stream
workers derive from them (counts, followers mirror, feeds of active readers, celebrity pulls, story
trays, affinity, the search index, trending), then `credentials.jsonl` and `dataset.json` in --out.
Every id is a pure function of the seed, the user count and a time anchor kept in the first user's id,
so a re-run with the same seed writes the same rows again and adds nothing. `--verify` checks a sample
of counts, feeds and trays against the truth tables and exits 1 on a mismatch. docs/seeding.md has the
distributions, the derived data and the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import sys
import time
from pathlib import Path

from argon2 import PasswordHasher
from cassandra import DriverException, OperationTimedOut
from cassandra.cluster import NoHostAvailable
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.auth import Passwords, SessionStore
from app.client_security import redis_options
from app.media.store import make_media_store
from app.settings import Settings
from app.storage import cassandra
from app.wiring import Storage
from loadtest.seeding import output
from loadtest.seeding.load import Loader
from loadtest.seeding.media import make_pool
from loadtest.seeding.model import Params, anchor_from_user0, build, username
from loadtest.seeding.statements import Statements
from loadtest.seeding.verify import Verifier, summary

SEED_PASSWORD = "photos-seed-password"  # every seeded account's password (docs/seeding.md)
KEYSPACE = re.compile(r"[a-z][a-z0-9_]{0,47}")
NEEDED_TABLES = ("users", "following", "posts", "feed_items", "post_likers", "hashtags", "story_tray", "affinity")
VERIFY_SAMPLE = 200


class SeedError(Exception):
    """Bad input or an unreachable dependency: reported as one line, exit status 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="photos-seed", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, help="accounts to seed (at least 2); --verify reads it from"
                                                  " dataset.json in --out when left out")
    parser.add_argument("--seed", type=int, default=1, help="the data set's seed (default 1)")
    parser.add_argument("--keyspace", help="keyspace (default PHOTOS_CASSANDRA_KEYSPACE); migrate it first")
    parser.add_argument("--out", help="where credentials.jsonl and dataset.json go (default .stack/load/)")
    parser.add_argument("--verify", action="store_true", help="check a seeded data set instead of seeding")
    parser.add_argument("--sample", type=int, default=VERIFY_SAMPLE,
                        help=f"--verify: random users and posts to check (default {VERIFY_SAMPLE})")
    parser.add_argument("--no-trending", action="store_true",
                        help="leave the trending state in Redis alone (shared test keyspaces)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


class _QuietKeyspaceWarning(logging.Filter):
    """Drops the server's note that prepared statements meet a session keyspace (app/storage/cassandra.py connects
    so for every tool; nothing the seeder does changes it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`USE <keyspace>` with prepared statements" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("cassandra.protocol").addFilter(_QuietKeyspaceWarning())
    try:
        return asyncio.run(run(args))
    except SeedError as exc:
        print(f"photos-seed: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photos-seed: interrupted (run it again with the same arguments to finish)", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise SeedError(str(exc)) from None
    keyspace = args.keyspace or settings.cassandra_keyspace
    if not KEYSPACE.fullmatch(keyspace):
        raise SeedError(f"not a valid keyspace name: {keyspace!r}")
    return dataclasses.replace(settings, cassandra_keyspace=keyspace)


async def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    keyspace = settings.cassandra_keyspace
    out_dir = Path(args.out) if args.out else Path(settings.stack_dir) / "load"
    users = args.users
    if users is None and args.verify:
        dataset = output.read_dataset(out_dir) or {}
        if (dataset.get("keyspace"), dataset.get("seed")) == (keyspace, args.seed):
            users = dataset.get("users")
    if users is None:
        raise SeedError("--users is required" + (f" (no dataset.json of seed {args.seed} in {out_dir})"
                                                 if args.verify else ""))
    params = Params.for_settings(users, args.seed, settings)
    try:
        params.check()
    except ValueError as exc:
        raise SeedError(str(exc)) from None
    if not args.verify:
        try:
            output.check_writable(out_dir)
        except OSError as exc:
            raise SeedError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from None
    cluster, cass = await _connect(settings)
    redis = Redis.from_url(settings.redis_url, socket_timeout=30.0, **redis_options(settings))
    try:
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            raise SeedError(f"cannot reach Redis at {settings.redis_url}: {exc}") from None
        if args.verify:
            storage = await Storage.prepare(cass)
            user0 = await storage.users.id_by_username(username(args.seed, 0))
            if user0 is None:
                raise SeedError(f"keyspace {keyspace} holds no data set of seed {args.seed} (no user"
                                f" {username(args.seed, 0)})")
            return await _verify(settings, storage, redis, params, anchor_from_user0(user0), args.sample)
        statements = await Statements().prepare(cass, settings.session_ttl_s)
        user0 = await statements.users.id_by_username(username(args.seed, 0))
        return await _seed(settings, cass, redis, statements, params, user0, out_dir, args)
    except (NoHostAvailable, OperationTimedOut) as exc:
        raise SeedError(f"Cassandra stopped answering: {exc}") from None
    except (RedisError, ConnectionError) as exc:
        raise SeedError(f"Redis stopped answering: {exc}") from None
    finally:
        await redis.aclose()
        await cassandra.shutdown(cluster)


async def _connect(settings: Settings):
    where = f"{','.join(settings.cassandra_hosts)}:{settings.cassandra_port}"
    keyspace = settings.cassandra_keyspace
    driver_log = logging.getLogger("cassandra")
    level = driver_log.level
    driver_log.setLevel(logging.CRITICAL)  # a failed attempt is reported below in one line, not a traceback
    try:
        cluster, cass = await cassandra.connect(settings)
    except (NoHostAvailable, DriverException, OSError) as exc:
        raise SeedError(f"cannot reach Cassandra at {where}: {_reason(exc)}") from None
    finally:
        driver_log.setLevel(level)
    found = cluster.metadata.keyspaces.get(keyspace)
    missing = [t for t in NEEDED_TABLES if found is None or t not in found.tables]
    if missing:
        await cassandra.shutdown(cluster)
        if found is None:
            raise SeedError(f"keyspace {keyspace} does not exist: create it with"
                            f" PHOTOS_CASSANDRA_KEYSPACE={keyspace} photos-migrate")
        raise SeedError(f"keyspace {keyspace} is not migrated (no {', '.join(missing)}): run"
                        f" PHOTOS_CASSANDRA_KEYSPACE={keyspace} photos-migrate")
    await asyncio.get_running_loop().run_in_executor(None, cass.session.set_keyspace, keyspace)
    return cluster, cass


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        return str(next(iter(errors.values())))
    return str(exc) or type(exc).__name__


async def _seed(settings: Settings, cass, redis: Redis, statements: Statements, params: Params, user0: int | None,
                out_dir: Path, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    anchor_ms = anchor_from_user0(user0) if user0 is not None else int(time.time() * 1000)
    print(f"photos-seed: keyspace {settings.cassandra_keyspace}, seed {params.seed}, {params.users:,} users,"
          f" anchor {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(anchor_ms / 1000))}"
          f" ({'found in the seeded user 0: a re-run' if user0 is not None else 'now: a new data set'})", flush=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    world = await asyncio.to_thread(build, params, anchor_ms)
    timings["model"] = time.perf_counter() - t
    _line("model", timings["model"],
          f"{params.users:,} users, {sum(len(f) for f in world.following):,} follows, {len(world.post_ids):,} posts,"
          f" {sum(len(x) for x in world.likers):,} likes, {len(world.comments):,} comments,"
          f" {len(world.stories):,} stories, {sum(world.active):,} active readers")
    previous = output.read_dataset(out_dir) if user0 is not None else None
    same_set = (settings.cassandra_keyspace, params.seed, anchor_ms)
    if previous and (previous.get("keyspace"), previous.get("seed"), previous.get("anchor_ms")) == same_set and (
            previous.get("params") != output.params_json(params)):
        print("photos-seed: warning: this data set was seeded with other parameters (dataset.json): rows of the"
              " old model this one does not rewrite stay; drop the keyspace to start afresh", flush=True)
    t = time.perf_counter()
    store = make_media_store(settings)
    try:
        pool, processed = await make_pool(store, settings)
        timings["pool"] = time.perf_counter() - t
        how = "processed by app/media/processing.py and stored" if processed else "read back (processed earlier)"
        _line("pool", timings["pool"], f"{len(pool)} images {how}")
        sessions = SessionStore(statements.sessions, settings.session_ttl_s)
        tokens = await output.previous_tokens(out_dir, world, settings.cassandra_keyspace, sessions)
        loader = Loader(settings, cass, redis, world, statements, store, pool,
                        progress=sys.stderr.isatty() and not args.no_progress, trending=not args.no_trending,
                        tokens=tokens)
        report = await loader.run(lambda salt: _password_hash(settings, salt))
    finally:
        await store.close()
    for phase in report.phases:
        timings[phase.name] = phase.seconds
        _line(phase.name, phase.seconds, phase.detail)
    if report.writes is not None:
        tables = sorted(report.writes.by_table.items(), key=lambda item: -item[1][0] * 4 - item[1][1])
        print("  by table (partitions/rows): " + ", ".join(f"{t} {p:,}/{r:,}" for t, (p, r) in tables), flush=True)
    t = time.perf_counter()
    credentials = output.write_credentials(out_dir, world, report.tokens)
    timings["total"] = time.perf_counter() - started
    dataset = output.write_dataset(
        out_dir, world, settings.cassandra_keyspace, SEED_PASSWORD, report,
        {name: getattr(settings, name) for name in (
            "feed_celebrity_followers", "feed_max_entries", "feed_ttl_days", "feed_inactive_after_days",
            "max_following", "followers_per_bucket", "likes_per_bucket", "story_ttl_s", "session_ttl_s")},
        {name: round(seconds, 2) for name, seconds in timings.items()})
    _line("output", time.perf_counter() - t, f"{credentials} ({len(report.tokens):,} sessions), {dataset.name}")
    print(f"photos-seed: {params.users:,} users seeded in {time.perf_counter() - started:.1f} s;"
          f" every account's password is {SEED_PASSWORD!r}", flush=True)
    return 0


async def _password_hash(settings: Settings, salt: bytes) -> str:
    """The one argon2id hash every seeded account shares, with the API's parameters (app/auth.py), checked
    by the API's own verification so the documented password logs in."""
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                            parallelism=1)
    password_hash = await asyncio.to_thread(hasher.hash, SEED_PASSWORD, salt=salt)
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    try:
        if not await passwords.verify(password_hash, SEED_PASSWORD):
            raise RuntimeError("the seeded password hash does not verify")
    finally:
        passwords.close()
    return password_hash


async def _verify(settings: Settings, storage: Storage, redis: Redis, params: Params, anchor_ms: int,
                  sample: int) -> int:
    started = time.perf_counter()
    print(f"photos-seed --verify: keyspace {settings.cassandra_keyspace}, seed {params.seed}, {params.users:,} users,"
          f" sampling {sample} users and posts", flush=True)
    world = await asyncio.to_thread(build, params, anchor_ms)
    store = make_media_store(settings)
    try:
        checks = await Verifier(settings, storage, redis, world, store, sample).run()
    finally:
        await store.close()
    print("checked:")
    for line in summary(checks):
        print(line)
    elapsed = time.perf_counter() - started
    if checks.failures:
        print(f"photos-seed --verify: FAILED: {len(checks.failures)} mismatch(es) in {sum(checks.counts.values()):,}"
              f" checks ({elapsed:.1f} s):", flush=True)
        for failure in checks.failures[:20]:
            print(f"  {failure}")
        if len(checks.failures) > 20:
            print(f"  ... and {len(checks.failures) - 20} more")
        return 1
    print(f"photos-seed --verify: OK, {sum(checks.counts.values()):,} checks passed ({elapsed:.1f} s)", flush=True)
    return 0


def _line(name: str, seconds: float, detail: str) -> None:
    print(f"  {name:<11}{seconds:>7.1f} s  {detail}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
