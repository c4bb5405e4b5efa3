"""`python -m loadtest.chaos`: the seed traffic while servers fail, one fault at a time, then the audit of
every write the API acknowledged.

The run, against a stack `photos-stack` started on this machine (its node commands inject the faults):

1. Locust drives the capacity suite's scenarios (loadtest/locustfile.py, the `seed` mix) at a constant
   number of users for the whole run. Each Locust user is one account and keeps a ledger of every write it
   made and the answer it got (loadtest/ledger.py); every request's start, route, status and latency goes
   to a request log.
2. A quiet window first: the baseline. Then each fault in turn: it is injected, lasts `--down-s` (a
   killed node stays down that long, then `photos-stack start` brings it back; a paused one is resumed),
   and the run waits until requests stopped failing and a tracer's derived values converged before the next.
   - **Tracers** measure convergence: right after the fault is injected, three accounts of the run's own
     write through the API (a follow or unfollow, a like or unlike, a comment, an upload), each retried
     until it is acknowledged, and the run polls what clients read (the author's follower and post counts,
     the post's like and comment counts, the follower's home feed) until all of them show those writes.
3. Locust stops; after a settle period the audit (loadtest/audit.py) checks every acknowledged write of
   the ledger against Cassandra and every derived value it touched against the truth. Any problem, or a
   tracer that never converged, fails the run (exit 1) with the list.

The report (printed, and `report.md`/`report.json` in `--out`) has one row per window: requests, errors
(status 5xx or no answer) by status, p50/p99 latency, when errors stopped (seconds after the fault was
injected) and when the tracer converged. The load generator shares this machine's cores with every server.
docs/reliability.md explains the faults, what is promised and the last run's table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis.asyncio as redis
from PIL import Image

from app.settings import Settings
from app.wiring import Wiring
from infra.cluster import Topology, read_environment_file, recorded_topology
from loadtest.audit import audit
from loadtest.credentials import LoadSetupError, load_credentials
from loadtest.ledger import read_ledger

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
FAULT_NAMES = ("cassandra-kill", "kafka-kill", "streams-kill", "redis-restart", "api-kill", "cassandra-pause")
TRACER_TIMEOUT_S = 300.0  # a tracer write retried this long, and its effects awaited this long
POLL_S = 1.0
QUIET_AFTER_ERRORS_S = 10.0  # a fault's window ends once this long passed without an error


# --- faults ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault: `photos-stack` commands that inject it, and those that end it after the down time."""

    name: str
    node: str
    inject: tuple[tuple[str, ...], ...]
    lift: tuple[tuple[str, ...], ...] = ()
    flush_redis: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.node})"


def node_name(kind: str, topology: Topology, index: int) -> str:
    """`kind-index` on a multi-node kind, the kind's own name when it runs one."""
    return f"{kind}-{index}" if topology.count(kind) > 1 else kind


def plan_faults(names: list[str], topology: Topology) -> list[Fault]:
    """The faults asked for, aimed at this stack's nodes: the second Cassandra node and Kafka broker (the
    first is the seed and the first controller), the first stream worker and API process."""
    cassandra_node = node_name("cassandra", topology, 2)
    broker = node_name("kafka", topology, 2)
    worker = node_name("streams", topology, 1)
    api = node_name("api", topology, 1)

    def down_then_start(name: str, node: str) -> Fault:
        return Fault(name, node, (("kill", "--stay-down", node),), (("start", node),))

    catalogue = {
        "cassandra-kill": down_then_start("cassandra-kill", cassandra_node),
        "kafka-kill": down_then_start("kafka-kill", broker),
        # one worker: its supervisor restarts it at once; several: its partitions move while it stays down
        "streams-kill": (down_then_start("streams-kill", worker) if topology.count("streams") > 1
                         else Fault("streams-kill", worker, (("kill", worker),))),
        "redis-restart": Fault("redis-restart", "redis", (("stop", "redis"), ("start", "redis")), flush_redis=True),
        "api-kill": Fault("api-kill", api, (("kill", api),)),
        "cassandra-pause": Fault("cassandra-pause", cassandra_node, (("pause", cassandra_node),),
                                 (("resume", cassandra_node),)),
    }
    return [catalogue[name] for name in names]


