"""The load tools' arithmetic and their refusals: windows, percentiles, SLO judgement, the traffic file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import slo
from loadtest import traffic as traffic_model
from loadtest.run import Sample, Sampler, api_cpu_by_route, route_costs

REPO_ROOT = Path(__file__).resolve().parents[2]

TRAFFIC = """
[tasks.feed]
route = "GET /v1/feed"
rate = 300
source = "seed"

[tasks.like]
route = "PUT /v1/posts/{post_id}/like"
rate = 100
source = "assumed"

[mixes.seed]
weights = "rates"

[mixes.likes]
weights = { like = 1 }

[slo.default]
p99_ms = 100
error_ratio = 0.01

[slo."PUT /v1/posts/{post_id}/like"]
p99_ms = 300
"""


def traffic_from(text: str, tmp_path: Path) -> traffic_model.Traffic:
    path = tmp_path / "traffic.toml"
    path.write_text(text)
    return traffic_model.load(path)


def test_the_shipped_traffic_file_is_valid_and_weights_the_seed_by_rate():
    traffic = traffic_model.load()
    seed = traffic.weights("seed")
    assert seed["home_feed"] == traffic.tasks["home_feed"].rate == 867_000
    assert seed["upload"] == 1_150
    assert set(traffic.weights("timelines")) == {"home_feed", "user_grid", "upload"}
    assert set(traffic.weights("uniform")) == set(traffic.tasks)
    assert traffic.weights("only:like") == {"like": 1.0}
    # every task's route is unique, so Locust's statistics, the SLOs and the metrics line up one to one
    routes = [task.route for task in traffic.tasks.values()]
    assert len(routes) == len(set(routes))


def test_slo_overrides_inherit_the_default(tmp_path):
    traffic = traffic_from(TRAFFIC, tmp_path)
    assert traffic.slo("GET /v1/feed") == traffic_model.Slo(100, 0.01)
    assert traffic.slo("PUT /v1/posts/{post_id}/like") == traffic_model.Slo(300, 0.01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('rate = 300', 'rate = -1'), "rate must be a positive number"),
        (lambda t: t.replace('source = "seed"', 'source = "guessed"'), "source must be one of"),
        (lambda t: t.replace('weights = { like = 1 }', 'weights = { share = 1 }'), "tasks that do not exist: share"),
        (lambda t: t.replace('[slo.default]', '[slo.other]'), "needs an [slo.default] table"),
        (lambda t: t.replace('route = "GET /v1/feed"', 'route = "feed"'), "route must be '<METHOD> /path'"),
        (lambda t: t + "\n[[[", "is not valid TOML"),
    ],
)
def test_a_malformed_traffic_file_is_refused_in_one_line(tmp_path, change, message):
    with pytest.raises(traffic_model.TrafficError) as refused:
        traffic_from(change(TRAFFIC), tmp_path)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_percentile_of_a_histogram():
    histogram = {10: 50, 20: 45, 500: 5}  # 100 requests
    assert slo.percentile(histogram, 0.5) == 10
    assert slo.percentile(histogram, 0.95) == 20
    assert slo.percentile(histogram, 0.99) == 500
    assert slo.percentile({}, 0.99) is None


def test_a_window_is_the_difference_of_two_snapshots():
    before = {"GET /v1/feed": (100, 1, {10: 90, 20: 10})}
    after = {"GET /v1/feed": (300, 3, {10: 250, 20: 10, 400: 40}), "PUT /v1/posts/{post_id}/like": (5, 0, {30: 5})}
    routes = slo.window(before, after, seconds=10.0)
    feed = routes["GET /v1/feed"]
    # 200 new requests: 160 at 10 ms and 40 at 400 ms; 2 new failures
    assert (feed["requests"], feed["failures"], feed["requests_per_s"]) == (200, 2, 20.0)
    assert feed["p50_ms"] == 10 and feed["p99_ms"] == 400
    assert feed["error_ratio"] == pytest.approx(0.01)
    assert routes["PUT /v1/posts/{post_id}/like"]["requests"] == 5


def test_a_phase_breaks_on_p99_on_errors_and_on_falling_behind(tmp_path):
    traffic = traffic_from(TRAFFIC, tmp_path)
    ok = {"GET /v1/feed": (0, 0, {})}
    after = {"GET /v1/feed": (100, 0, {50: 100}), "PUT /v1/posts/{post_id}/like": (40, 0, {250: 40})}
    held = slo.judge(slo.window(ok, after, 1.0), traffic, offered_per_s=140, seconds=1.0)
    assert held["held"] and held["broken"] == [] and held["requests_per_s"] == 140

    slow = {"GET /v1/feed": (100, 0, {50: 98, 150: 2})}
    broken = slo.judge(slo.window(ok, slow, 1.0), traffic, offered_per_s=100, seconds=1.0)
    assert not broken["held"] and broken["broken"] == ["GET /v1/feed p99 150 ms > 100 ms"]

    failing = {"GET /v1/feed": (100, 2, {50: 100})}
    assert slo.judge(slo.window(ok, failing, 1.0), traffic, 100, 1.0)["broken"] == [
        "GET /v1/feed errors 2.0% > 1.0%"]

    behind = slo.judge(slo.window(ok, {"GET /v1/feed": (80, 0, {50: 80})}, 1.0), traffic, 100, 1.0)
    assert behind["broken"] == ["throughput 80.0/s < 90% of the 100.0/s offered"]


def test_a_route_with_too_few_requests_is_not_judged(tmp_path):
    traffic = traffic_from(TRAFFIC, tmp_path)
    after = {"GET /v1/feed": (100, 0, {50: 100}), "PUT /v1/posts/{post_id}/like": (3, 1, {900: 3})}
    result = slo.judge(slo.window({}, after, 1.0), traffic, 0, 1.0)
    assert result["held"] and result["routes"]["PUT /v1/posts/{post_id}/like"]["held"] is None


def test_step_plan_rises_by_a_step_until_the_top(monkeypatch):
    for name, value in {"START_USERS": "10", "STEP_USERS": "15", "MAX_USERS": "50", "STEP_S": "20"}.items():
        monkeypatch.setenv(f"PHOTOS_SHAPE_{name}", value)
    assert [p.users for p in slo.plan("step", ["feed"])] == [10, 25, 40]
    profile = slo.plan("profile", ["like", "home_feed", "story_tray"])
    # idle, the target finders first, then the rest, and idle again (the quieter idle window is the baseline)
    assert [p.focus for p in profile] == [None, "home_feed", "story_tray", "like", None]
    assert profile[0].users == profile[-1].users == 0


def test_route_costs_divide_by_what_the_api_served():
    labels = (("method", "GET"), ("route", "/v1/feed"), ("status", "200"))
    before = {("photos_http_requests_total", labels): 10.0}
    after = {
        ("photos_http_requests_total", labels): 30.0,  # 20 served in the window
        ("photos_cassandra_requests_total", (("route", "GET /v1/feed"), ("table", "feed_items"))): 20.0,
        ("photos_cassandra_requests_total", (("route", "GET /v1/feed"), ("table", "posts"))): 60.0,
        ("photos_redis_commands_total", (("route", "GET /v1/feed"),)): 50.0,
    }
    cost = route_costs(before, after)["GET /v1/feed"]
    assert cost["served"] == 20
    assert cost["cassandra_requests"] == 4.0
    assert cost["cassandra_by_table"] == {"feed_items": 1.0, "posts": 3.0}
    assert cost["redis_commands"] == 2.5 and cost["kafka_messages"] == 0.0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadtest.run", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)


def test_run_refuses_bad_input_in_one_line(tmp_path):
    credentials = tmp_path / "credentials.jsonl"
    common = ["--shape", "step", "--out", str(tmp_path / "out")]

    missing = run_cli(*common, "--host", "http://127.0.0.1:9", "--credentials", str(credentials))
    assert missing.returncode == 2 and "no credentials file" in missing.stderr

    credentials.write_text("")
    empty = run_cli(*common, "--host", "http://127.0.0.1:9", "--credentials", str(credentials))
    assert empty.returncode == 2 and "is empty" in empty.stderr

    credentials.write_text('{"user_id": "1", "username": "a", "token": "t"}\n')
    unreachable = run_cli(*common, "--host", "http://127.0.0.1:9", "--credentials", str(credentials))
    assert unreachable.returncode == 2 and "cannot reach the API at http://127.0.0.1:9" in unreachable.stderr

    bad_traffic = tmp_path / "traffic.toml"
    bad_traffic.write_text("[tasks.x]\nroute = 3\n")
    malformed = run_cli(*common, "--host", "http://127.0.0.1:9", "--credentials", str(credentials),
                        "--traffic", str(bad_traffic))
    assert malformed.returncode == 2 and "route must be" in malformed.stderr

    for refused in (missing, empty, unreachable, malformed):
        assert "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_the_route_cpu_baseline_is_the_quieter_idle_window():
    """Right after a load run the API may still be busy (refills, catch-up): the idle window before the tasks
    then burns more than the one after them, and only the quieter one is taken as what the API burns idle."""
    served = ("photos_http_request_seconds_count", (("method", "GET"), ("route", "GET /v1/feed"), ("status", "200")))
    # API CPU seconds at 0, 10, 20, 30 s: 3 s of CPU in the first idle window, 4 s in the feed's, 0.5 s after
    points = [(0.0, 0.0, 0), (10.0, 3.0, 0), (20.0, 7.0, 100), (30.0, 7.5, 100)]
    sampler = Sampler([], None, None)
    sampler.samples = [Sample(at, {served: n}, {}, {"api": cpu}) for at, cpu, n in points]
    phases = [
        {"focus": None, "started_at": 0.0, "ended_at": 10.0, "routes": {}},
        {"focus": "home_feed", "started_at": 10.0, "ended_at": 20.0, "routes": {"GET /v1/feed": {"requests": 100}}},
        {"focus": None, "started_at": 20.0, "ended_at": 30.0, "routes": {}},
    ]
    # (4 s - 0.05 cores x 10 s) / 100 requests = 35 ms; the first window's 0.3 cores would have left 10 ms
    assert api_cpu_by_route(phases, sampler) == {"GET /v1/feed": 35.0}
