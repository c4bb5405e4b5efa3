"""The capacity suite end to end against the test API: a tiny seed, the Locust scenarios, a step run.

Slow-ish (about a minute and a half): the seeder, then Locust for ~15 s with every task equally
likely, then `loadtest.run --shape step` with short phases and the per-route cost run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import traffic as traffic_model
from tests.e2e.processes import metrics_url

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seeded(api_url, streams_worker, tmp_path_factory) -> Path:
    """A tiny data set of its own (a random seed: runs never share accounts) and its credentials file."""
    out = tmp_path_factory.mktemp("load")
    seed = random.randrange(1, 10**9)  # photos-seed takes 0 to 999,999,999
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.seed", "--users", "60", "--seed", str(seed), "--out", str(out),
         "--no-trending", "--no-progress"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "credentials.jsonl").stat().st_size > 0
    return out


def stats_by_route(path: Path) -> dict[str, dict]:
    with path.open() as file:
        return {f"{row['Type']} {row['Name']}": row for row in csv.DictReader(file) if row["Name"] != "Aggregated"}


def test_every_scenario_task_runs_and_succeeds(seeded: Path, api_url: str, tmp_path: Path):
    env = {**os.environ, "PHOTOS_LOAD_CREDENTIALS": str(seeded / "credentials.jsonl"),
           "PHOTOS_LOAD_MIX": "uniform", "PHOTOS_LOAD_USER_RATE": "4"}
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtest" / "locustfile.py"), "--host", api_url,
         "--headless", "-u", "8", "-r", "8", "-t", "15s", "--csv", str(tmp_path / "smoke"), "--only-summary",
         "--exit-code-on-error", "0"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stats = stats_by_route(tmp_path / "smoke_stats.csv")
    failures = (tmp_path / "smoke_failures.csv").read_text()
    for task in traffic_model.load().tasks.values():
        row = stats.get(task.route)
        assert row is not None, f"task {task.name} ({task.route}) never ran; ran: {sorted(stats)}"
        assert int(row["Request Count"]) > 0, task.route
        assert int(row["Failure Count"]) == 0, f"{task.route} failed:\n{failures}"


def test_a_step_run_finds_a_knee_and_writes_the_profile(seeded: Path, api_url: str, tmp_path: Path):
    # SLOs this busy test machine can meet: the point is the machinery, not the figures
    lenient = tmp_path / "traffic.toml"
    lenient.write_text(traffic_model.DEFAULT_PATH.read_text().replace("p99_ms = 250", "p99_ms = 20_000", 1))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.run", "--shape", "step", "--host", api_url, "--out", str(out),
         "--traffic", str(lenient), "--credentials", str(seeded / "credentials.jsonl"),
         "--start-users", "3", "--step-users", "3", "--max-users", "6", "--step-seconds", "8", "--warmup", "2",
         "--profile-users", "2", "--profile-seconds", "2", "--no-storage", "--metrics-url", metrics_url(api_url)],
        cwd=REPO_ROOT, env={**os.environ, "PHOTOS_SHAPE_IDLE_S": "3"}, capture_output=True, text=True, timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # both phases ran and were judged; on a busy machine the second may fall behind its offered load
    phases = json.loads((out / "phases.json").read_text())["phases"]
    assert [p["users"] for p in phases] == [3, 6], done.stdout
    knee = [p for p in phases if p["held"]][-1]
    assert f"knee: {knee['name']}, {knee['users']} users" in done.stdout, done.stdout
    for name in ("steps.png", "phases.json", "locust_stats.csv", "locust_stats_history.csv", "locust_report.html"):
        assert (out / name).stat().st_size > 0, name
    profile = json.loads((out / "profile.json").read_text())
    assert profile["schema"] == 1 and profile["mix"] == "seed"
    assert profile["knee"]["users"] == knee["users"] and profile["knee"]["requests_per_s"] > 2
    feed = profile["routes"]["GET /v1/feed"]
    assert feed["requests_per_s"] > 0 and feed["p99_ms"] is not None
    # the API's own metrics: a feed page reads Cassandra and publishes nothing
    assert feed["cassandra_requests"] > 0 and feed["kafka_messages"] == 0
    like = profile["routes"].get("PUT /v1/posts/{post_id}/like")
    if like is not None:
        assert like["kafka_messages"] >= 1
    # the per-route run measured the API's CPU for the routes it sent alone
    assert feed["api_cpu_ms"] is not None and feed["api_cpu_ms"] > 0
    assert profile["cpu"]["cores"]["api"] > 0
