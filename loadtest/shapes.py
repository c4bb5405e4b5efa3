"""Load shapes with SLOs: Locust raises, spikes or holds the offered load and judges every phase.

`python -m loadtest.run` hands this file to Locust beside the locustfile and configures it through
the environment (PHOTOS_SHAPE_*). Each phase runs a number of users for some seconds; after a warm-up
its window is measured from Locust's own statistics (per route: requests, failures, and the
response-time histogram, differenced between the window's ends) and judged against the SLOs of the
traffic model. Results go to `<PHOTOS_LOAD_OUT>/phases.json` as each phase ends.

- `step`: users rise by a step at a time until a phase breaks an SLO; the last phase that held is the knee.
- `spike`: a base load, a sudden multiple of it, and the base again; every phase must hold.
- `soak`: one load held for a long time, judged window by window; every window must hold.
- `profile`: the per-route cost phase: each task of the mix alone for a few seconds (after an idle
  window that measures what the deployment burns doing nothing), so the API's CPU per request can be
  read route by route. Runs in one process (it steers the users through `load_state.focus`).

A phase holds when the users got the offered throughput (at least 90% of users x rate: a system
that cannot keep up shows as falling throughput before it shows as latency) and every route with
enough requests to judge met its p99 and error-ratio objective.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from locust import LoadTestShape

from loadtest import load_state
from loadtest import traffic as traffic_model

MIN_REQUESTS_TO_JUDGE = 20  # a route with fewer requests in a window has no meaningful p99
KEEP_UP_RATIO = 0.9  # throughput below this share of the offered load breaks the phase


@dataclass
class Phase:
    name: str
    users: int
    seconds: float
    warmup: float = 0.0
    focus: str | None = None  # profile phases: the one task every user runs
    judged: bool = True


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def plan(shape: str, tasks: list[str]) -> list[Phase]:
    """The phases of a shape, from PHOTOS_SHAPE_* settings (loadtest.run sets them from its flags)."""
    warmup = _env_float("PHOTOS_SHAPE_WARMUP_S", 5)
    if shape == "step":
        start, step = int(_env_float("PHOTOS_SHAPE_START_USERS", 10)), int(_env_float("PHOTOS_SHAPE_STEP_USERS", 10))
        top, seconds = int(_env_float("PHOTOS_SHAPE_MAX_USERS", 1000)), _env_float("PHOTOS_SHAPE_STEP_S", 30)
        return [Phase(f"step {n + 1}", users, seconds, warmup)
                for n, users in enumerate(range(start, top + 1, step))]
    if shape == "spike":
        base, factor = int(_env_float("PHOTOS_SHAPE_START_USERS", 10)), _env_float("PHOTOS_SHAPE_SPIKE_FACTOR", 3)
        seconds = _env_float("PHOTOS_SHAPE_STEP_S", 30)
        return [Phase("base", base, seconds, warmup), Phase("spike", int(base * factor), seconds, 0.0),
                Phase("recovery", base, seconds, warmup)]
    if shape == "soak":
        users, total = int(_env_float("PHOTOS_SHAPE_START_USERS", 10)), _env_float("PHOTOS_SHAPE_DURATION_S", 600)
        window = _env_float("PHOTOS_SHAPE_STEP_S", 60)
        windows = max(1, round(total / window))
        return [Phase(f"window {n + 1}", users, window, warmup if n == 0 else 0.0) for n in range(windows)]
    if shape == "profile":
        users, seconds = int(_env_float("PHOTOS_SHAPE_START_USERS", 10)), _env_float("PHOTOS_SHAPE_STEP_S", 8)
        # the tasks that find targets for the others go first (posts, story authors, stories)
        first = [t for t in ("home_feed", "story_tray", "user_stories") if t in tasks]
        ordered = first + [t for t in tasks if t not in first]
        return [Phase("idle", 0, _env_float("PHOTOS_SHAPE_IDLE_S", 6), 1.0, judged=False)] + [
            Phase(f"only {task}", users, seconds, min(warmup, seconds / 3), focus=task, judged=False)
            for task in ordered
        ]
    raise ValueError(f"unknown shape {shape!r}")


def snapshot(stats) -> dict[str, tuple[int, int, dict[int, int]]]:
    """Per route ("<METHOD> <template>"): requests, failures and the response-time histogram so far."""
    return {
        f"{entry.method} {entry.name}": (entry.num_requests, entry.num_failures, dict(entry.response_times))
        for entry in stats.entries.values()
    }


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    needed, seen = fraction * total, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= needed:
            return float(value)
    return float(max(histogram))


def window(before: dict, after: dict, seconds: float) -> dict[str, dict]:
    """Each route's requests, failures, rate and percentiles between two snapshots."""
    routes: dict[str, dict] = {}
    for route, (requests, failures, times) in after.items():
        was_requests, was_failures, was_times = before.get(route, (0, 0, {}))
        histogram = {ms: count - was_times.get(ms, 0) for ms, count in times.items() if count > was_times.get(ms, 0)}
        count = requests - was_requests
        if count <= 0:
            continue
        errors = failures - was_failures
        routes[route] = {
            "requests": count, "failures": errors, "requests_per_s": count / seconds,
            "p50_ms": percentile(histogram, 0.50), "p99_ms": percentile(histogram, 0.99),
            "error_ratio": errors / count,
            "_histogram": histogram,
        }
    return routes


