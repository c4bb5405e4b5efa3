"""Load shapes with SLOs, and what each request costs: `python -m loadtest.run --shape step --host URL --out DIR`.

Runs Locust (loadtest/locustfile.py with loadtest/shapes.py) headless against any deployment, and
beside it samples, once a second, the API's Prometheus metrics (per-route Cassandra requests, Redis
commands, Kafka messages, the API's CPU; docs/metrics.md), the stream workers' metrics when it can
reach them, and, on the machine the stack runs on, the CPU of every process kind. Then:

- `step` finds the knee: the highest load whose phase held every SLO. A second, short run (`profile`)
  sends each task alone so the API's CPU per request can be read route by route.
- `spike` and `soak` exit non-zero when any phase broke an SLO.

Into DIR: Locust's CSV (`locust_stats.csv`, `locust_stats_history.csv`, failures) and HTML report,
`phases.json` (every phase judged), `steps.png` (throughput against p50/p99 per phase) and
`profile.json` (the knee, per-route costs, CPU per process kind, bytes stored; the capacity
planner's input, docs/capacity-planner.md). docs/capacity.md shows the commands and the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psutil
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from infra.supervise import read_state
from loadtest import traffic as traffic_model
from loadtest.credentials import LoadSetupError, load_credentials

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
RUN_DIR = REPO_ROOT / ".stack" / "run"  # the local stack's supervisor state files (infra/supervise.py)
PROCESS_KINDS = ("api", "streams", "cassandra", "kafka", "redis")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_STREAMS_METRICS = "http://127.0.0.1:9464/metrics"
SAMPLE_EVERY_S = 0.5
DISTRIBUTED_MIN_WINDOW_S = 30
PROFILE_USER_RATE = 3  # requests a second each user of the per-route run offers: enough to rise above noise


class RunError(Exception):
    """The run cannot go on; one line says why."""


# --- sampling what the deployment does -------------------------------------------------------------
@dataclass
class Sample:
    at: float  # wall clock
    api: dict[tuple, float]  # (metric, labels...) -> value
    streams: dict[tuple, float]
    cpu: dict[str, float]  # process kind -> CPU seconds so far


def scrape(url: str, timeout: float = 2.0) -> dict[tuple, float]:
    """A Prometheus text page as {(sample name, sorted label items): value}; {} when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return {}
    values: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _tree(pid: int | None) -> list[psutil.Process]:
    if not isinstance(pid, int):
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class LocalProcesses:
    """The CPU of the local stack's processes by kind, found through their supervisors' state files."""

    def __init__(self, run_dir: Path, kinds: tuple[str, ...], loadgen: list[psutil.Process]) -> None:
        self.run_dir = run_dir
        self.kinds = kinds
        self.loadgen = loadgen

    def available(self) -> bool:
        return any((self.run_dir / f"{kind}.state.json").exists() for kind in self.kinds)

    def cpu_seconds(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for kind in self.kinds:
            state = read_state(self.run_dir / f"{kind}.state.json") or {}
            seconds[kind] = _cpu(_tree(state.get("child_pid")))
        seconds["loadgen"] = _cpu([p for root in self.loadgen for p in _tree(root.pid)])
        return seconds


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Sampler:
    """Samples every source twice a second in a thread, until stopped."""

    metrics_urls: list[str]
    streams_url: str | None
    local: LocalProcesses | None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append(self.take())
            if self._stop.wait(SAMPLE_EVERY_S):
                self.samples.append(self.take())
                return

    def take(self) -> Sample:
        api: dict[tuple, float] = {}
        for url in self.metrics_urls:  # several hosts: their counters add up
            for key, value in scrape(url).items():
                api[key] = api.get(key, 0.0) + value
        streams = scrape(self.streams_url) if self.streams_url else {}
        cpu = self.local.cpu_seconds() if self.local else {}
        return Sample(time.time(), api, streams, cpu)

    def around(self, started_at: float, ended_at: float) -> tuple[Sample, Sample] | None:
        """The deployment's state at a window's two ends, each interpolated between the samples beside it
        (a sample a second, so a window of a few seconds is not stretched to whole seconds)."""
        start, end = self.at(started_at), self.at(ended_at)
        return (start, end) if start is not None and end is not None and end.at > start.at else None

    def outer(self, started_at: float, ended_at: float) -> tuple[Sample, Sample] | None:
        """The samples just outside a window, as taken: counters per request (a route's Cassandra requests,
        Kafka messages) divide whole requests, where interpolating would split a request's counters,
        which move at different moments of it (its publish before its response)."""
        samples = list(self.samples)
        before = [s for s in samples if s.at <= started_at]
        after = [s for s in samples if s.at >= ended_at]
        return (before[-1], after[0]) if before and after and after[0].at > before[-1].at else None

    def at(self, moment: float) -> Sample | None:
        samples = list(self.samples)
        before = [s for s in samples if s.at <= moment]
        after = [s for s in samples if s.at >= moment]
        if not before or not after:
            return None
        a, b = before[-1], after[0]
        if b.at == a.at:
            return a
        share = (moment - a.at) / (b.at - a.at)
        return Sample(moment, _between(a.api, b.api, share), _between(a.streams, b.streams, share),
                      _between(a.cpu, b.cpu, share))


def _between(a: dict, b: dict, share: float) -> dict:
    return {key: a.get(key, 0.0) + (value - a.get(key, 0.0)) * share for key, value in b.items()}


# --- turning samples into costs ----------------------------------------------------------------------
def _route_key(labels: dict[str, str]) -> str:
    route = labels.get("route", "")
    if " " in route or "method" not in labels:
        return route
    return f"{labels['method']} {route}"


def deltas(before: dict[tuple, float], after: dict[tuple, float], metric: str) -> list[tuple[dict, float]]:
    rows = []
    for (name, labels), value in after.items():
        if name != metric:
            continue
        change = value - before.get((name, labels), 0.0)
        if change > 0:
            rows.append((dict(labels), change))
    return rows


def route_costs(before: dict, after: dict) -> dict[str, dict]:
    """Per route served in a window: requests (the API's own count) and Cassandra/Redis/Kafka work per request."""
    served: dict[str, float] = {}
    for labels, change in deltas(before, after, "photos_http_requests_total"):
        served[_route_key(labels)] = served.get(_route_key(labels), 0.0) + change
    costs: dict[str, dict] = {}
    for route, requests in served.items():
        costs[route] = {"served": requests, "cassandra_requests": 0.0, "cassandra_by_table": {},
                        "redis_commands": 0.0, "redis_round_trips": 0.0, "kafka_messages": 0.0, "kafka_by_topic": {}}

    def add(metric: str, field_name: str, by: str | None = None, by_field: str | None = None) -> None:
        for labels, change in deltas(before, after, metric):
            cost = costs.get(_route_key(labels))
            if cost is None:
                continue
            cost[field_name] += change / cost["served"]
            if by and by_field:
                key = labels.get(by, "?")
                cost[by_field][key] = cost[by_field].get(key, 0.0) + change / cost["served"]

    add("photos_cassandra_requests_total", "cassandra_requests", "table", "cassandra_by_table")
    add("photos_redis_commands_total", "redis_commands")
    add("photos_redis_round_trips_total", "redis_round_trips")
    add("photos_kafka_messages_total", "kafka_messages", "topic", "kafka_by_topic")
    return costs


def counter_total(before: dict, after: dict, metric: str, **match: str) -> float:
    return sum(change for labels, change in deltas(before, after, metric)
               if all(labels.get(k) == v for k, v in match.items()))


def api_cpu_seconds(before: Sample, after: Sample) -> float | None:
    """The API's CPU in a window. On the stack's own machine, its process tree's (the image pool's worker
    processes included); elsewhere the API's own counter, which sees only the API processes themselves."""
    if "api" in after.cpu:
        return after.cpu["api"] - before.cpu.get("api", 0.0)
    from_metrics = counter_total(before.api, after.api, "photos_process_cpu_seconds_total", kind="api")
    return from_metrics if from_metrics > 0 else None


# --- running Locust -------------------------------------------------------------------------------------
def locust_command(args: argparse.Namespace, out: Path, prefix: str) -> list[str]:
    command = [
        sys.executable, "-m", "locust",
        "-f", f"{HERE / 'locustfile.py'},{HERE / 'shapes.py'}",
        "--host", args.host, "--headless", "--only-summary",
        "--csv", str(out / prefix), "--csv-full-history", "--html", str(out / f"{prefix}_report.html"),
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]
    if args.processes and prefix == "locust":
        command += ["--processes", str(args.processes)]
    if args.expect_workers and prefix == "locust":
        command += ["--master", "--expect-workers", str(args.expect_workers)]
    return command


def shape_env(args: argparse.Namespace, out: Path, shape: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PHOTOS_LOAD_SHAPE": shape, "PHOTOS_LOAD_OUT": str(out), "PHOTOS_LOAD_MIX": args.mix,
        "PHOTOS_LOAD_TRAFFIC": str(args.traffic), "PHOTOS_LOAD_CREDENTIALS": str(args.credentials),
        "PHOTOS_LOAD_USER_RATE": str(args.user_rate), "PHOTOS_SHAPE_WARMUP_S": str(args.warmup),
        "PHOTOS_SHAPE_START_USERS": str(args.start_users), "PHOTOS_SHAPE_STEP_USERS": str(args.step_users),
        "PHOTOS_SHAPE_MAX_USERS": str(args.max_users), "PHOTOS_SHAPE_STEP_S": str(args.step_seconds),
        "PHOTOS_SHAPE_SPIKE_FACTOR": str(args.spike_factor), "PHOTOS_SHAPE_DURATION_S": str(args.duration),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    if shape == "profile":
        env.update({"PHOTOS_SHAPE_START_USERS": str(args.profile_users),
                    "PHOTOS_SHAPE_STEP_S": str(args.profile_seconds), "PHOTOS_LOAD_USER_RATE": str(PROFILE_USER_RATE)})
    return env


def run_locust(args: argparse.Namespace, out: Path, shape: str, prefix: str, sampler: Sampler) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "phases.json").unlink(missing_ok=True)
    log = (out / f"{prefix}.log").open("w")
    process = subprocess.Popen(locust_command(args, out, prefix), env=shape_env(args, out, shape),
                               stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if sampler.local is not None:
        sampler.local.loadgen.append(psutil.Process(process.pid))
    shown = 0
    while process.poll() is None:
        time.sleep(1.0)
        shown = _show_progress(out / "phases.json", shown)
    _show_progress(out / "phases.json", shown)
    log.close()
    if sampler.local is not None:
        sampler.local.loadgen.clear()
    try:
        result = json.loads((out / "phases.json").read_text())
    except (OSError, ValueError):
        tail = (out / f"{prefix}.log").read_text().strip().splitlines()[-3:]
        raise RunError(f"Locust ended (exit {process.returncode}) without judging a phase: {' | '.join(tail)}")\
            from None
    time.sleep(2 * SAMPLE_EVERY_S)  # a sample after the last window's end
    for phase in result["phases"]:
        phase["cores"] = phase_cores(sampler, phase)
    (out / "phases.json").write_text(json.dumps(result, indent=1))
    shown = [p for p in result["phases"] if p["cores"]]
    if shown:
        print("  cores busy per phase: " + " | ".join(
            f"{p['name']}: " + " ".join(f"{k} {v:.2f}" for k, v in sorted(p["cores"].items(), key=lambda kv: -kv[1])
                                        if v >= 0.01) for p in shown if p.get("focus") is None))
    return result


def phase_cores(sampler: Sampler, phase: dict) -> dict[str, float]:
    """Cores busy per process kind during a phase's measured window (the API's by its own counter when remote)."""
    bracket = sampler.around(phase["started_at"], phase["ended_at"])
    if bracket is None:
        return {}
    before, after = bracket
    wall = after.at - before.at
    seconds = {kind: after.cpu[kind] - before.cpu.get(kind, 0.0) for kind in after.cpu}
    api = api_cpu_seconds(before, after)
    if api is not None:
        seconds["api"] = api
    streams = counter_total(before.streams, after.streams, "photos_process_cpu_seconds_total", kind="streams")
    if streams > 0:
        seconds["streams"] = streams
    return {kind: round(value / wall, 3) for kind, value in seconds.items()}


def _show_progress(path: Path, shown: int) -> int:
    try:
        phases = json.loads(path.read_text())["phases"]
    except (OSError, ValueError, KeyError):
        return shown
    for phase in phases[shown:]:
        verdict = {True: "held", False: "BROKE", None: "-"}[phase["held"]]
        p99 = "-" if phase["p99_ms"] is None else str(round(phase["p99_ms"]))
        print(f"  {phase['name']:<22} users {phase['users']:>5}  {phase['requests_per_s']:8.1f} req/s"
              f"  p99 {p99:>6} ms  errors {phase['error_ratio']:6.2%}  {verdict}"
              + (f": {'; '.join(phase['broken'][:3])}" if phase["broken"] else ""), flush=True)
    return len(phases)


# --- the profile --------------------------------------------------------------------------------------
def build_profile(args: argparse.Namespace, knee: dict, sampler: Sampler, profile_phases: list[dict] | None,
                  storage: dict | None, environment: dict) -> dict:
    bracket = sampler.outer(knee["started_at"], knee["ended_at"])
    costs = route_costs(bracket[0].api, bracket[1].api) if bracket else {}
    cpu_api_ms = api_cpu_by_route(profile_phases, sampler) if profile_phases else {}
    routes = {}
    for route, seen in sorted(knee["routes"].items()):
        cost = costs.get(route, {})
        routes[route] = {
            "requests_per_s": seen["requests_per_s"], "p50_ms": seen["p50_ms"], "p99_ms": seen["p99_ms"],
            "error_ratio": seen["error_ratio"], "api_cpu_ms": cpu_api_ms.get(route),
            **{k: (round(v, 3) if isinstance(v, float) else {t: round(n, 3) for t, n in v.items()})
               for k, v in cost.items() if k != "served"},
        }
    cpu = {"cores": {}, "ms_per_request": {}, "cassandra_ms_per_cassandra_request": None,
           "streams_ms_per_kafka_message": None}
    if bracket:
        before, after = bracket
        wall = after.at - before.at
        rps = knee["requests_per_s"]
        cores = phase_cores(sampler, knee)
        cpu["cores"] = cores
        cpu["ms_per_request"] = {kind: round(c * 1000 / rps, 3) for kind, c in cores.items()
                                 if kind != "loadgen" and rps}
        cassandra_requests = counter_total(before.api, after.api, "photos_cassandra_requests_total") + \
            counter_total(before.streams, after.streams, "photos_cassandra_requests_total")
        if "cassandra" in cores and cassandra_requests:
            cpu["cassandra_ms_per_cassandra_request"] = round(cores["cassandra"] * wall * 1000 / cassandra_requests, 4)
        kafka_messages = counter_total(before.api, after.api, "photos_kafka_messages_total")
        if "streams" in cores and kafka_messages:
            cpu["streams_ms_per_kafka_message"] = round(cores["streams"] * wall * 1000 / kafka_messages, 4)
    return {
        "schema": 1,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": args.host,
        "mix": args.mix,
        "environment": environment,
        "knee": {"users": knee["users"], "requests_per_s": round(knee["requests_per_s"], 2),
                 "p50_ms": knee["p50_ms"], "p99_ms": knee["p99_ms"], "error_ratio": knee["error_ratio"]},
        "routes": routes,
        "cpu": cpu,
        "storage": storage or {},
    }


def api_cpu_by_route(phases: list[dict], sampler: Sampler) -> dict[str, float]:
    """API CPU per request of each route, from the profile run: each task alone, less what the API burns idle
    (the quieter of the idle windows before and after the tasks)."""
    measured = []
    for phase in phases:
        bracket = sampler.around(phase["started_at"], phase["ended_at"])
        if bracket is None:
            continue
        before, after = bracket
        cpu = api_cpu_seconds(before, after)
        if cpu is not None:
            measured.append((phase, before, after, cpu))
    idle_rates = [cpu / (after.at - before.at) for phase, before, after, cpu in measured if phase["focus"] is None]
    idle_rate = min(idle_rates, default=0.0)
    result: dict[str, float] = {}
    for phase, before, after, cpu in measured:
        if phase["focus"] is None:
            continue
        wall = after.at - before.at
        served = route_costs(before.api, after.api)
        requests = sum(cost["served"] for cost in served.values())
        if not requests:
            requests = sum(route["requests"] for route in phase["routes"].values())
        if not requests:
            continue
        route = _focus_route(phase)
        if route:
            result[route] = round(max(cpu - idle_rate * wall, 0.0) * 1000 / requests, 3)
    return result


def _focus_route(phase: dict) -> str | None:
    routes = phase["routes"]
    return max(routes, key=lambda r: routes[r]["requests"]) if routes else None


# --- steps.png ----------------------------------------------------------------------------------------
def plot(phases: list[dict], knee: dict | None, path: Path, title: str, p99_slo_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [p for p in phases if p.get("focus") is None and p["requests"]]
    if not judged:
        return
    labels = [f"{p['users']}" for p in judged]
    x = range(len(judged))
    figure, throughput = plt.subplots(figsize=(9, 5))
    throughput.bar(x, [p["requests_per_s"] for p in judged], color=["#4c9a2a" if p["held"] else "#c0392b"
                                                                     for p in judged], alpha=0.6)
    throughput.plot(x, [p["offered_per_s"] for p in judged], "k--", linewidth=1, label="offered req/s")
    throughput.set_xlabel("users (phase)")
    throughput.set_ylabel("requests/s served (green: SLOs held, red: broken)")
    throughput.set_xticks(list(x), labels)
    latency = throughput.twinx()
    latency.plot(x, [p["p50_ms"] or 0 for p in judged], "o-", color="#2c7fb8", label="p50 ms")
    latency.plot(x, [p["p99_ms"] or 0 for p in judged], "s-", color="#d95f0e", label="p99 ms")
    latency.axhline(p99_slo_ms, linestyle=":", color="#d95f0e", label=f"p99 objective ({p99_slo_ms:.0f} ms)")
    latency.set_yscale("log")
    latency.set_ylabel("latency, ms (log)")
    if knee is not None:
        at = judged.index(knee)
        throughput.axvline(at, color="#333", linewidth=1)
        throughput.annotate(f"knee: {knee['requests_per_s']:.0f} req/s", (at, knee["requests_per_s"]),
                            textcoords="offset points", xytext=(5, 10))
    lines = throughput.get_legend_handles_labels()[0] + latency.get_legend_handles_labels()[0]
    names = throughput.get_legend_handles_labels()[1] + latency.get_legend_handles_labels()[1]
    latency.legend(lines, names, loc="upper left")
    throughput.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- the command ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("step", "spike", "soak"), required=True)
    parser.add_argument("--host", required=True, help="the API's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, required=True, help="directory for CSV, report, phases, plot, profile")
    parser.add_argument("--mix", default="seed", help="a [mixes.*] of the traffic file, or only:<task>")
    parser.add_argument("--traffic", type=Path, default=traffic_model.DEFAULT_PATH)
    parser.add_argument("--credentials", type=Path,
                        default=Path(os.environ.get("PHOTOS_LOAD_CREDENTIALS") or
                                     REPO_ROOT / ".stack" / "load" / "credentials.jsonl"))
    parser.add_argument("--user-rate", type=float, default=1.0, help="requests a second each user offers")
    parser.add_argument("--start-users", type=int, default=10, help="step: first phase; spike: base; soak: users")
    parser.add_argument("--step-users", type=int, default=10)
    parser.add_argument("--max-users", type=int, default=2000)
    parser.add_argument("--step-seconds", type=float, default=30, help="phase length (soak: window length)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of each phase not measured")
    parser.add_argument("--spike-factor", type=float, default=3)
    parser.add_argument("--duration", type=float, default=600, help="soak: total seconds")
    parser.add_argument("--processes", type=int, default=0, help="Locust worker processes on this machine")
    parser.add_argument("--expect-workers", type=int, default=0,
                        help="run as Locust master and wait for this many workers (started elsewhere with"
                             " `locust -f loadtest/locustfile.py --worker --master-host HOST`)")
    parser.add_argument("--no-profile", action="store_true", help="step: skip the per-route API CPU run")
    parser.add_argument("--profile-users", type=int, default=8)
    parser.add_argument("--profile-seconds", type=float, default=8)
    parser.add_argument("--metrics-url", action="append", default=None,
                        help="API Prometheus endpoint(s), on each API host's ops listener (not the public port);"
                             " default http://<host's name>:<PHOTOS_OPS_PORT>/metrics. Repeat for several hosts")
    parser.add_argument("--streams-metrics-url", default=None,
                        help=f"stream workers' metrics; default {DEFAULT_STREAMS_METRICS} for a local host")
    parser.add_argument("--no-storage", action="store_true", help="skip measuring bytes stored per entity")
    args = parser.parse_args(argv)
    for name in ("start_users", "step_users", "max_users"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.step_seconds <= args.warmup:
        parser.error("--step-seconds must be longer than --warmup")
    if (args.processes or args.expect_workers) and args.step_seconds - args.warmup < DISTRIBUTED_MIN_WINDOW_S:
        print(f"note: Locust workers report to the master every 3 s, so a measured window shorter than"
              f" {DISTRIBUTED_MIN_WINDOW_S} s (--step-seconds minus --warmup) misjudges throughput", file=sys.stderr)
    return args


def check_inputs(args: argparse.Namespace) -> traffic_model.Traffic:
    traffic = traffic_model.load(args.traffic)
    traffic.weights(args.mix)
    credentials = load_credentials(args.credentials)
    if urlparse(args.host).scheme not in ("http", "https") or not urlparse(args.host).hostname:
        raise RunError(f"--host must be an http(s) URL, not {args.host!r}")
    try:
        with urllib.request.urlopen(args.host.rstrip("/") + "/healthz", timeout=5) as response:
            response.read()
    except (OSError, urllib.error.URLError) as error:
        reason = getattr(error, "reason", error)
        raise RunError(f"cannot reach the API at {args.host}: {reason}") from None
    if len(credentials) < args.start_users:
        print(f"note: {len(credentials)} credentials for {args.start_users}+ users: some users share an account",
              file=sys.stderr)
    return traffic


def default_metrics_url(host: str) -> str:
    """The API's metrics when --metrics-url names none: the ops listener (PHOTOS_OPS_PORT) on the API's host,
    where `photos-stack` and a single API host serve them; the public port serves none."""
    return f"http://{urlparse(host).hostname}:{Settings.from_env().ops_port}/metrics"


def local_processes(host: str) -> LocalProcesses | None:
    """The local stack's processes whose CPU this run can see: none for a remote host; the servers for a
    local one, and the stack's API and stream workers too when the host is the stack's own API (a test
    API on another port has processes of its own, which report their CPU through their metrics)."""
    url = urlparse(host)
    if url.hostname not in LOCAL_HOSTS:
        return None
    kinds = ("cassandra", "kafka", "redis")
    if (url.port or 80) == Settings.from_env().api_port:
        kinds = PROCESS_KINDS
    local = LocalProcesses(RUN_DIR, kinds, [])
    return local if local.available() else None


def _is_pool_process(process: psutil.Process) -> bool:
    """A multiprocessing helper (the image pool's workers, its fork server, the resource tracker)."""
    try:
        return "multiprocessing" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def environment_of(local: LocalProcesses | None) -> dict:
    """What the figures were measured on: always this machine's cores, and the local stack's shape when seen."""
    environment: dict = {"cores": os.cpu_count(), "local_stack": local is not None}
    if local is None:
        return environment
    environment["shared"] = (f"the load generator and the stack's servers ({', '.join(local.kinds)}) share this"
                             f" machine's {os.cpu_count()} cores")
    if "api" in local.kinds:
        api = _tree((read_state(RUN_DIR / "api.state.json") or {}).get("child_pid"))
        servers = [p for p in api if not _is_pool_process(p)]  # photos-api --workers N: a parent and N workers
        environment["api_processes"] = max(len(servers) - 1, 1)
        environment["image_pool_processes"] = len(api) - len(servers)
        environment["stream_workers"] = 1 if _tree((read_state(RUN_DIR / "streams.state.json") or {})
                                                   .get("child_pid")) else 0
    environment["cassandra_nodes"] = 1
    environment["kafka_brokers"] = 1
    return environment


def measure_storage() -> dict | None:
    """Bytes stored per post, story and user (loadtest/footprint.py), from the deployment the settings name."""
    from loadtest import footprint

    try:
        return footprint.measure_sync(Settings.from_env(), 200)
    except Exception as error:  # the footprint is one section of the profile: report the run without it
        print(f"note: bytes stored not measured: {error}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        traffic = check_inputs(args)
    except (RunError, LoadSetupError, traffic_model.TrafficError) as error:
        print(f"loadtest.run: {error}", file=sys.stderr)
        return 2
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"loadtest.run: cannot write to {out}: {error}", file=sys.stderr)
        return 2
    local = local_processes(args.host)
    metrics_urls = args.metrics_url or [default_metrics_url(args.host)]
    streams_url = args.streams_metrics_url or (DEFAULT_STREAMS_METRICS if local and "streams" in local.kinds else None)
    sampler = Sampler(metrics_urls, streams_url, local).start()
    print(f"{args.shape} run of mix {args.mix!r} against {args.host} ({len(traffic.weights(args.mix))} tasks;"
          f" load generator on this machine's {os.cpu_count()} cores"
          + (", sharing them with the whole stack)" if local else ")"), flush=True)
    try:
        result = run_locust(args, out, args.shape, "locust", sampler)
        phases = result["phases"]
        judged = [p for p in phases if p["held"] is not None]
        held = [p for p in judged if p["held"]]
        knee = held[-1] if args.shape == "step" and held else None
        if args.shape == "step":
            plot(judged, knee, out / "steps.png", f"step run, mix {args.mix} ({args.host})",
                 traffic.slo_default.p99_ms)
        else:
            plot(judged, None, out / "steps.png", f"{args.shape} run, mix {args.mix} ({args.host})",
                 traffic.slo_default.p99_ms)
        if args.shape != "step":
            failed = [p for p in judged if not p["held"]]
            print(f"{args.shape}: {len(judged) - len(failed)} of {len(judged)} phases held their SLOs"
                  + (f"; broken in {', '.join(p['name'] for p in failed)}" if failed else ""))
            return 1 if failed or not judged else 0
        if knee is None:
            print("step: no phase held its SLOs, not even the first: lower --start-users", file=sys.stderr)
            return 1
        print(f"knee: {knee['name']}, {knee['users']} users, {knee['requests_per_s']:.1f} req/s,"
              f" p50 {knee['p50_ms']:.0f} ms, p99 {knee['p99_ms']:.0f} ms (load generator on the same machine)")
        profile_phases = None
        if not args.no_profile:
            if args.expect_workers:
                print("note: the per-route CPU run needs a local Locust; skipped with --expect-workers")
            else:
                print("per-route cost run: each task alone, after an idle window", flush=True)
                profile_phases = run_locust(args, out / "per-route", "profile", "profile", sampler)["phases"]
        storage = None if args.no_storage else measure_storage()
        profile = build_profile(args, knee, sampler, profile_phases, storage, environment_of(local))
        (out / "profile.json").write_text(json.dumps(profile, indent=1))
        print_costs(profile)
        print(f"wrote {out}/profile.json, steps.png, phases.json, locust_*.csv, locust_report.html")
        return 0
    except RunError as error:
        print(f"loadtest.run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sampler.stop()


def print_costs(profile: dict) -> None:
    print("per request at the knee (API CPU from the per-route run; counts from the API's metrics):")
    print(f"{'route':<38} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'API ms':>7} {'cass':>6} {'redis':>6}"
          f" {'kafka':>6}")
    for route, cost in sorted(profile["routes"].items(), key=lambda item: -item[1]["requests_per_s"]):
        def show(value, digits=1):
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else \
                f"{value:.{digits}f}"
        print(f"{route:<38} {show(cost['requests_per_s']):>7} {show(cost['p50_ms'], 0):>7}"
              f" {show(cost['p99_ms'], 0):>7} {show(cost.get('api_cpu_ms'), 2):>7}"
              f" {show(cost.get('cassandra_requests')):>6} {show(cost.get('redis_commands')):>6}"
              f" {show(cost.get('kafka_messages'), 2):>6}")
    cores = profile["cpu"]["cores"]
    if cores:
        print("cores busy at the knee: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                    sorted(cores.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    sys.exit(main())
