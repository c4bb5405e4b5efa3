"""`photos-seed` against the real Cassandra and Redis (keyspace photos_test): the data set's shape, a
re-run that adds nothing, `--verify` passing and then catching a corrupted count, and one-line errors.

Each run uses a random seed, so its users, tags and ids are its own in the shared test keyspace. The
thresholds are lowered for the seeder's processes so a few hundred users cross them: celebrities,
several followers buckets, several likers buckets.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

from app.auth import Passwords, SessionStore
from app.media.store import LocalMediaStore
from app.storage.sessions import SessionTable
from loadtest.seed import SEED_PASSWORD
from loadtest.seeding.model import username

pytestmark = pytest.mark.integration

USERS = 300
SEED = random.randrange(10**6, 10**9)
ENV = {
    "PHOTOS_FEED_CELEBRITY_FOLLOWERS": "60",
    "PHOTOS_FOLLOWERS_PER_BUCKET": "40",
    "PHOTOS_LIKES_PER_BUCKET": "4",
}
REPO = Path(__file__).resolve().parents[2]


def seed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.seed", *args], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, **ENV, **(env or {})},
    )


def seed_args(out: Path) -> list[str]:
    return ["--users", str(USERS), "--seed", str(SEED), "--out", str(out), "--no-trending", "--no-progress"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """The data set, seeded once for the module."""
    out = tmp_path_factory.mktemp("seed")
    done = seed(*seed_args(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a new data set" in done.stdout
    return out


def dataset(out: Path) -> dict:
    return orjson.loads((out / "dataset.json").read_bytes())


def credentials(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "credentials.jsonl").read_bytes().splitlines()]


async def test_outputs_name_every_user_with_a_live_session(out, cass, settings):
    data = dataset(out)
    assert (data["keyspace"], data["seed"], data["users"]) == (settings.cassandra_keyspace, SEED, USERS)
    assert data["password"] == SEED_PASSWORD
    for key in ("post_ids", "story_ids", "hashtags", "username_prefixes", "celebrity_ids", "active_reader_ids"):
        assert data["sample"][key], key
        assert all(isinstance(value, str) for value in data["sample"][key]), key
    lines = credentials(out)
    assert len(lines) == USERS and all(set(line) == {"user_id", "username", "token"} for line in lines)
    assert lines[0]["username"] == username(SEED, 0)
    sessions = SessionStore(await SessionTable(cass).prepare(), settings.session_ttl_s)
    for line in random.sample(lines, 5):
        assert await sessions.user_id(line["token"]) == int(line["user_id"])
    # the documented password logs in: the stored hash verifies the way login verifies it
    row = await cass.one("SELECT password_hash FROM users WHERE user_id = %s", (int(lines[0]["user_id"]),))
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    try:
        assert await passwords.verify(row.password_hash, SEED_PASSWORD)
    finally:
        passwords.close()


async def test_the_graph_is_skewed_and_crosses_the_thresholds(out, cass):
    data = dataset(out)
    ids = [int(line["user_id"]) for line in credentials(out)]
    rows = [await cass.one("SELECT follower_count, following_count, follower_bucket FROM users WHERE user_id = %s",
                           (user_id,)) for user_id in ids]
    followers = sorted((r.follower_count or 0 for r in rows), reverse=True)
    assert followers[0] > 10 * followers[len(followers) // 2]  # a few celebrities, most accounts small
    assert all(1 <= r.following_count < USERS for r in rows)
    celebrities = {int(c) for c in data["sample"]["celebrity_ids"]}
    assert celebrities == {user_id for user_id, r in zip(ids, rows, strict=True) if (r.follower_count or 0) >= 60}
    for celebrity in celebrities:
        assert await cass.one("SELECT user_id FROM celebrities WHERE user_id = %s", (celebrity,)) is not None
    assert any((r.follower_bucket or 0) >= 1 for r in rows)  # followers spill into a second bucket of 40
    popular = int(data["sample"]["popular_post_ids"][0])
    post = await cass.one("SELECT like_count, like_bucket FROM posts WHERE post_id = %s", (popular,))
    assert post.like_count >= 4 and post.like_bucket == post.like_count // 4  # likers buckets of 4


async def test_a_post_media_key_is_a_real_jpeg(out, cass, settings):
    post_id = int(dataset(out)["sample"]["post_ids"][0])
    row = await cass.one("SELECT media FROM posts WHERE post_id = %s", (post_id,))
    store = LocalMediaStore(Path(settings.media_dir), settings.public_url)
    try:
        for variant in row.media.values():
            assert variant.key.startswith(f"p/{post_id}/")
            data = await store.get(variant.key)
            assert data is not None and data[:3] == b"\xff\xd8\xff"
            assert Image.open(io.BytesIO(data)).size == (variant.width, variant.height)
    finally:
        await store.close()


async def test_a_rerun_adds_nothing_then_verify_passes_and_catches_a_corrupted_count(out, cass):
    ids = [int(line["user_id"]) for line in credentials(out)]
    before = await _row_counts(cass, ids)
    tokens = credentials(out)
    again = seed(*seed_args(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "a re-run" in again.stdout and f"0 sessions created, {USERS} reused" in again.stdout
    assert credentials(out) == tokens
    assert await _row_counts(cass, ids) == before

    verified = seed("--seed", str(SEED), "--out", str(out), "--verify", "--sample", "60")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK" in verified.stdout and "feed_items" in verified.stdout and "like_count" in verified.stdout

    user0 = ids[0]  # --verify always checks user 0
    await cass.execute("UPDATE users SET follower_count = 987654 WHERE user_id = %s", (user0,))
    caught = seed("--seed", str(SEED), "--out", str(out), "--verify", "--sample", "10")
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "FAILED" in caught.stdout and f"user {user0}" in caught.stdout and "follower_count = 987654" in caught.stdout
    repaired = seed(*seed_args(out))  # seeding again writes the count the follow worker would
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert (await cass.one("SELECT follower_count FROM users WHERE user_id = %s", (user0,))).follower_count < 987654


async def _row_counts(cass, user_ids: list[int]) -> dict[str, int]:
    """Rows under the seeded users' partitions in the tables a re-run could add to."""
    counts = dict.fromkeys(("following", "feed_items", "story_tray", "affinity", "follower_buckets"), 0)
    for user_id in user_ids:
        for table in counts:
            key = "reader_id" if table == "story_tray" else "user_id"
            counts[table] += (await cass.one(f"SELECT COUNT(*) AS n FROM {table} WHERE {key} = %s", (user_id,))).n
    return counts


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--users", "1"], {}, "--users must be between 2"),
        (["--users", "10", "--keyspace", "no-such-keyspace!"], {}, "not a valid keyspace name"),
        (["--users", "10"], {"PHOTOS_CASSANDRA_PORT": "1"}, "cannot reach Cassandra"),
        (["--users", "10", "--keyspace", "photos_no_such_keyspace"], {}, "does not exist"),
        (["--users", "10", "--verify", "--seed", "999999999"], {}, "holds no data set of seed"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(args, env, message, tmp_path):
    done = seed(*args, "--out", str(tmp_path), env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


def test_an_unwritable_out_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = seed("--users", "10", "--out", str(blocker / "load"))
    assert done.returncode == 2 and "cannot write to --out" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
