"""Locust scenarios of the seed's traffic: what users of the photo network do, in the traffic model's proportions.

Run it through `python -m loadtest.run` (load shapes, SLOs, the cost profile), or with Locust itself:

    .venv/bin/locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --headless -u 50 -r 10 -t 1m

Every request is one task of loadtest/traffic.toml (`[tasks.*]`), named by its route template
(`GET /v1/posts/{post_id}`), so Locust's statistics, the SLOs and the API's per-route metrics line up.

- **One user class, weighted tasks.** Each simulated user draws its next task from the mix
  (PHOTOS_LOAD_MIX, default `seed`: the traffic model's rates). A class per behaviour would leave the
  rare ones (uploads are 0.05% of the seed's requests) without a single user below a few thousand users.
- **Paced, so load is offered, not merely answered.** Each user runs PHOTOS_LOAD_USER_RATE tasks a
  second (default 1): the offered load is users x rate, whatever the latency, until users cannot keep up.
- **Real sessions.** Tokens come from the seeder's credentials file (PHOTOS_LOAD_CREDENTIALS, default
  `.stack/load/credentials.jsonl`: one `{"user_id", "username", "token"}` per line). A user keeps one
  credential; with Locust's `--processes` or master/worker mode the master gives each worker its own
  slice of the file, so no two workers act as the same account.
- **A ledger and a request log, when asked.** With PHOTOS_LOAD_LEDGER=DIR every write and its answer is
  appended to DIR/ledger-<pid>.jsonl (loadtest/ledger.py), which loadtest/audit.py checks against
  Cassandra; with PHOTOS_LOAD_REQUEST_LOG=DIR every request's start, route, status and latency goes to
  DIR/requests-<pid>.jsonl, which the fault run (loadtest/chaos.py) cuts into windows.
- **Targets come from responses**, as a client's would: posts from feeds and grids, stories from the
  tray, hashtags from posts, accounts from the credentials file. Nothing assumes a local stack.
  A task whose targets are not known yet (no post seen so far) makes the request that finds some
  instead (a feed page, the tray), so early in a run the mix leans a little towards those.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import random
import sys
import time
import uuid
from collections import deque
from pathlib import Path

from locust import FastHttpUser, constant_throughput, events, task
from locust.runners import MasterRunner, WorkerRunner
from PIL import Image, ImageFilter

from loadtest import load_state
from loadtest import traffic as traffic_model
from loadtest.credentials import LoadSetupError, credentials_path, load_credentials
from loadtest.ledger import LedgerWriter

log = logging.getLogger("photos.load")
POOL_SIZE = 500  # targets remembered per worker process (posts, stories, hashtags)
PHOTO_POOL = 4  # distinct JPEGs uploaded, made once per worker process


def _setup() -> tuple[traffic_model.Traffic, dict[str, float], list[dict], float]:
    traffic = traffic_model.load(os.environ.get("PHOTOS_LOAD_TRAFFIC"))
    weights = traffic.weights(os.environ.get("PHOTOS_LOAD_MIX", "seed"))
    credentials = load_credentials(credentials_path())
    rate = float(os.environ.get("PHOTOS_LOAD_USER_RATE", "1"))
    if rate <= 0:
        raise LoadSetupError(f"PHOTOS_LOAD_USER_RATE must be positive, not {rate}")
    return traffic, weights, credentials, rate


try:
    TRAFFIC, WEIGHTS, CREDENTIALS, USER_RATE = _setup()
except (LoadSetupError, traffic_model.TrafficError) as error:
    sys.exit(f"loadtest: {error}")
FEED_PAGE = int(TRAFFIC.model.get("feed_page_size", 10))
FEED_PAGES = int(TRAFFIC.model.get("feed_pages_per_load", 3))


class Pool:
    """A bounded set of recently seen targets, shared by the users of one process."""

    def __init__(self) -> None:
        self.items: deque = deque(maxlen=POOL_SIZE)
        self.known: set = set()

    def add(self, item) -> None:
        if item in self.known:
            return
        if len(self.items) == self.items.maxlen:
            self.known.discard(self.items[0])
        self.items.append(item)
        self.known.add(item)

    def pick(self):
        return random.choice(self.items) if self.items else None


POSTS = Pool()  # post ids
STORIES = Pool()  # (story id, author id)
STORY_AUTHORS = Pool()  # author ids with live stories
HASHTAGS = Pool()


class Credentials:
    """This process's share of the credentials file, handed out one per user."""

    def __init__(self, entries: list[dict]) -> None:
        self.set_slice(entries)

    def set_slice(self, entries: list[dict]) -> None:
        self.entries = entries
        self._next = itertools.cycle(random.Random(os.getpid()).sample(entries, len(entries)))

    def take(self) -> dict:
        return next(self._next)


