"""The ledger of a load run's writes: what each account asked for and what it was told.

Every Locust user acts as one account, one request at a time, so per account the order of its requests is
known. `LedgerWriter` appends one JSON line per answered (or unanswered) write request to
`<directory>/ledger-<pid>.jsonl`, one file per process, flushed per record: a load generator that crashes
keeps every record it wrote. `read_ledger` folds all files of a directory into `Ledger`, what the audit
(loadtest/audit.py) holds Cassandra to.

A record: `t` (time.time() when the answer came), `op`, `user` (the acting account), `status` (the HTTP
status; 0 when no answer came: a connection error or a timeout) and the op's fields:

    like     post, wanted (PUT: true, DELETE: false), liked (the 200 answer's `liked`)
    follow   target, wanted
    comment  post, comment (the 201 answer's id)
    upload   post (the 201 answer's id), hashtags (lower-cased and de-duplicated as the API extracts them)
    story    story (the 201 answer's id)
    view     story

Folding rules, per account in the order of its records:
- a 2xx answer acknowledges a state: a like pair's state is the answer's `liked` (or what was asked when
  the answer had none), a follow pair's state what was asked (204);
- any other answer (0, 4xx, 5xx) leaves the pair unknown (None): the request may or may not have landed.
  The one exception: a request that asked for the state the pair is already known to have leaves it
  known, because whatever part of it landed can only write that same state again;
- a later acknowledgement ends an unknown state: the unanswered request is taken to have finished (landed or
  not) before the next request of its account was answered. Likes are ordered by their Redis timestamps
  whatever the arrival order; a follow still in flight after its client gave up (a client timeout shorter
  than the API's own bounded waits) could land later, which the audit would report as a lost state;
- an account whose records are in more than one file was driven by two processes at once: the order of its
  requests is not known, so all its like and follow states are unknown (`Ledger.shared_accounts`). Two Locust
  users of one process sharing an account cannot be seen here: give each user its own account;
- comments, uploads, stories and views are acknowledged by their 2xx answer (201, 201, 201, 204); one
  whose answer was anything else may or may not exist, and is not claimed.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.posts.text import hashtags as caption_hashtags

ACKNOWLEDGED = {"like": 200, "follow": 204, "comment": 201, "upload": 201, "story": 201, "view": 204}


def _id(value: Any) -> int | None:
    """An id as the API sends it (a string) or as a caller kept it (an int); None stays None."""
    return None if value is None else int(value)


def normalised_hashtags(tags: list[str]) -> list[str]:
    """The tags as the API stores them for a caption holding them (app/posts/text.py): lower-cased,
    de-duplicated in order, all-digit tags dropped. Accepts tags with or without their '#'."""
    return caption_hashtags(" ".join(f"#{tag.lstrip('#')}" for tag in tags))


class LedgerWriter:
    """Appends this process's records to `<directory>/ledger-<pid>.jsonl`, one flushed line each."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._pid: int | None = None
        self._file: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.directory / f"ledger-{os.getpid()}.jsonl"

    def _out(self) -> IO[str]:
        if self._pid != os.getpid():  # a forked process (Locust --processes) writes its own file
            self._file = open(self.path, "a", buffering=1, encoding="utf-8")
            self._pid = os.getpid()
        assert self._file is not None
        return self._file

    def record(self, op: str, user_id: int | str, status: int, **fields: Any) -> None:
        line = {"t": time.time(), "op": op, "user": int(user_id), "status": int(status), **fields}
        out = self._out()
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def like(self, user_id, post_id, wanted: bool, status: int, liked: bool | None = None) -> None:
        self.record("like", user_id, status, post=int(post_id), wanted=bool(wanted), liked=liked)

    def follow(self, user_id, target_id, wanted: bool, status: int) -> None:
        self.record("follow", user_id, status, target=int(target_id), wanted=bool(wanted))

    def comment(self, user_id, post_id, status: int, comment_id=None) -> None:
        self.record("comment", user_id, status, post=int(post_id), comment=_id(comment_id))

    def upload(self, user_id, status: int, post_id, hashtags: list[str]) -> None:
        self.record("upload", user_id, status, post=_id(post_id), hashtags=normalised_hashtags(list(hashtags)))

    def story(self, user_id, status: int, story_id) -> None:
        self.record("story", user_id, status, story=_id(story_id))

    def view(self, user_id, story_id, status: int) -> None:
        self.record("view", user_id, status, story=int(story_id))


@dataclass(frozen=True)
class Upload:
    post_id: int
    author_id: int
    hashtags: tuple[str, ...]
    t: float  # when the 201 came


@dataclass(frozen=True)
class Story:
    story_id: int
    author_id: int
    t: float  # when the 201 came


