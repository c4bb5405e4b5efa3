"""`photos-simulate`: engagement from latent reader tastes and author qualities, made through the real API.

    photos-simulate --authors 6 --posts-per-author 3 --readers 24 --rounds 4 --seed 1 --out /tmp/sim
    photos-simulate --authors 40 --posts-per-author 6 --readers 400 --rounds 20 --concurrency 32

The run registers the authors and readers, makes the readers follow a random subset of the authors, then
publishes the posts over the rounds (real JPEG uploads) and waits until each round's posts reached their
readers' feeds. In each round every reader who reads (their activity) reads the first page of their ranked
feed (GET /v1/feed) and sometimes the second, examines items with a probability falling with position and
likes, opens the comments of and comments on the examined posts as the latent model (loadtest/simulation/truth.py)
draws. Everything goes through HTTP, so the API's impression log, like and comment events and the affinity the
ranker reads are the real ones. 429 and 503 answers are retried after their Retry-After.

The API must log every ranked page: run it with PHOTOS_RANKING_IMPRESSION_SAMPLE=1. The run reads the API's
impression counter from its ops listener (--metrics-url) and prints how many of the pages it read were logged.
--out gets truth.json (every latent parameter and the world's ids), served.jsonl (every page read and what the
reader did with each item) and summary.json. docs/simulation.md has the model, the settings a big run needs and
what a learned ranker can find.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from loadtest.images import striped_jpeg
from loadtest.simulation import truth

PASSWORD = "photos-simulate-password"  # every simulated account's
PAGE_SIZE = 10
IMAGE_SIZE = (160, 120)
FOLLOW_WAIT_S = 60.0  # for the follower counts to show every follow
ARRIVAL_WAIT_S = 15.0  # for a round's posts to reach their readers' feeds
POLL_S = 0.2
IMPRESSIONS_WAIT_S = 5.0  # for the API's impression counter to count the last pages
RATE_LIMIT_ATTEMPTS = 60  # a request answered 429 is retried after Retry-After this many times
UNAVAILABLE_ATTEMPTS = 10  # 503 and 409 idempotency_key_in_use, after Retry-After
NETWORK_ATTEMPTS = 5  # no answer: retried after 0.5, 1, 2, 4 s
IMPRESSIONS_METRIC = "photos_ranking_events"  # app/ranking/impressions.py, kind="impressions"
TOPIC_COLOURS = [(200, 60, 60), (60, 160, 60), (60, 90, 200), (210, 180, 40), (150, 60, 170), (40, 170, 170),
                 (230, 120, 30), (120, 120, 120)]


class SimulateError(Exception):
    """Bad input or an unreachable API: one line, exit status 2."""


class RunFailed(Exception):
    """An answer the run cannot go on from (a refused like, a 500): one line, exit status 1."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="photos-simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="the API's base URL (default http://PHOTOS_API_HOST:PHOTOS_API_PORT)")
    parser.add_argument("--metrics-url", help="the API's Prometheus endpoint on its ops listener, to count the"
                                              " pages logged as impressions (default: the ops listener of the"
                                              " default host; none for another --host)")
    parser.add_argument("--authors", type=int, default=6, help="authors (default 6)")
    parser.add_argument("--readers", type=int, default=24, help="readers (default 24)")
    parser.add_argument("--posts-per-author", type=int, default=3, help="posts per author (default 3)")
    parser.add_argument("--rounds", type=int, default=4, help="reading rounds (default 4)")
    parser.add_argument("--topics", type=int, default=truth.TOPICS, help=f"latent topics (default {truth.TOPICS})")
    parser.add_argument("--seed", type=int, default=1, help="the world's seed (default 1)")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help=f"feed page size (default {PAGE_SIZE})")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    parser.add_argument("--out", help="where truth.json, served.jsonl and summary.json go"
                                      " (default .stack/simulate/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except SimulateError as exc:
        print(f"photos-simulate: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"photos-simulate: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("photos-simulate: interrupted", file=sys.stderr)
        return 130
    return 0


# --- the API ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict[str, str]


@dataclass
class Stats:
    statuses: Counter = field(default_factory=Counter)  # every answer, retried ones included
    errors_by_route: Counter = field(default_factory=Counter)  # (route, status) of every 4xx/5xx
    waited_s: Counter = field(default_factory=Counter)  # seconds waited on Retry-After, by status
    requests: int = 0


class Api:
    """The API over one aiohttp session: at most `concurrency` requests in flight, 429 and 503 retried after
    their Retry-After (outside the concurrency bound), no answer retried with backoff."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, concurrency: int, stats: Stats) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.bound = asyncio.Semaphore(concurrency)
        self.stats = stats

    async def call(self, method: str, path: str, route: str, *, token: str | None = None, json_body=None,
                   form: Callable[[], aiohttp.FormData] | None = None, params: dict | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        limited = unavailable = network = 0
        while True:
            try:
                async with self.bound:
                    self.stats.requests += 1
                    async with self.session.request(method, f"{self.base_url}{path}", json=json_body,
                                                    data=form() if form else None, params=params,
                                                    headers=all_headers) as response:
                        body = await response.json() if response.content_type == "application/json" else {}
                        answer = Answer(response.status, body, dict(response.headers))
            except (TimeoutError, aiohttp.ClientError) as exc:
                network += 1
                if network >= NETWORK_ATTEMPTS:
                    raise RunFailed(f"{route}: no answer from {self.base_url} after {network} attempts:"
                                        f" {exc or type(exc).__name__}") from None
                await asyncio.sleep(0.5 * 2 ** (network - 1))
                continue
            self.stats.statuses[answer.status] += 1
            if answer.status >= 400:
                self.stats.errors_by_route[route, answer.status] += 1
            code = answer.body.get("error", {}).get("code") if isinstance(answer.body, dict) else None
            if answer.status == 429 and limited < RATE_LIMIT_ATTEMPTS:
                limited += 1
            elif (answer.status == 503 or code == "idempotency_key_in_use") and unavailable < UNAVAILABLE_ATTEMPTS:
                unavailable += 1
            else:
                return answer
            wait = _retry_after(answer.headers)
            self.stats.waited_s[answer.status] += wait
            await asyncio.sleep(wait)

    async def expect(self, status: int, method: str, path: str, route: str, **kwargs) -> Answer:
        answer = await self.call(method, path, route, **kwargs)
        if answer.status != status:
            raise RunFailed(f"{route}: expected {status}, got {answer.status} {_error_text(answer)}")
        return answer


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return max(0.1, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _error_text(answer: Answer) -> str:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    return f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Account:
    username: str
    user_id: str = ""
    token: str = ""


@dataclass
class Counts:
    pages: int = 0
    # X-Feed-Ranker; "none": absent, the page was served newest first (no candidate set in time, Redis away)
    pages_by_ranker: Counter = field(default_factory=Counter)
    pages_by_cache: Counter = field(default_factory=Counter)  # X-Feed-Cache
    second_pages: int = 0
    shown: int = 0  # items served on the pages read
    foreign: int = 0  # items of posts this run did not make
    examined: int = 0
    likes: int = 0
    opens: int = 0
    comments: int = 0
    late_posts: int = 0  # posts not seen in a checked follower's feed within ARRIVAL_WAIT_S


class Simulation:
    def __init__(self, world: truth.World, api: Api, page_size: int, tag: str) -> None:
        self.world = world
        self.api = api
        self.page_size = page_size
        self.tag = tag
        self.authors = [Account(f"sim{tag}_a{a}") for a in range(len(world.authors))]
        self.readers = [Account(f"sim{tag}_r{r}") for r in range(len(world.readers))]
        self.post_ids: dict[int, str] = {}  # post index -> id
        self.post_index: dict[str, int] = {}
        self.liked: set[tuple[int, int]] = set()
        self.opened: set[tuple[int, int]] = set()
        self.commented: set[tuple[int, int]] = set()
        self.counts = Counts()
        self.served: list[dict] = []  # one record per page read
        self.timings: dict[str, float] = {}
        self.phase_requests: dict[str, int] = {}
        self._images: dict[int, bytes] = {}

    async def _each(self, items, action) -> None:
        await asyncio.gather(*(action(item) for item in items))

    # --- setting up ---
    async def register(self) -> None:
        async def one(account: Account) -> None:
            credentials = {"username": account.username, "password": PASSWORD}
            made = await self.api.call("POST", "/v1/accounts", "POST /v1/accounts", json_body=credentials)
            # 409: a retry after a lost answer found the account made (the run's names are its own)
            if made.status not in (201, 409):
                raise RunFailed(f"POST /v1/accounts: expected 201, got {made.status} {_error_text(made)}")
            session = await self.api.expect(201, "POST", "/v1/sessions", "POST /v1/sessions", json_body=credentials)
            account.user_id, account.token = session.body["user"]["id"], session.body["token"]

        await self._each(self.authors + self.readers, one)

    async def follow(self) -> None:
        async def one(reader: truth.Reader) -> None:
            # one at a time: a reader's follows update one conditional count (app/storage/follows.py), and
            # concurrent ones contend for it (CAS timeouts, 503)
            for a in reader.follows:
                await self.api.expect(204, "PUT", f"/v1/users/{self.authors[a].user_id}/follow",
                                      "PUT /v1/users/{user_id}/follow", token=self.readers[reader.index].token)

        await self._each(self.world.readers, one)
        # the follower counts are kept by the stream workers: once they show every follow, fan-out sees them too
        expected = {a: len(f) for a, f in enumerate(self.world.followers)}

        async def settled(a: int) -> bool:
            author = self.authors[a]
            user = await self.api.expect(200, "GET", f"/v1/users/{author.user_id}", "GET /v1/users/{user_id}",
                                         token=author.token)
            return user.body["follower_count"] >= expected[a]

        await self._poll(list(expected), settled, FOLLOW_WAIT_S, "follower counts")

    async def activate(self) -> None:
        """One chronological read per reader (no snapshot, no impression), once the follows are in: fan-out
        pushes to them from now on, and the read (re)builds their candidate set, so the first ranked read finds
        it. The follow worker marks a set due after it saved the counts the run waits for, so this runs again
        before the first reads: a ranked read of a due set whose refill takes over PHOTOS_FEED_REBUILD_WAIT_MS
        is served newest first, unranked, without X-Feed-Ranker."""
        async def one(reader: Account) -> None:
            await self.api.expect(200, "GET", "/v1/feed", "GET /v1/feed", token=reader.token,
                                  params={"order": "chronological", "limit": "1"})

        await self._each(self.readers, one)

    async def _poll(self, pending: list, done, timeout: float, what: str) -> list:
        """Call `done(item)` for the pending items until all hold or the deadline; the items still pending."""
        deadline = time.monotonic() + timeout
        while pending:
            results = await asyncio.gather(*(done(item) for item in pending))
            pending = [item for item, ok in zip(pending, results, strict=True) if not ok]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        if pending:
            print(f"photos-simulate: warning: {what}: {len(pending)} not there after {timeout:.0f} s", flush=True)
        return pending

    # --- posts ---
    def _topic(self, author: int) -> int:
        """The author's main topic: it colours their images and tags their captions."""
        topics = self.world.authors[author].topics
        return max(range(len(topics)), key=topics.__getitem__)

    def _image(self, author: int) -> bytes:
        topic = self._topic(author)
        if topic not in self._images:
            self._images[topic] = striped_jpeg(*IMAGE_SIZE, colour=TOPIC_COLOURS[topic % len(TOPIC_COLOURS)])
        return self._images[topic]

    async def publish(self, round_: int) -> list[truth.Post]:
        posts = self.world.posts_of_round(round_)

        async def one(post: truth.Post) -> None:
            author = self.authors[post.author]
            image = self._image(post.author)
            topic = self._topic(post.author)

            def form() -> aiohttp.FormData:
                data = aiohttp.FormData()
                data.add_field("image", image, filename="photo.jpg", content_type="image/jpeg")
                data.add_field("caption", f"post {post.slot} of {author.username} #topic{topic}")
                return data

            answer = await self.api.expect(201, "POST", "/v1/posts", "POST /v1/posts", token=author.token, form=form,
                                           headers={"Idempotency-Key": f"sim-{self.tag}-post-{post.index}"})
            self.post_ids[post.index] = answer.body["id"]
            self.post_index[answer.body["id"]] = post.index

        await self._each(posts, one)
        return posts

    async def await_arrival(self, posts: list[truth.Post]) -> None:
        """Until each post is in the chronological feed of one follower of its author: fan-out merges a post
        into the candidate sets of a page of up to 1,000 followers in one Redis pipeline, so one stands for all
        (an author with more followers may be checked before the later pages are written)."""
        expected: dict[int, set[str]] = {}
        for post in posts:
            if self.world.followers[post.author]:
                expected.setdefault(self.world.followers[post.author][-1], set()).add(self.post_ids[post.index])

        async def arrived(reader: int) -> bool:
            page = await self.api.expect(200, "GET", "/v1/feed", "GET /v1/feed", token=self.readers[reader].token,
                                         params={"order": "chronological", "limit": "100"})
            return expected[reader] <= {item["id"] for item in page.body["items"]}

        late = await self._poll(sorted(expected), arrived, ARRIVAL_WAIT_S, "posts in their followers' feeds")
        self.counts.late_posts += len({p for r in late for p in expected[r]})

    # --- reading ---
    async def read(self, reader: int, round_: int) -> None:
        if not truth.reads(self.world, reader, round_):
            return
        page = await self._page(reader, round_, 0, None)
        if page.body.get("next_cursor") and truth.reads_second_page(self.world, reader, round_):
            self.counts.second_pages += 1
            await self._page(reader, round_, len(page.body["items"]), page.body["next_cursor"])

    async def _page(self, reader: int, round_: int, offset: int, cursor: str | None) -> Answer:
        account = self.readers[reader]
        params = {"limit": str(self.page_size)} | ({"cursor": cursor} if cursor else {})
        page = await self.api.call("GET", "/v1/feed", "GET /v1/feed", token=account.token, params=params)
        if page.status != 200:  # cursor_expired and the like: the reader stops this round
            return Answer(page.status, {"items": [], "next_cursor": None}, page.headers)
        ranker = page.headers.get("X-Feed-Ranker", "none")
        self.counts.pages += 1
        self.counts.pages_by_ranker[ranker] += 1
        self.counts.pages_by_cache[page.headers.get("X-Feed-Cache", "none")] += 1
        record = {"round": round_, "reader": reader, "page": 1 if cursor is None else 2, "ranker": ranker,
                  "cache": page.headers.get("X-Feed-Cache"), "items": []}
        acts = []
        for i, item in enumerate(page.body["items"]):
            self.counts.shown += 1
            post = self.post_index.get(item["id"])
            if post is None:
                self.counts.foreign += 1
                continue
            outcome = truth.respond(self.world, reader, round_, post, offset + i)
            record["items"].append([post, offset + i, int(outcome.examined), int(outcome.like), int(outcome.open),
                                    int(outcome.comment)])
            if outcome.examined:
                self.counts.examined += 1
                acts.append(self._act(reader, round_, outcome))
        self.served.append(record)
        await asyncio.gather(*acts)
        return page

    async def _act(self, reader: int, round_: int, outcome: truth.Outcome) -> None:
        account, post_id, post = self.readers[reader], self.post_ids[outcome.post], outcome.post
        if outcome.like and (reader, post) not in self.liked:
            self.liked.add((reader, post))
            await self.api.expect(200, "PUT", f"/v1/posts/{post_id}/like", "PUT /v1/posts/{post_id}/like",
                                  token=account.token)
            self.counts.likes += 1
        if outcome.open and (reader, post) not in self.opened:
            self.opened.add((reader, post))
            await self.api.expect(200, "GET", f"/v1/posts/{post_id}/comments", "GET /v1/posts/{post_id}/comments",
                                  token=account.token, params={"limit": "20"})
            self.counts.opens += 1
        if outcome.comment and (reader, post) not in self.commented:
            self.commented.add((reader, post))
            await self.api.expect(201, "POST", f"/v1/posts/{post_id}/comments", "POST /v1/posts/{post_id}/comments",
                                  token=account.token, json_body={"text": f"round {round_}: nice one"},
                                  headers={"Idempotency-Key": f"sim-{self.tag}-c-{reader}-{post}"})
            self.counts.comments += 1

    # --- the whole run ---
    async def run(self) -> None:
        await self._timed("register", self.register())
        await self._timed("follow", self.follow())
        await self._timed("activate", self.activate())
        for round_ in range(self.world.params.rounds):
            posts = await self._timed("publish", self.publish(round_))
            await self._timed("arrival", self.await_arrival(posts))
            if round_ == 0:  # again: the follow worker marks the sets due a moment after the counts show
                await self._timed("activate", self.activate())
            await self._timed("read", self._each(range(len(self.readers)), lambda r, n=round_: self.read(r, n)))

    async def _timed(self, phase: str, work):
        started, requests = time.perf_counter(), self.api.stats.requests
        try:
            return await work
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started
            self.phase_requests[phase] = self.phase_requests.get(phase, 0) + self.api.stats.requests - requests

    def truth_json(self) -> dict:
        doc = truth.to_json(self.world)
        doc["run_tag"] = self.tag
        for entry, account in zip(doc["authors"], self.authors, strict=True):
            entry.update(username=account.username, user_id=account.user_id)
        for entry, account in zip(doc["readers"], self.readers, strict=True):
            entry.update(username=account.username, user_id=account.user_id)
        for entry in doc["posts"]:
            entry["post_id"] = self.post_ids.get(entry["index"])
        return doc


# --- the command ---------------------------------------------------------------------------------------


async def impressions_logged(session: aiohttp.ClientSession, url: str | None) -> float | None:
    """The API's count of impression events published, or None when it cannot be read."""
    if not url:
        return None
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (TimeoutError, aiohttp.ClientError):
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == IMPRESSIONS_METRIC:
            total += sum(s.value for s in family.samples if s.name.endswith("_total")
                         and s.labels.get("kind") == "impressions" and s.labels.get("outcome") == "published")
    return total


def _defaults(args: argparse.Namespace) -> tuple[str, str | None, Path]:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise SimulateError(str(exc)) from None
    host = args.host or f"http://{settings.api_host}:{settings.api_port}"
    metrics = args.metrics_url or (None if args.host else f"http://{settings.ops_host}:{settings.ops_port}/metrics")
    out = Path(args.out) if args.out else Path(settings.stack_dir) / "simulate"
    return host, metrics, out


def _check(args: argparse.Namespace) -> truth.Params:
    params = truth.Params(args.authors, args.readers, args.posts_per_author, args.rounds, args.seed, args.topics)
    try:
        params.check()
    except ValueError as exc:
        raise SimulateError(str(exc)) from None
    if not 1 <= args.page_size <= 100:
        raise SimulateError(f"--page-size must be 1 to 100, not {args.page_size}")
    if args.concurrency < 1:
        raise SimulateError(f"--concurrency must be at least 1, not {args.concurrency}")
    return params


async def run(args: argparse.Namespace) -> dict:
    """The whole simulation; its summary (also written to --out and printed)."""
    params = _check(args)
    host, metrics_url, out = _defaults(args)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulateError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    world = truth.build(params)
    tag = uuid.uuid4().hex[:6]
    stats = Stats()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        try:
            async with session.get(f"{host.rstrip('/')}/healthz") as response:
                if response.status != 200:
                    raise SimulateError(f"the API at {host} is not healthy: /healthz answered {response.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SimulateError(f"cannot reach the API at {host}: {exc or type(exc).__name__}") from None
        print(f"photos-simulate: {host}, seed {params.seed}: {params.authors} authors x {params.posts_per_author}"
              f" posts, {params.readers} readers, {params.rounds} rounds, {params.topics} topics (run {tag})",
              flush=True)
        logged_before = await impressions_logged(session, metrics_url)
        simulation = Simulation(world, Api(session, host, args.concurrency, stats), args.page_size, tag)
        await simulation.run()
        elapsed = time.perf_counter() - started
        logged = None
        if logged_before is not None:  # impressions are published off the request: a moment to catch up
            ranked = sum(1 for record in simulation.served if record["items"] and record["ranker"] != "none")
            deadline = time.monotonic() + IMPRESSIONS_WAIT_S
            while True:
                logged_after = await impressions_logged(session, metrics_url)
                logged = None if logged_after is None else int(logged_after - logged_before)
                if logged is None or logged >= ranked or time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_S)
    summary = make_summary(simulation, stats, elapsed, logged)
    (out / "truth.json").write_text(json.dumps(simulation.truth_json(), indent=1))
    with (out / "served.jsonl").open("w") as file:
        for record in simulation.served:
            file.write(json.dumps(record) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary, out)
    return summary


def make_summary(sim: Simulation, stats: Stats, elapsed: float, logged: int | None) -> dict:
    c = sim.counts
    pages_with_items = sum(1 for record in sim.served if record["items"] and record["ranker"] != "none")
    return {
        "run_tag": sim.tag, "seed": sim.world.params.seed,
        "accounts": len(sim.authors) + len(sim.readers), "authors": len(sim.authors), "readers": len(sim.readers),
        "follows": sum(len(r.follows) for r in sim.world.readers), "posts": len(sim.post_ids),
        "late_posts": c.late_posts, "rounds": sim.world.params.rounds,
        "pages": c.pages, "second_pages": c.second_pages, "ranked_pages_with_items": pages_with_items,
        "pages_by_ranker": dict(c.pages_by_ranker), "pages_by_cache": dict(c.pages_by_cache),
        "impressions_logged": logged, "shown": c.shown, "foreign": c.foreign, "examined": c.examined,
        "likes": c.likes, "opens": c.opens, "comments": c.comments,
        "requests": stats.requests, "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "client_errors": sum(v for k, v in stats.statuses.items() if 400 <= k < 500),
        "server_errors": sum(v for k, v in stats.statuses.items() if k >= 500),
        "errors_by_route": {f"{route} {status}": n for (route, status), n in sorted(stats.errors_by_route.items())},
        "retry_after_waited_s": {str(k): round(v, 1) for k, v in sorted(stats.waited_s.items())},
        "timings_s": {phase: round(s, 2) for phase, s in sim.timings.items()},
        "requests_by_phase": dict(sim.phase_requests), "seconds": round(elapsed, 2),
    }


def print_summary(s: dict, out: Path) -> None:
    def line(name: str, value: str) -> None:
        print(f"  {name:<22}{value}", flush=True)

    line("accounts", f"{s['accounts']} ({s['authors']} authors, {s['readers']} readers), {s['follows']} follows")
    line("posts", f"{s['posts']}" + (f" ({s['late_posts']} late in their followers' feeds)" if s["late_posts"] else ""))
    ranked = s["ranked_pages_with_items"]
    line("feed pages read", f"{s['pages']} ({s['second_pages']} second pages), {ranked} ranked with items")
    line("  by X-Feed-Ranker", ", ".join(f"{k} {v}" for k, v in sorted(s["pages_by_ranker"].items())) or "-")
    line("  by X-Feed-Cache", ", ".join(f"{k} {v}" for k, v in sorted(s["pages_by_cache"].items())) or "-")
    if s["impressions_logged"] is None:
        line("impressions logged", "unknown (no --metrics-url): the API must run with"
                                   " PHOTOS_RANKING_IMPRESSION_SAMPLE=1")
    else:
        note = "" if s["impressions_logged"] >= ranked else (
            "  WARNING: fewer than the pages read; is PHOTOS_RANKING_IMPRESSION_SAMPLE=1?")
        line("impressions logged", f"{s['impressions_logged']} pages of {ranked}{note}")
    line("items shown", f"{s['shown']}, examined {s['examined']}" + (f", {s['foreign']} not this run's"
                                                                     if s["foreign"] else ""))
    line("engagement", f"{s['likes']} likes, {s['opens']} comment opens, {s['comments']} comments")
    line("requests", f"{s['requests']}: {s['client_errors']} 4xx, {s['server_errors']} 5xx"
                     + (f" ({', '.join(f'{k} x{v}' for k, v in s['errors_by_route'].items())})"
                        if s["errors_by_route"] else ""))
    if s["retry_after_waited_s"]:
        line("waited on Retry-After", ", ".join(f"{k}: {v} s" for k, v in s["retry_after_waited_s"].items()))
    line("time", f"{s['seconds']} s; by phase (s/requests): "
                 + ", ".join(f"{k} {v}/{s['requests_by_phase'].get(k, 0)}" for k, v in s["timings_s"].items()))
    line("written", f"{out}/truth.json, served.jsonl, summary.json")


if __name__ == "__main__":
    sys.exit(main())