MINE = Credentials(CREDENTIALS)


class Recorders:
    """This process's ledger and request log (each opened on first use: a forked worker opens its own)."""

    def __init__(self) -> None:
        self.ledger_dir = os.environ.get("PHOTOS_LOAD_LEDGER")
        self.requests_dir = os.environ.get("PHOTOS_LOAD_REQUEST_LOG")
        self._ledger: LedgerWriter | None = None
        self._requests = None
        self._pid = 0

    def _reopen_after_fork(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._ledger, self._requests = os.getpid(), None, None

    @property
    def ledger(self) -> LedgerWriter | None:
        self._reopen_after_fork()
        if self._ledger is None and self.ledger_dir:
            self._ledger = LedgerWriter(Path(self.ledger_dir))
        return self._ledger

    def request(self, started: float, name: str, status: int, ms: float) -> None:
        self._reopen_after_fork()
        if self._requests is None:
            Path(self.requests_dir).mkdir(parents=True, exist_ok=True)
            self._requests = open(Path(self.requests_dir) / f"requests-{os.getpid()}.jsonl", "a", buffering=1)
        self._requests.write(f'[{started:.3f},"{name}",{status},{ms:.1f}]\n')


RECORDERS = Recorders()


@events.request.add_listener
def on_request(name, response_time, response=None, start_time=None, **_kwargs) -> None:
    if RECORDERS.requests_dir:
        status = getattr(response, "status_code", 0) or 0
        RECORDERS.request(start_time or time.time() - response_time / 1000, name, status, response_time)


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        def take_slice(environment, msg, **_kw) -> None:  # Locust calls listeners with these keywords
            index, count = msg.data["index"], msg.data["of"]
            MINE.set_slice(CREDENTIALS[index::count] or CREDENTIALS)
            log.info("worker %s of %s: %s credentials", index + 1, count, len(MINE.entries))

        runner.register_message("photos_credentials_slice", take_slice)


@events.test_start.add_listener
def on_test_start(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):  # each worker its own slice: no two act as the same account
        workers = sorted(runner.clients.keys())
        for index, client_id in enumerate(workers):
            runner.send_message("photos_credentials_slice", {"index": index, "of": len(workers)}, client_id)


def _photo(seed: int) -> bytes:
    """A real JPEG with a photo's mix of smooth fields and grain (what the media pipeline chews on)."""
    rng = random.Random(seed)
    size = (1080, 1080)
    base = Image.merge("RGB", [
        Image.linear_gradient("L").rotate(rng.randrange(360)).resize(size) for _ in range(3)
    ])
    grain = Image.effect_noise(size, 40).convert("RGB")
    picture = Image.blend(base, grain, 0.25).filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=88)
    return out.getvalue()


PHOTOS = [_photo(seed) for seed in range(PHOTO_POOL)]
TASKS = list(WEIGHTS)
TASK_WEIGHTS = [WEIGHTS[name] for name in TASKS]