@dataclass
class Ledger:
    """What the load was told, folded per account (see the module docstring for the rules)."""

    likes: dict[tuple[int, int], bool | None] = field(default_factory=dict)  # (user, post) -> state
    follows: dict[tuple[int, int], bool | None] = field(default_factory=dict)  # (follower, followee) -> state
    # (follower, followee) -> since when the pair has been acknowledged following without any request that
    # might have changed it (only pairs whose final state is acknowledged following)
    follow_since: dict[tuple[int, int], float] = field(default_factory=dict)
    comments: dict[int, list[int]] = field(default_factory=dict)  # post -> acknowledged comment ids
    comment_touches: dict[int, set[int]] = field(default_factory=dict)  # post -> users who tried to comment
    uploads: dict[int, Upload] = field(default_factory=dict)  # post id -> the acknowledged upload
    stories: dict[int, Story] = field(default_factory=dict)  # story id -> the acknowledged story
    views: set[tuple[int, int]] = field(default_factory=set)  # acknowledged (story, viewer)
    view_touches: dict[int, set[int]] = field(default_factory=dict)  # story -> users who tried to view it
    statuses: Counter = field(default_factory=Counter)  # (op, status) -> answers
    records: int = 0
    truncated: int = 0  # lines that could not be read (a writer killed mid-line)
    shared_accounts: set[int] = field(default_factory=set)  # accounts written by more than one process

    # --- what the audit asks --------------------------------------------------------------------
    def touched_posts(self) -> set[int]:
        """Posts the run liked, unliked or commented on."""
        return {post for _, post in self.likes} | set(self.comment_touches)

    def like_users(self, post_id: int) -> set[int]:
        return {user for user, post in self.likes if post == post_id}

    def follow_users(self) -> set[int]:
        """Users on either side of a follow edge the run touched."""
        return {user for pair in self.follows for user in pair}

    def stable_followers(self, author_id: int, before: float) -> set[int]:
        """Followers of `author_id` acknowledged before `before` and unchanged since."""
        return {f for (f, a), since in self.follow_since.items() if a == author_id and since < before}

    def acknowledged(self, op: str) -> int:
        return self.statuses[op, ACKNOWLEDGED[op]]

    # --- folding ----------------------------------------------------------------------------------
    def forget_order_of(self, users: set[int]) -> None:
        """The like and follow states of these accounts become unknown (their requests' order is not known)."""
        self.shared_accounts |= users
        for states in (self.likes, self.follows):
            for pair in states:
                if pair[0] in users:
                    states[pair] = None
        for pair in [pair for pair in self.follow_since if pair[0] in users]:
            del self.follow_since[pair]

    def apply(self, record: dict) -> None:
        op, user, status, t = record["op"], int(record["user"]), int(record["status"]), float(record["t"])
        ok = status == ACKNOWLEDGED.get(op)
        self.statuses[op, status] += 1
        self.records += 1
        if op == "like":
            wanted = bool(record["wanted"])
            liked = record.get("liked")
            self.likes[user, int(record["post"])] = _fold(
                self.likes.get((user, int(record["post"]))), wanted, ok, wanted if liked is None else bool(liked)
            )
        elif op == "follow":
            self._follow(user, int(record["target"]), bool(record["wanted"]), ok, t)
        elif op == "comment":
            post = int(record["post"])
            self.comment_touches.setdefault(post, set()).add(user)
            if ok and record.get("comment") is not None:
                self.comments.setdefault(post, []).append(int(record["comment"]))
        elif op == "upload":
            if ok and record.get("post") is not None:
                post = int(record["post"])
                self.uploads[post] = Upload(post, user, tuple(record.get("hashtags") or ()), t)
        elif op == "story":
            if ok and record.get("story") is not None:
                story = int(record["story"])
                self.stories[story] = Story(story, user, t)
        elif op == "view":
            story = int(record["story"])
            self.view_touches.setdefault(story, set()).add(user)
            if ok:
                self.views.add((story, user))
        else:
            raise ValueError(f"unknown ledger op {op!r}")

    def _follow(self, user: int, target: int, wanted: bool, ok: bool, t: float) -> None:
        pair = (user, target)
        before = self.follows.get(pair)
        after = _fold(before, wanted, ok, wanted)
        self.follows[pair] = after
        if after is not True:
            self.follow_since.pop(pair, None)
        elif before is not True:
            self.follow_since[pair] = t
        # known following before and after: unchanged, `since` stays


def _fold(before: bool | None, wanted: bool, ok: bool, answered: bool) -> bool | None:
    """The state of a pair after one request: the answer's when acknowledged; else unknown, unless the request
    asked for the state the pair already had (then nothing it may have done changes it)."""
    if ok:
        return answered
    if before is not None and before == wanted:
        return before
    return None


def read_files(directory: Path | str) -> tuple[list[list[dict]], int]:
    """The records of each ledger-*.jsonl under `directory`, each file in its own order (one process's order of
    writing), and how many lines could not be read (a line cut short by a crash)."""
    files: list[list[dict]] = []
    bad = 0
    for path in sorted(Path(directory).glob("ledger-*.jsonl")):
        records = []
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                record = _parse(line)
                if record is not None:
                    records.append(record)
                elif line.strip():
                    bad += 1
        files.append(records)
    return files, bad


def read_records(directory: Path | str) -> tuple[list[dict], int]:
    """Every record under `directory`, the files merged by `t`, and how many lines could not be read."""
    files, bad = read_files(directory)
    return _merged(files), bad


def _merged(files: list[list[dict]]) -> list[dict]:
    return list(heapq.merge(*files, key=lambda record: record["t"]))


def _parse(line: str) -> dict | None:
    try:
        record = json.loads(line)
        record["t"] = float(record["t"])
        record["user"], record["status"] = int(record["user"]), int(record["status"])
    except (ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record.get("op"), str) else None


def read_ledger(directory: Path | str) -> Ledger:
    """The ledger of every file in `directory`, folded in time order (per account that is its request order).

    An account found in more than one file was driven by more than one process at once (a misconfigured
    load), so the order of its requests is not known: its like and follow states are all unknown."""
    files, bad = read_files(directory)
    ledger = Ledger(truncated=bad)
    for record in _merged(files):
        ledger.apply(record)
    writers: Counter = Counter(user for records in files for user in {r["user"] for r in records})
    ledger.forget_order_of({user for user, n in writers.items() if n > 1})
    return ledger
