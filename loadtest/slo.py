"""Judging load phases against the SLOs of the traffic model (pure: no Locust import, so tests and tools can use it).

loadtest/shapes.py runs the phases inside Locust; this module plans them and judges their windows.
A phase holds when the users got the offered throughput (at least 90% of users x rate: a system
that cannot keep up shows as falling throughput before it shows as latency) and every route with
enough requests to judge met its p99 and error-ratio objective.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def plan(shape: str, tasks: list[str]) -> list[Phase]:
    """The phases of a shape, from PHOTOS_SHAPE_* settings (loadtest.run sets them from its flags)."""
    warmup = env_float("PHOTOS_SHAPE_WARMUP_S", 5)
    if shape == "step":
        start, step = int(env_float("PHOTOS_SHAPE_START_USERS", 10)), int(env_float("PHOTOS_SHAPE_STEP_USERS", 10))
        top, seconds = int(env_float("PHOTOS_SHAPE_MAX_USERS", 1000)), env_float("PHOTOS_SHAPE_STEP_S", 30)
        return [Phase(f"step {n + 1}", users, seconds, warmup)
                for n, users in enumerate(range(start, top + 1, step))]
    if shape == "spike":
        base, factor = int(env_float("PHOTOS_SHAPE_START_USERS", 10)), env_float("PHOTOS_SHAPE_SPIKE_FACTOR", 3)
        seconds = env_float("PHOTOS_SHAPE_STEP_S", 30)
        return [Phase("base", base, seconds, warmup), Phase("spike", int(base * factor), seconds, 0.0),
                Phase("recovery", base, seconds, warmup)]
    if shape == "soak":
        users, total = int(env_float("PHOTOS_SHAPE_START_USERS", 10)), env_float("PHOTOS_SHAPE_DURATION_S", 600)
        window = env_float("PHOTOS_SHAPE_STEP_S", 60)
        windows = max(1, round(total / window))
        return [Phase(f"window {n + 1}", users, window, warmup if n == 0 else 0.0) for n in range(windows)]
    if shape == "profile":
        users, seconds = int(env_float("PHOTOS_SHAPE_START_USERS", 10)), env_float("PHOTOS_SHAPE_STEP_S", 8)
        # the tasks that find targets for the others go first (posts, story authors, stories)
        first = [t for t in ("home_feed", "story_tray", "user_stories") if t in tasks]
        ordered = first + [t for t in tasks if t not in first]
        # idle before and after: right after a load run the deployment may still be busy with its
        # background work, so the quieter of the two windows is what it burns doing nothing
        idle_s = env_float("PHOTOS_SHAPE_IDLE_S", 6)
        return [Phase("idle", 0, idle_s, 1.0, judged=False)] + [
            Phase(f"only {task}", users, seconds, min(warmup, seconds / 3), focus=task, judged=False)
            for task in ordered
        ] + [Phase("idle after", 0, idle_s, 1.0, judged=False)]
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