class PhotosUser(FastHttpUser):
    """One person using the app: scrolls, watches stories, likes, comments, posts, follows, searches."""

    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        me = MINE.take()
        self.user_id = me["user_id"]
        self.auth = {"Authorization": f"Bearer {me['token']}"}
        self.feed_cursor: str | None = None
        self.feed_pages = 0
        self.liked: deque[str] = deque(maxlen=50)
        self.followed: deque[str] = deque(maxlen=50)

    @task
    def act(self) -> None:
        name = load_state.focus or random.choices(TASKS, TASK_WEIGHTS)[0]
        getattr(self, name)()

    # --- helpers -------------------------------------------------------------------------------
    def _get(self, path: str, name: str, params: dict | None = None) -> dict | None:
        """GET `path`, named by its route; the JSON body, or None when it failed (recorded as a failure)."""
        with self.client.get(path, params=params, headers=self.auth, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                return None
            try:
                return response.json()
            except ValueError:
                response.failure("the body is not JSON")
                return None

    def _send(self, method: str, path: str, name: str, ok: tuple[int, ...], **kwargs) -> tuple[int, dict]:
        """The status (0 when no answer came) and the JSON body of a write ({} when it failed or has none)."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        with self.client.request(method, path, headers=headers, name=name, catch_response=True, **kwargs) as response:
            status = response.status_code or 0
            if status not in ok:
                response.failure(f"{status}: {(response.text or '')[:200]}")
                return status, {}
            try:
                return status, (response.json() if response.text else {})
            except ValueError:
                return status, {}

    def _learn_posts(self, body: dict | None) -> None:
        for post in (body or {}).get("items", []):
            POSTS.add(post["id"])
            for tag in post.get("hashtags", []):
                HASHTAGS.add(tag)

    def _some_user(self) -> str:
        return random.choice(CREDENTIALS)["user_id"]

    def _post(self) -> str | None:
        post = POSTS.pick()
        if post is None:
            self.home_feed()
        return post

    # --- the tasks of loadtest/traffic.toml, one request each ---------------------------------------
    def home_feed(self) -> None:
        params = {"limit": FEED_PAGE}
        if self.feed_cursor and self.feed_pages < FEED_PAGES:
            params["cursor"] = self.feed_cursor
        else:
            self.feed_pages = 0
        body = self._get("/v1/feed", "/v1/feed", params)
        self._learn_posts(body)
        self.feed_cursor = (body or {}).get("next_cursor")
        self.feed_pages += 1

    def story_tray(self) -> None:
        body = self._get("/v1/stories/tray", "/v1/stories/tray")
        for entry in (body or {}).get("items", []):
            STORY_AUTHORS.add(entry["author"]["id"])

    def user_stories(self) -> None:
        author = STORY_AUTHORS.pick()
        if author is None:
            return self.story_tray()
        body = self._get(f"/v1/users/{author}/stories", "/v1/users/{user_id}/stories")
        for story in (body or {}).get("items", []):
            STORIES.add(story["id"])

    def story_view(self) -> None:
        story = STORIES.pick()
        if story is None:
            return self.user_stories()
        # a story that expired since it was seen answers 404: what a client watching late gets
        status, _ = self._send("PUT", f"/v1/stories/{story}/view", "/v1/stories/{story_id}/view", (204, 404))
        if RECORDERS.ledger:
            RECORDERS.ledger.view(self.user_id, story, status)

    def open_post(self) -> None:
        post = self._post()
        if post is not None:
            self._get(f"/v1/posts/{post}", "/v1/posts/{post_id}")

    def post_comments(self) -> None:
        post = self._post()
        if post is not None:
            self._get(f"/v1/posts/{post}/comments", "/v1/posts/{post_id}/comments", {"limit": 20})

    def post_likers(self) -> None:
        post = self._post()
        if post is not None:
            self._get(f"/v1/posts/{post}/likes", "/v1/posts/{post_id}/likes", {"limit": 20})

    def profile(self) -> None:
        self._get(f"/v1/users/{self._some_user()}", "/v1/users/{user_id}")

    def user_grid(self) -> None:
        body = self._get(f"/v1/users/{self._some_user()}/posts", "/v1/users/{user_id}/posts", {"limit": 12})
        self._learn_posts(body)

    def like(self) -> None:
        post = self._post()
        if post is not None and self._like(post, wanted=True) == 200:
            self.liked.append(post)

    def unlike(self) -> None:
        if not self.liked:
            return self.like()
        self._like(self.liked.popleft(), wanted=False)

    def _like(self, post: str, wanted: bool) -> int:
        status, body = self._send("PUT" if wanted else "DELETE", f"/v1/posts/{post}/like", "/v1/posts/{post_id}/like",
                                  (200,))
        if RECORDERS.ledger:
            RECORDERS.ledger.like(self.user_id, post, wanted, status, body.get("liked") if status == 200 else None)
        return status

    def comment(self) -> None:
        post = self._post()
        if post is None:
            return
        tag = HASHTAGS.pick() or "load"
        status, body = self._send("POST", f"/v1/posts/{post}/comments", "/v1/posts/{post_id}/comments", (201,),
                                  json={"text": f"lovely #{tag}"}, headers={"Idempotency-Key": uuid.uuid4().hex})
        if RECORDERS.ledger:
            RECORDERS.ledger.comment(self.user_id, post, status, body.get("id"))

    def notifications(self) -> None:
        self._get("/v1/notifications", "/v1/notifications", {"limit": 20})

    def search_users(self) -> None:
        username = random.choice(CREDENTIALS)["username"]
        prefix = username[: random.randint(2, max(2, min(len(username), 8)))]
        self._get("/v1/search/users", "/v1/search/users", {"q": prefix, "limit": 10})

    def search_hashtags(self) -> None:
        tag = HASHTAGS.pick() or "sun"
        self._get("/v1/search/hashtags", "/v1/search/hashtags", {"q": tag[: random.randint(1, len(tag))], "limit": 10})

    def hashtag_page(self) -> None:
        tag = HASHTAGS.pick()
        if tag is None:
            return self.home_feed()
        self._learn_posts(self._get(f"/v1/hashtags/{tag}/posts", "/v1/hashtags/{tag}/posts", {"limit": 12}))

    def trending(self) -> None:
        self._get("/v1/trending/hashtags", "/v1/trending/hashtags", {"window": "1h"})

    def follow(self) -> None:
        target = self._some_user()
        if target != self.user_id and self._follow(target, wanted=True) == 204:
            self.followed.append(target)

    def unfollow(self) -> None:
        if not self.followed:
            return self.follow()
        self._follow(self.followed.popleft(), wanted=False)

    def _follow(self, target: str, wanted: bool) -> int:
        status, _ = self._send("PUT" if wanted else "DELETE", f"/v1/users/{target}/follow",
                               "/v1/users/{user_id}/follow", (204,))
        if RECORDERS.ledger:
            RECORDERS.ledger.follow(self.user_id, target, wanted, status)
        return status

    def upload(self) -> None:
        tag = HASHTAGS.pick() or "load"
        mention = random.choice(CREDENTIALS)["username"]
        body = self._multipart("image", random.choice(PHOTOS), {"caption": f"out today #{tag} with @{mention}"})
        status, post = self._send("POST", "/v1/posts", "/v1/posts", (201,), data=body[1],
                                  headers={"Content-Type": body[0], "Idempotency-Key": uuid.uuid4().hex})
        if RECORDERS.ledger:
            RECORDERS.ledger.upload(self.user_id, status, post.get("id"), post.get("hashtags", [tag]))

    def story_post(self) -> None:
        body = self._multipart("media", random.choice(PHOTOS), {})
        status, story = self._send("POST", "/v1/stories", "/v1/stories", (201,), data=body[1],
                                   headers={"Content-Type": body[0], "Idempotency-Key": uuid.uuid4().hex})
        if RECORDERS.ledger:
            RECORDERS.ledger.story(self.user_id, status, story.get("id"))

    @staticmethod
    def _multipart(file_field: str, data: bytes, fields: dict[str, str]) -> tuple[str, bytes]:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n"
        )
        return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()