def judge(routes: dict[str, dict], traffic: traffic_model.Traffic, offered_per_s: float, seconds: float) -> dict:
    """Totals of a window and whether it held, with the reason for every break."""
    total = sum(r["requests"] for r in routes.values())
    failures = sum(r["failures"] for r in routes.values())
    merged: dict[int, int] = {}
    for route in routes.values():
        for ms, count in route.pop("_histogram").items():
            merged[ms] = merged.get(ms, 0) + count
    broken = []
    for name, route in sorted(routes.items()):
        slo = traffic.slo(name)
        route["slo"] = {"p99_ms": slo.p99_ms, "error_ratio": slo.error_ratio}
        if route["requests"] < MIN_REQUESTS_TO_JUDGE:
            route["held"] = None  # too few to judge
            continue
        route["held"] = route["p99_ms"] <= slo.p99_ms and route["error_ratio"] <= slo.error_ratio
        if route["p99_ms"] > slo.p99_ms:
            broken.append(f"{name} p99 {route['p99_ms']:.0f} ms > {slo.p99_ms:.0f} ms")
        if route["error_ratio"] > slo.error_ratio:
            broken.append(f"{name} errors {route['error_ratio']:.1%} > {slo.error_ratio:.1%}")
    throughput = total / seconds if seconds else 0.0
    if offered_per_s and throughput < KEEP_UP_RATIO * offered_per_s:
        broken.append(f"throughput {throughput:.1f}/s < {KEEP_UP_RATIO:.0%} of the {offered_per_s:.1f}/s offered")
    return {
        "requests": total, "requests_per_s": throughput, "offered_per_s": offered_per_s,
        "p50_ms": percentile(merged, 0.50), "p99_ms": percentile(merged, 0.99),
        "error_ratio": failures / total if total else 0.0,
        "held": not broken, "broken": broken, "routes": routes,
    }


class PhotosShape(LoadTestShape):
    """Runs the phases of PHOTOS_LOAD_SHAPE and records each one's judgement."""

    def __init__(self) -> None:
        super().__init__()
        self.shape = os.environ.get("PHOTOS_LOAD_SHAPE", "step")
        self.traffic = traffic_model.load(os.environ.get("PHOTOS_LOAD_TRAFFIC"))
        mix = os.environ.get("PHOTOS_LOAD_MIX", "seed")
        self.phases = plan(self.shape, list(self.traffic.weights(mix)))
        self.user_rate = _env_float("PHOTOS_LOAD_USER_RATE", 1)
        self.out = Path(os.environ.get("PHOTOS_LOAD_OUT", "."))
        self.results: list[dict] = []
        self.index = -1
        self.started = 0.0
        self.before: tuple[float, dict] | None = None
        self.stopped = False

    def tick(self):
        if self.stopped:
            return None
        now = self.get_run_time()
        if self.index < 0 or now - self.started >= self.phases[self.index].seconds:
            if self.index >= 0:
                self._finish(self.phases[self.index])
                if self.stopped:
                    return None
            self.index += 1
            if self.index >= len(self.phases):
                self.stopped = True
                return None
            phase = self.phases[self.index]
            self.started, self.before = now, None
            load_state.focus = phase.focus
        phase = self.phases[self.index]
        if self.before is None and now - self.started >= phase.warmup:
            self.before = (time.time(), snapshot(self.runner.stats))
        return phase.users, max(phase.users, 1)  # every user of a phase starts within a second

    def _finish(self, phase: Phase) -> None:
        if self.before is None:
            return
        started_at, before = self.before
        ended_at = time.time()
        seconds = ended_at - started_at
        routes = window(before, snapshot(self.runner.stats), seconds)
        offered = phase.users * self.user_rate if phase.judged else 0.0
        result = {**asdict(phase), "started_at": started_at, "ended_at": ended_at, "window_s": seconds,
                  **judge(routes, self.traffic, offered, seconds)}
        if not phase.judged:
            result["held"], result["broken"] = None, []
        self.results.append(result)
        self._write()
        if self.shape == "step" and result["held"] is False:
            self.stopped = True

    def _write(self) -> None:
        document = {"shape": self.shape, "user_rate": self.user_rate, "phases": self.results}
        temporary = self.out / "phases.json.tmp"
        temporary.write_text(json.dumps(document, indent=1))
        temporary.replace(self.out / "phases.json")