def photos_stack(*args: str) -> str:
    """Run a photos-stack command of this checkout; its output. ChaosError when it fails."""
    result = subprocess.run([sys.executable, "-m", "infra.stack", *args], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=child_env())
    if result.returncode != 0:
        raise ChaosError(f"photos-stack {' '.join(args)}: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


class ChaosError(Exception):
    """The run cannot go on (a fault that cannot be injected or lifted, no credentials, no API)."""


# --- the request log and its windows ----------------------------------------------------------------------


@dataclass
class Window:
    """A stretch of the run: the quiet baseline or one fault, from its start to its end (epoch seconds)."""

    name: str
    start: float
    end: float = 0.0
    injected_at: float | None = None
    lifted_at: float | None = None
    converged_after_s: float | None = None  # the tracer, from injection
    tracer_acknowledged_after_s: float | None = None  # its writes, from injection
    tracer_values: dict[str, float] = field(default_factory=dict)  # when each value read showed its write
    notes: list[str] = field(default_factory=list)


def is_error(status: int) -> bool:
    """A failure of the system: no answer, or a 5xx. (4xx are answers: a story expired, a rate limit.)"""
    return status == 0 or status >= 500


def read_requests(directory: Path) -> list[tuple[float, str, int, float]]:
    """Every logged request as (start, route, status, ms), in start order; a torn last line is skipped."""
    records = []
    for path in sorted(directory.glob("requests-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                started, route, status, ms = json.loads(line)
            except ValueError:
                continue
            records.append((float(started), str(route), int(status), float(ms)))
    records.sort()
    return records


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def window_figures(window: Window, requests: list[tuple[float, str, int, float]]) -> dict:
    """Requests, errors by status, p50/p99 and when errors stopped, of the requests begun in the window."""
    inside = [r for r in requests if window.start <= r[0] < window.end]
    latencies = [ms for _, _, _, ms in inside]
    statuses = Counter(status for _, _, status, _ in inside if not 200 <= status < 300)
    errors = [(started + ms / 1000) for started, _, status, ms in inside if is_error(status)]
    since = window.injected_at if window.injected_at is not None else window.start
    return {
        "window": window.name,
        "seconds": round(window.end - window.start, 1),
        "requests": len(inside),
        "errors": len(errors),
        "non_2xx_by_status": {str(status): n for status, n in sorted(statuses.items())},
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "errors_stopped_after_s": round(max(errors) - since, 1) if errors else None,
        "converged_after_s": window.converged_after_s,
        "tracer_acknowledged_after_s": window.tracer_acknowledged_after_s,
        "tracer_values": window.tracer_values,
        "notes": window.notes,
    }


def last_error_at(requests_dir: Path, since: float) -> float | None:
    errors = [started + ms / 1000 for started, _, status, ms in read_requests(requests_dir)
              if started >= since and is_error(status)]
    return max(errors, default=None)


# --- tracers ---------------------------------------------------------------------------------------------


def small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((160, 120)).save(out, "JPEG", quality=80)
    return out.getvalue()


@dataclass
class Account:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Tracer:
    """Three accounts of the run's own: an author with a post, a reader who follows the author, and a fan who
    follows and unfollows. Each fault they write once more and the run waits for what clients read to show it."""

    def __init__(self, http: aiohttp.ClientSession, host: str) -> None:
        self.http = http
        self.host = host.rstrip("/")
        self.photo = small_jpeg()
        self.fan_follows = False
        self.reader_likes = False
        self.comments = 0
        self.posts = 0
        self.latest_post = ""

    async def set_up(self) -> None:
        self.author, self.reader, self.fan = [await self._account() for _ in range(3)]
        await self._until_ok("PUT", f"/v1/users/{self.author.id}/follow", self.reader, (204,))
        self.post_id = await self._upload()

    async def _account(self) -> Account:
        username, password = f"chaos_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        await self._until_ok("POST", "/v1/accounts", None, (201,), json={"username": username, "password": password})
        body = await self._until_ok("POST", "/v1/sessions", None, (201,),
                                    json={"username": username, "password": password})
        return Account(body["user"]["id"], body["token"])

    async def _upload(self) -> str:
        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("image", self.photo, filename="tracer.jpg", content_type="image/jpeg")
            return data
        key = uuid.uuid4().hex  # the same key on every retry: one post however many attempts
        body = await self._until_ok("POST", "/v1/posts", self.author, (201,), data=form,
                                    headers={"Idempotency-Key": key})
        self.posts += 1
        self.latest_post = body["id"]
        return body["id"]

    async def _until_ok(self, method: str, path: str, who: Account | None, ok: tuple[int, ...], data=None,
                        headers: dict | None = None, **kwargs) -> dict:
        """The request, retried until it is acknowledged (a fault may be under way); its JSON body."""
        deadline = time.monotonic() + TRACER_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            try:
                async with self.http.request(method, self.host + path, data=data() if data else None,
                                             headers={**(who.auth if who else {}), **(headers or {})},
                                             **kwargs) as response:
                    if response.status in ok:
                        return await response.json() if response.content_type == "application/json" else {}
                    last = f"{response.status} {(await response.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError) as error:
                last = repr(error)
            await asyncio.sleep(POLL_S)
        raise ChaosError(f"tracer: {method} {path} not acknowledged in {TRACER_TIMEOUT_S:.0f} s: {last}")

    async def write(self) -> None:
        """One more of each tracer write, each acknowledged before the next."""
        wanted = not self.fan_follows
        await self._until_ok("PUT" if wanted else "DELETE", f"/v1/users/{self.author.id}/follow", self.fan, (204,))
        self.fan_follows = wanted
        wanted = not self.reader_likes
        await self._until_ok("PUT" if wanted else "DELETE", f"/v1/posts/{self.post_id}/like", self.reader, (200,))
        self.reader_likes = wanted
        await self._until_ok("POST", f"/v1/posts/{self.post_id}/comments", self.reader, (201,),
                             json={"text": f"tracer {self.comments + 1}"},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
        self.comments += 1
        await self._upload()

    def expected(self) -> dict:
        return {"follower_count": 1 + self.fan_follows, "post_count": self.posts,
                "like_count": int(self.reader_likes), "comment_count": self.comments, "in_feed": True}

    async def seen(self) -> dict | None:
        """What clients read now (None while a read fails)."""
        try:
            author = await self._get(f"/v1/users/{self.author.id}", self.reader)
            post = await self._get(f"/v1/posts/{self.post_id}", self.reader)
            feed = await self._get("/v1/feed?limit=20", self.reader)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return {"follower_count": author["follower_count"], "post_count": author["post_count"],
                "like_count": post["like_count"], "comment_count": post["comment_count"],
                "in_feed": any(item["id"] == self.latest_post for item in feed["items"])}

    async def _get(self, path: str, who: Account) -> dict:
        async with self.http.get(self.host + path, headers=who.auth) as response:
            if response.status != 200:
                raise ValueError(f"{path}: {response.status}")
            return await response.json()

    async def until_converged(self, since: float) -> tuple[float | None, dict | None, dict[str, float]]:
        """Seconds from `since` (epoch) until what clients read shows every tracer write (None if it never
        did), what was read last, and when each value first showed its write (which one was slow)."""
        deadline = time.monotonic() + TRACER_TIMEOUT_S
        seen, first_right = None, {}
        expected = self.expected()
        while time.monotonic() < deadline:
            seen = await self.seen()
            for name, value in (seen or {}).items():
                if value == expected[name]:
                    first_right.setdefault(name, round(time.time() - since, 1))
            if seen == expected:
                return round(time.time() - since, 1), seen, first_right
            await asyncio.sleep(POLL_S)
        return None, seen, first_right


# --- the run ---------------------------------------------------------------------------------------------


def locust_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--host", args.host, "--headless",
            "-u", str(args.users), "-r", str(max(1, args.users // 5)), "--only-summary", "--loglevel", "WARNING",
            "--exit-code-on-error", "0", "--stop-timeout", "10"]


def locust_env(args: argparse.Namespace, out: Path) -> dict[str, str]:
    return {**child_env(), "PHOTOS_LOAD_MIX": args.mix, "PHOTOS_LOAD_CREDENTIALS": str(args.credentials),
            "PHOTOS_LOAD_USER_RATE": str(args.user_rate), "PHOTOS_LOAD_LEDGER": str(out / "ledger"),
            "PHOTOS_LOAD_REQUEST_LOG": str(out / "requests")}


async def flush_redis(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


async def trace(tracer: Tracer, window: Window) -> None:
    """The tracer's writes, then the wait until clients read them, timed from the window's injection."""
    await tracer.write()
    window.tracer_acknowledged_after_s = round(time.time() - window.injected_at, 1)
    window.converged_after_s, seen, window.tracer_values = await tracer.until_converged(window.injected_at)
    if window.converged_after_s is None:
        window.notes.append(f"the tracer never converged: expected {tracer.expected()}, read {seen}")


async def run_fault(fault: Fault, args: argparse.Namespace, settings: Settings, tracer: Tracer, out: Path) -> Window:
    window = Window(fault.label, start=time.time())
    window.injected_at = time.time()
    for command in fault.inject:
        print(f"  {await asyncio.to_thread(photos_stack, *command)}")
    if fault.flush_redis:
        await flush_redis(settings)
        print("  redis     flushed (FLUSHALL): every cache, rate limit and feed candidate set is gone")
    tracing = asyncio.create_task(trace(tracer, window))  # from the injection on, beside the down time and the lift
    if fault.lift:
        await asyncio.sleep(max(0.0, window.injected_at + args.down_s - time.time()))
        for command in fault.lift:  # `start` waits until the node answers: the tracer goes on meanwhile
            print(f"  {await asyncio.to_thread(photos_stack, *command)}")
        window.lifted_at = time.time()
    await tracing
    # the window ends once no request failed for a while, and no sooner than --recover-s after the lift
    ends_no_sooner = (window.lifted_at or window.injected_at) + args.recover_s
    deadline = time.time() + TRACER_TIMEOUT_S
    while time.time() < deadline:
        last = last_error_at(out / "requests", window.injected_at)
        now = time.time()
        if now >= ends_no_sooner and (last is None or now - last >= QUIET_AFTER_ERRORS_S):
            break
        await asyncio.sleep(POLL_S)
    else:
        window.notes.append(f"requests still failed {TRACER_TIMEOUT_S:.0f} s after the recovery began")
    window.end = time.time()
    return window


def clear_output(out: Path) -> None:
    """A fresh ledger and request log: the audit must read this run's alone."""
    out.mkdir(parents=True, exist_ok=True)
    for directory in ("ledger", "requests"):
        for old in (out / directory).glob("*.jsonl"):
            old.unlink()


def start_locust(args: argparse.Namespace, out: Path) -> tuple[subprocess.Popen, io.TextIOWrapper]:
    log = (out / "locust.log").open("w")
    return subprocess.Popen(locust_command(args), env=locust_env(args, out), stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO_ROOT), log


def stop_locust(locust: subprocess.Popen, log: io.TextIOWrapper) -> None:
    locust.send_signal(signal.SIGTERM)
    try:
        locust.wait(timeout=60)
    except subprocess.TimeoutExpired:
        locust.kill()
    log.close()


async def run(args: argparse.Namespace, settings: Settings, faults: list[Fault], out: Path) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        tracer = Tracer(http, args.host)
        await tracer.set_up()
        locust, log = start_locust(args, out)
        windows: list[Window] = []
        try:
            await asyncio.sleep(args.warmup_s)
            print(f"quiet     {args.quiet_s:.0f} s of the {args.mix} mix, {args.users} users, no fault")
            quiet = Window("quiet (baseline)", start=time.time())
            await asyncio.sleep(args.quiet_s)
            quiet.end = time.time()
            windows.append(quiet)
            for fault in faults:
                if locust.poll() is not None:
                    raise ChaosError(f"Locust ended early (exit {locust.returncode}); see {out / 'locust.log'}")
                print(f"fault     {fault.label}")
                window = await run_fault(fault, args, settings, tracer, out)
                windows.append(window)
                print(f"          tracer acknowledged after {window.tracer_acknowledged_after_s} s, converged after "
                      f"{window.converged_after_s} s ({window.tracer_values}); errors stopped")
        finally:
            await asyncio.to_thread(stop_locust, locust, log)
    requests = read_requests(out / "requests")
    figures = [window_figures(window, requests) for window in windows]
    print(f"settle    {args.settle_s:.0f} s, then the audit of the ledger")
    await asyncio.sleep(args.settle_s)
    ledger = read_ledger(out / "ledger")
    wiring = Wiring(settings)
    try:
        report = await audit(await wiring.storage(), ledger, settle_timeout_s=args.audit_timeout_s,
                             settings=settings)
    finally:
        await wiring.close()
    problems = list(report.problems) + [f"{w.name}: {note}" for w in windows for note in w.notes]
    result = {"users": args.users, "mix": args.mix, "down_s": args.down_s, "cores": os.cpu_count(),
              "windows": figures, "audit": {"checked": report.checked, "converged_after_s": report.converged_after_s,
                                            "problems": report.problems},
              "problems": problems}
    (out / "report.json").write_text(json.dumps(result, indent=1))
    text = render(result)
    (out / "report.md").write_text(text)
    print(text)
    return 1 if problems else 0


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.0f}" if value >= 10 else f"{value:.1f}"
    return f"{value}{unit}"


def render(result: dict) -> str:
    lines = [
        f"fault run: mix {result['mix']}, {result['users']} Locust users, each fault down {result['down_s']:.0f} s "
        f"(the load generator shares this machine's {result['cores']} cores with every server)",
        "",
        "| window | s | requests | errors | non-2xx by status | p50 ms | p99 ms | errors stopped after s "
        "| tracer converged after s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in result["windows"]:
        statuses = ", ".join(f"{status}: {n}" for status, n in w["non_2xx_by_status"].items()) or "-"
        lines.append(f"| {w['window']} | {fmt(w['seconds'])} | {w['requests']} | {w['errors']} | {statuses} "
                     f"| {fmt(w['p50_ms'])} | {fmt(w['p99_ms'])} | {fmt(w['errors_stopped_after_s'])} "
                     f"| {fmt(w['converged_after_s'])} |")
    traced = [w for w in result["windows"] if w.get("tracer_values")]
    if traced:
        names = list(traced[0]["tracer_values"])
        lines += ["", "tracer, seconds after the injection: its writes acknowledged, then each value clients read "
                      "showing them", "",
                  "| window | writes acknowledged | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        lines += [f"| {w['window']} | {fmt(w['tracer_acknowledged_after_s'])} | "
                  + " | ".join(fmt(w["tracer_values"].get(name)) for name in names) + " |" for w in traced]
    checked = ", ".join(f"{kind} {n}" for kind, n in result["audit"]["checked"].items())
    agreed = fmt(result["audit"]["converged_after_s"])
    lines += ["", f"audit: checked {checked}; derived values agreed after {agreed} s"]
    if result["problems"]:
        lines += ["", f"FAILED: {len(result['problems'])} problems", *(f"- {p}" for p in result["problems"])]
    else:
        lines += ["", "nothing acknowledged was lost; every derived value checked equals what the truth implies"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="the API's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".stack" / "load" / "chaos")
    parser.add_argument("--faults", default=",".join(FAULT_NAMES),
                        help=f"comma-separated, in order (default: all): {', '.join(FAULT_NAMES)}")
    parser.add_argument("--users", type=int, default=15, help="Locust users (each one account, ~1 request/s)")
    parser.add_argument("--user-rate", type=float, default=1.0)
    parser.add_argument("--mix", default="seed")
    parser.add_argument("--credentials", type=Path,
                        default=Path(os.environ.get("PHOTOS_LOAD_CREDENTIALS") or
                                     REPO_ROOT / ".stack" / "load" / "credentials.jsonl"))
    parser.add_argument("--warmup-s", type=float, default=20, help="load before the quiet window is measured")
    parser.add_argument("--quiet-s", type=float, default=60, help="the baseline window")
    parser.add_argument("--down-s", type=float, default=30, help="how long a killed or paused node stays down")
    parser.add_argument("--recover-s", type=float, default=20, help="a fault's window lasts this long after it ends")
    parser.add_argument("--settle-s", type=float, default=10, help="pause between the load's end and the audit")
    parser.add_argument("--audit-timeout-s", type=float, default=180, help="how long derived values may take")
    args = parser.parse_args(argv)
    unknown = [name for name in args.faults.split(",") if name not in FAULT_NAMES]
    if unknown or not args.faults:
        parser.error(f"--faults: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(FAULT_NAMES)}")
    for name in ("users", "down_s", "quiet_s"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def stack_settings() -> tuple[Settings, Topology]:
    """The settings of the local stack, pointed at its cluster as photos-stack points its own processes."""
    settings = Settings.from_env()
    stack_dir = Path(settings.stack_dir)
    told = stack_dir / "cluster.env"
    if told.exists():
        os.environ.update({k: v for k, v in read_environment_file(told).items() if k not in os.environ})
        settings = Settings.from_env()
    return settings, recorded_topology(stack_dir)


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args(argv)
    try:
        credentials = len(load_credentials(args.credentials))
        if credentials < args.users:  # two users on one account: the ledger would not know its order
            raise ChaosError(f"--users {args.users}: {args.credentials} has {credentials} accounts, and each user "
                             "needs its own; seed more (photos-seed) or ask for fewer users")
        settings, topology = stack_settings()
        faults = plan_faults(args.faults.split(","), topology)
        print("stack     " + photos_stack("status").replace("\n", "\n          "))
        clear_output(args.out)
        return asyncio.run(run(args, settings, faults, args.out))
    except (ChaosError, LoadSetupError) as error:
        print(f"loadtest.chaos: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
