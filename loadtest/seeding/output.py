"""What load generators read instead of querying: `credentials.jsonl` and `dataset.json` (ids as strings).

- `credentials.jsonl`: one `{"user_id", "username", "token"}` per seeded user, in user order; each token
  is a live session (app/auth.py's SessionStore rows, as a login makes them).
- `dataset.json`: the seed parameters and counts, the password every seeded account shares, and samples
  to pick targets from (users, active readers, celebrities, posts, stories, hashtags, name prefixes).

A re-run with the same seed into the same keyspace reuses the tokens of the previous run when they are
still valid sessions, so it creates no sessions twice.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from app.auth import SessionStore
from loadtest.seeding.load import LoadReport, at
from loadtest.seeding.model import Params, World

CREDENTIALS = "credentials.jsonl"
DATASET = "dataset.json"
SAMPLE = 1_000
TOKEN_CHECKS = 50


def check_writable(out_dir: Path) -> None:
    """OSError (with the reason) unless files can be written in `out_dir` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / f".photos-seed-{os.getpid()}.probe"
    probe.write_bytes(b"")
    probe.unlink()


def read_dataset(out_dir: Path) -> dict | None:
    try:
        return orjson.loads((out_dir / DATASET).read_bytes())
    except (OSError, ValueError):
        return None


async def previous_tokens(out_dir: Path, world: World, keyspace: str, sessions: SessionStore) -> dict[int, str]:
    """The tokens of the last run of this same data set (same keyspace, seed, users and anchor), by user
    index, if a sample of them are still live sessions of their users; else none."""
    dataset = read_dataset(out_dir)
    p = world.params
    if not dataset or (dataset.get("keyspace"), dataset.get("seed"), dataset.get("users"),
                       dataset.get("anchor_ms")) != (keyspace, p.seed, p.users, world.anchor_ms):
        return {}
    index_of = {str(user_id): i for i, user_id in enumerate(world.user_ids)}
    tokens: dict[int, str] = {}
    try:
        for line in (out_dir / CREDENTIALS).read_bytes().splitlines():
            entry = orjson.loads(line)
            user = index_of.get(entry.get("user_id"))
            if user is not None and isinstance(entry.get("token"), str):
                tokens[user] = entry["token"]
    except (OSError, ValueError):
        return {}
    sample = random.Random(p.seed).sample(sorted(tokens), min(TOKEN_CHECKS, len(tokens)))
    for user in sample:
        if await sessions.user_id(tokens[user]) != world.user_ids[user]:
            return {}
    return tokens


def params_json(params: Params) -> dict:
    """The model's parameters as dataset.json records them."""
    return orjson.loads(orjson.dumps(dataclasses.asdict(params)))


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_credentials(out_dir: Path, world: World, tokens: dict[int, str]) -> Path:
    lines = [
        orjson.dumps({"user_id": str(world.user_ids[u]), "username": world.usernames[u], "token": tokens[u]})
        for u in range(world.params.users) if u in tokens
    ]
    path = out_dir / CREDENTIALS
    _write_atomically(path, b"\n".join(lines) + b"\n")
    return path


def _ids(values) -> list[str]:
    return [str(v) for v in values]


def write_dataset(out_dir: Path, world: World, keyspace: str, password: str, report: LoadReport,
                  settings_used: dict, timings: dict) -> Path:
    p = world.params
    rng = random.Random(f"photos-seed-sample:{p.seed}")
    users = range(p.users)
    sampled_users = sorted(rng.sample(users, min(SAMPLE, p.users)))
    active = [u for u in users if world.active[u]]
    followers = [world.follower_count(u) for u in users]
    by_popularity = sorted(users, key=lambda u: -followers[u])
    posts = range(len(world.post_ids))
    tag_uses = Counter(tag for tags in world.post_tags for tag in tags)
    live = [s for s in world.stories if s.expires_ms > int(datetime.now(UTC).timestamp() * 1000)]
    prefixes = sorted({name[:n] for name in world.usernames for n in (1, 2, 3)})
    popular = sorted(posts, key=lambda i: -len(world.likers[i]))
    top_level = [c.comment_id for c in world.comments if c.parent_id is None]
    dataset = {
        "version": 1,
        "keyspace": keyspace,
        "seed": p.seed,
        "users": p.users,
        "anchor_ms": world.anchor_ms,
        "anchor": at(world.anchor_ms).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "password": password,
        "username_pattern": f"<first name><user index>_s{p.seed}",
        "params": params_json(p),
        "settings": settings_used,
        "counts": {
            "users": p.users,
            "follows": sum(len(f) for f in world.following),
            "posts": len(world.post_ids),
            "likes": sum(len(likers) for likers in world.likers),
            "comments": len(world.comments),
            "stories_live": len(live),
            "active_readers": len(active),
            "celebrities": sum(1 for u in users if world.is_celebrity(u)),
            "hashtags": len(tag_uses),
            "feed_rows": report.feed_rows,
            "tray_rows": report.tray_rows,
            "sessions": len(report.tokens),
        },
        "files": {"credentials": CREDENTIALS},
        "sample": {
            "user_ids": _ids(world.user_ids[u] for u in sampled_users),
            "usernames": [world.usernames[u] for u in sampled_users],
            "username_prefixes": prefixes,
            "active_reader_ids": _ids(world.user_ids[u] for u in sorted(rng.sample(active, min(SAMPLE, len(active))))),
            "top_user_ids": _ids(world.user_ids[u] for u in by_popularity[:20]),
            "celebrity_ids": _ids(world.user_ids[u] for u in users if world.is_celebrity(u)),
            "post_ids": _ids(world.post_ids[i] for i in sorted(rng.sample(posts, min(SAMPLE, len(posts))))),
            "recent_post_ids": _ids(reversed(world.post_ids[-200:])),
            "popular_post_ids": _ids(world.post_ids[i] for i in popular[:100]),
            "comment_ids": _ids(sorted(rng.sample(top_level, min(SAMPLE, len(top_level))))),
            "story_ids": _ids(s.story_id for s in rng.sample(live, min(SAMPLE, len(live)))),
            "story_author_ids": _ids(sorted({world.user_ids[s.author] for s in live})[:SAMPLE]),
            "hashtags": [world.tag_name(tag) for tag, _ in tag_uses.most_common(100)],
            "hashtag_prefixes": sorted({world.tag_name(tag)[:n] for tag in tag_uses for n in (1, 2, 3)}),
        },
        "timings": timings,
    }
    path = out_dir / DATASET
    _write_atomically(path, orjson.dumps(dataset, option=orjson.OPT_INDENT_2) + b"\n")
    return path
