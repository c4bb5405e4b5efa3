"""photos-capacity: the bill of materials for a traffic model, from what a load run measured.

    photos-capacity --profile profile.json [--traffic loadtest/traffic.toml] [--json]

The profile (schema 1, written by a load run; loadtest/footprint.py fills its `storage` section)
gives costs per request and sizes per stored thing; the traffic model gives the request rates to
provision for and, in its [deployment] and [storage] sections, every assumption the planner makes.
Out come API, stream worker, Cassandra, Kafka and Redis sizes, media storage over the retention and
egress, each line naming its inputs and whether they were measured, taken from the seed design or
assumed. A measured value that is null or absent falls back to the documented assumption, and the
line says so. docs/capacity-planner.md holds the profile's contract and every formula.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
MEASURED, SEED, ASSUMED = "measured", "seed", "assumed"
SOURCES = (MEASURED, SEED, ASSUMED)
DEFAULT_TRAFFIC = Path(__file__).resolve().parent / "traffic.toml"
EXIT_BAD_INPUT = 2

DAY_S = 86_400
YEAR_S = 365 * DAY_S
KB, MB, GB, TB, PB = 10**3, 10**6, 10**9, 10**12, 10**15  # decimal, as the seed counts
VARIANTS = ("original", "large", "medium", "thumbnail")
READ_METHODS = ("GET", "HEAD")
# the share of the knee's requests the profile's routes must cover before what they leave unexplained is
# put down to the stream workers
KNEE_COVERAGE = 0.95

# The requests that add and remove what accumulates (the API's routes, docs/api.md). A deleted
# comment keeps its rows (flagged), so nothing removes comments; stories expire instead.
ENTITY_ROUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "post": (("POST /v1/posts",), ("DELETE /v1/posts/{post_id}",)),
    "like": (("PUT /v1/posts/{post_id}/like",), ("DELETE /v1/posts/{post_id}/like",)),
    "comment": (("POST /v1/posts/{post_id}/comments",), ()),
    "follow": (("PUT /v1/users/{user_id}/follow",), ("DELETE /v1/users/{user_id}/follow",)),
    "story": (("POST /v1/stories",), ()),
}
ENTITIES = ("user", *ENTITY_ROUTES)
FEED_ROUTE = "GET /v1/feed"
UPLOAD_ROUTES = ("POST /v1/posts", "POST /v1/stories")

# what the planner reads of a profile, checked on load so a bad value is one line, not a traceback
ROUTE_NUMBERS = (
    "requests_per_s", "p50_ms", "p99_ms", "error_ratio", "api_cpu_ms", "cassandra_requests",
    "cassandra_write_share", "redis_commands", "redis_round_trips", "kafka_messages",
)
ROUTE_MAPS = ("cassandra_by_table", "kafka_by_topic")
STORAGE_NUMBERS = (
    "media_bytes_per_post", "media_bytes_per_story", *(f"cassandra_bytes_per_{entity}" for entity in ENTITIES),
    "redis_bytes_per_session", "redis_bytes_per_user_index", "redis_bytes_per_cached_feed",
)


class InputError(Exception):
    """A profile or traffic model the planner cannot use; the message is one line for the user."""


def _check_number(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: expected a number >= 0 or null, got {value!r}")


def _check_numbers(mapping: Any, where: str) -> None:
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise InputError(f"{where}: expected an object or null, got {mapping!r}")
    for key, value in mapping.items():
        _check_number(value, f"{where}.{key}")


def _object(data: dict, key: str, where: str, *, required: bool = True) -> dict:
    value = data.get(key, None if required else {})
    if not isinstance(value, dict):
        raise InputError(f"{where}: '{key}' must be an object")
    return value


# --- the profile -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    path: str
    data: dict

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def routes(self) -> dict[str, dict]:
        return self.data["routes"]

    @property
    def environment(self) -> dict:
        return self.data.get("environment", {})

    def route(self, route: str, name: str) -> Any:
        """A per-request figure of a route; None when the route or the figure was not measured."""
        return (self.routes.get(route) or {}).get(name)

    def cpu(self, *path: str) -> float | None:
        value: Any = self.data["cpu"]
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def storage(self, name: str) -> Any:
        return self.data["storage"].get(name)


def load_profile(path: str) -> Profile:
    where = Path(path).name
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read the profile {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    if data.get("schema") != SCHEMA:
        raise InputError(f"{where}: schema {data.get('schema')!r} is not supported (this planner reads {SCHEMA})")
    for route, fields in _object(data, "routes", where).items():
        if not isinstance(fields, dict):
            raise InputError(f"{where}: routes.{route}: expected an object")
        for name in ROUTE_NUMBERS:
            _check_number(fields.get(name), f"{where}: routes.{route}.{name}")
        for name in ROUTE_MAPS:
            _check_numbers(fields.get(name), f"{where}: routes.{route}.{name}")
    cpu = _object(data, "cpu", where)
    _check_numbers(cpu.get("cores"), f"{where}: cpu.cores")
    _check_numbers(cpu.get("ms_per_request"), f"{where}: cpu.ms_per_request")
    for name in ("cassandra_ms_per_cassandra_request", "streams_ms_per_kafka_message"):
        _check_number(cpu.get(name), f"{where}: cpu.{name}")
    storage = _object(data, "storage", where)
    _check_numbers(storage.get("media_variant_bytes"), f"{where}: storage.media_variant_bytes")
    for name in STORAGE_NUMBERS:
        _check_number(storage.get(name), f"{where}: storage.{name}")
    environment = _object(data, "environment", where, required=False)
    _object(data, "knee", where, required=False)
    for name in ("cassandra_nodes", "cassandra_replication_factor"):
        _check_number(environment.get(name), f"{where}: environment.{name}")
    return Profile(path, data)


# --- the traffic model and its assumptions ---------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    route: str
    rate: float
    source: str


@dataclass(frozen=True)
class Assumption:
    """A [deployment] or [storage] entry of the traffic model: its value, its source and why."""

    value: Any
    source: str
    why: str


@dataclass(frozen=True)
class Traffic:
    path: str
    model: dict
    tasks: tuple[Task, ...]
    assumptions: dict[str, dict[str, Assumption]]  # "deployment" / "storage" -> name -> entry

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def total_rate(self) -> float:
        return sum(task.rate for task in self.tasks)

    def rate(self, routes: Iterable[str]) -> float:
        wanted = set(routes)
        return sum(task.rate for task in self.tasks if task.route in wanted)

    def rate_sources(self, routes: Iterable[str]) -> tuple[str, ...]:
        wanted = set(routes)
        return tuple(source for source in SOURCES if any(t.source == source for t in self.tasks if t.route in wanted))


def _assumptions(doc: dict, section: str, where: str) -> dict[str, Assumption]:
    table = doc.get(section)
    if not isinstance(table, dict):
        raise InputError(f"{where}: no [{section}] section (the capacity planner's assumptions)")
    found = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise InputError(f"{where}: [{section}] {name} must be a table of value, source and why")
        if entry.get("source") not in SOURCES:
            raise InputError(f"{where}: [{section}] {name}: source must be one of {', '.join(SOURCES)}")
        found[name] = Assumption(entry["value"], entry["source"], str(entry.get("why", "")))
    return found


def load_traffic(path: str) -> Traffic:
    where = Path(path).name
    try:
        with open(path, "rb") as file:
            doc = tomllib.load(file)
    except OSError as exc:
        raise InputError(f"cannot read the traffic model {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not TOML ({exc})") from None
    model = _object(doc, "model", where)
    tasks = []
    for name, task in _object(doc, "tasks", where).items():
        route = task.get("route") if isinstance(task, dict) else None
        if not isinstance(route, str) or " " not in route:
            raise InputError(f'{where}: [tasks.{name}] needs route = "<METHOD> <path template>"')
        _check_number(task.get("rate"), f"{where}: [tasks.{name}] rate")
        if task.get("rate") is None:
            raise InputError(f"{where}: [tasks.{name}] has no rate")
        source = task.get("source", ASSUMED)
        if source not in SOURCES:
            raise InputError(f"{where}: [tasks.{name}] source must be one of {', '.join(SOURCES)}")
        tasks.append(Task(name, route, float(task["rate"]), source))
    if not tasks:
        raise InputError(f"{where}: no [tasks.*]")
    assumptions = {section: _assumptions(doc, section, where) for section in ("deployment", "storage")}
    return Traffic(path, model, tuple(tasks), assumptions)


# --- the bill --------------------------------------------------------------------------------------


@dataclass
class Input:
    """One input of a line: its name, its value as shown, its sources and where it comes from."""

    name: str
    value: str
    sources: tuple[str, ...]
    origin: str = ""


@dataclass
class Line:
    id: str
    label: str
    value: float
    unit: str
    formula: str
    inputs: list[Input] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def sources(self) -> tuple[str, ...]:
        found = {source for item in self.inputs for source in item.sources}
        return tuple(source for source in SOURCES if source in found)


@dataclass
class Plan:
    header: dict[str, Any]
    lines: list[Line]
    checks: list[str]

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise KeyError(line_id)

    def to_json(self) -> dict[str, Any]:
        lines = [
            {
                "id": line.id, "label": line.label, "value": line.value, "unit": line.unit,
                "sources": list(line.sources), "formula": line.formula,
                "inputs": [vars(item) | {"sources": list(item.sources)} for item in line.inputs],
                "notes": line.notes,
            }
            for line in self.lines
        ]
        return {"schema": SCHEMA, **self.header, "lines": lines, "checks": self.checks}


@dataclass(frozen=True)
class Cost:
    """One route's figure per request and how it was found: for the route, the mix average, or assumed."""

    value: float
    how: str  # "route" | "mix" | "assumed"

    @property
    def source(self) -> str:
        return ASSUMED if self.how == "assumed" else MEASURED


def _sources(*groups: Iterable[str] | Input) -> tuple[str, ...]:
    """The sources of inputs (or of plain source lists) together, in the canonical order."""
    found = {source for group in groups for source in (group.sources if isinstance(group, Input) else group)}
    return tuple(source for source in SOURCES if source in found)


def plural(entity: str) -> str:
    return "stories" if entity == "story" else f"{entity}s"


def fmt(value: Any) -> str:
    """A number as the report shows it: thousands separated, at most 3 significant digits below 100."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if (value == int(value) and abs(value) >= 1) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def exact(value: Any) -> str:
    """A figure from a file, shown as written (thousands separated)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def human_bytes(value: float) -> str:
    for unit, size in (("PB", PB), ("TB", TB), ("GB", GB), ("MB", MB), ("KB", KB)):
        if abs(value) >= size:
            return f"{fmt(value / size)} {unit}"
    return f"{fmt(value)} B"


class Planner:
    """Builds the bill tier by tier; a line's inputs are its direct inputs or the lines it derives from."""

    def __init__(self, profile: Profile, traffic: Traffic) -> None:
        self.profile = profile
        self.traffic = traffic
        self.lines: list[Line] = []
        self.checks: list[str] = []

    def plan(self) -> Plan:
        for tier in (self.api, self.streams, self.kafka, self.cassandra_cpu, self.cassandra_storage, self.redis,
                     self.media, self.seed_media, self.egress, self.knee_checks):
            tier()
        return Plan(self.header(), self.lines, self.checks)

    # --- inputs -------------------------------------------------------------------------------------

    def assumed(self, section: str, name: str, kind: type = float) -> tuple[Any, Input]:
        """A [section] entry of the traffic model, as a number (kind float) or a table (kind dict)."""
        entry = self.traffic.assumptions[section].get(name)
        if entry is None:
            raise InputError(f"{self.traffic.name}: [{section}] has no {name}")
        value = entry.value
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{self.traffic.name}: [{section}] {name}: value must be a number")
            return float(value), Input(name, exact(value), (entry.source,), entry.why)
        if not isinstance(value, dict):
            raise InputError(f"{self.traffic.name}: [{section}] {name}: value must be a table")
        flat = ", ".join(f"{key} {exact(item)}" for key, item in value.items() if not isinstance(item, dict))
        return value, Input(name, flat or f"{len(value)} entries", (entry.source,), entry.why)

    def measured_or_assumed(self, measured: Any, what: str, section: str, name: str) -> tuple[float, Input]:
        if measured is not None:
            return float(measured), Input(what, exact(measured), (MEASURED,), self.profile.name)
        value, item = self.assumed(section, name)
        return value, Input(what, item.value, item.sources, f"not measured: [{section}] {name}, {item.origin}")

    def rate(self, name: str, routes: Iterable[str]) -> tuple[float, Input]:
        routes = tuple(routes)
        rate = self.traffic.rate(routes)
        return rate, Input(name, f"{fmt(rate)} /s", self.traffic.rate_sources(routes) or (ASSUMED,),
                           f"{self.traffic.name} tasks of {', '.join(routes)}")

    def rates(self) -> Input:
        by_source = {s: sum(t.rate for t in self.traffic.tasks if t.source == s) for s in SOURCES}
        split = ", ".join(f"{fmt(rate)} {source}" for source, rate in by_source.items() if rate)
        return Input("task rates", f"{fmt(self.traffic.total_rate)} req/s ({split})",
                     tuple(s for s in SOURCES if by_source[s]), f"{self.traffic.name}, {len(self.traffic.tasks)} tasks")

    def per_task(self, name: str, resolve: Callable[[Task], Cost]) -> tuple[list[Cost], Input]:
        """Each task's figure, and one input saying how much of the traffic each kind of figure covers."""
        costs = [resolve(task) for task in self.traffic.tasks]
        total = self.traffic.total_rate or 1.0
        parts = []
        for how, label in (("route", "measured per route"), ("mix", "measured mix average"), ("assumed", "assumed")):
            chosen = [(task, cost) for task, cost in zip(self.traffic.tasks, costs, strict=True) if cost.how == how]
            if chosen:
                values = sorted({cost.value for _, cost in chosen})
                shown = fmt(values[0]) if len(values) == 1 else f"{fmt(values[0])} to {fmt(values[-1])}"
                share = sum(task.rate for task, _ in chosen) / total
                parts.append(f"{label} for {len(chosen)} of {len(costs)} tasks ({share:.0%} of requests): {shown}")
        sources = tuple(s for s in (MEASURED, ASSUMED) if any(cost.source == s for cost in costs))
        return costs, Input(name, "; ".join(parts), sources, self.profile.name)

    def weighted(self, costs: list[Cost], factor: Callable[[Task], float] = lambda task: 1.0) -> float:
        return sum(task.rate * cost.value * factor(task) for task, cost in zip(self.traffic.tasks, costs, strict=True))

    def add(self, line_id: str, label: str, value: float, unit: str, formula: str, inputs: Iterable[Input],
            notes: Iterable[str] = ()) -> Line:
        line = Line(line_id, label, value, unit, formula, list(inputs), list(notes))
        self.lines.append(line)
        return line

    def line(self, line_id: str) -> Line:
        return next(line for line in self.lines if line.id == line_id)

    def ref(self, line_id: str) -> Input:
        """A line used as the input of another."""
        line = self.line(line_id)
        return Input(line.label, format_value(line.value, line.unit), line.sources, "the line above")

    def header(self) -> dict[str, Any]:
        data = self.profile.data
        return {
            "profile": {"path": self.profile.path, "created_at": data.get("created_at"), "host": data.get("host"),
                        "mix": data.get("mix"), "environment": self.profile.environment, "knee": data.get("knee", {})},
            "traffic": {"path": self.traffic.path, "tasks": len(self.traffic.tasks),
                        "requests_per_s": self.traffic.total_rate},
        }

    # --- tiers --------------------------------------------------------------------------------------

    def api(self) -> None:
        mix = self.profile.cpu("ms_per_request", "api")
        fallback, fallback_input = self.assumed("deployment", "api_cpu_ms_per_request")

        def cost(task: Task) -> Cost:
            measured = self.profile.route(task.route, "api_cpu_ms")
            if measured is not None:
                return Cost(measured, "route")
            return Cost(mix, "mix") if mix is not None else Cost(fallback, "assumed")

        costs, cost_input = self.per_task("api_cpu_ms per request", cost)
        utilisation, utilisation_input = self.assumed("deployment", "api_target_utilisation")
        inputs = [self.rates(), cost_input, utilisation_input]
        if any(c.how == "assumed" for c in costs):
            inputs.append(fallback_input)
        cores = self.weighted(costs) / 1000 / utilisation
        self.add("api.cores", "API cores", cores, "cores",
                 "sum over tasks of rate x api_cpu_ms(route) / 1000 / api_target_utilisation", inputs)
        self.add("api.processes", "API processes", math.ceil(cores), "processes",
                 "API cores, one process per core (photos-api --workers N)", [self.ref("api.cores")])
        self.image_pipeline(costs, utilisation, utilisation_input)

    def image_pipeline(self, costs: list[Cost], utilisation: float, utilisation_input: Input) -> None:
        """Uploads whose API CPU is below what the image pipeline alone costs: the profile did not see the
        image worker processes (their CPU is not the API process's own), so the pipeline is added here."""
        image_ms, image_input = self.assumed("deployment", "image_pipeline_cpu_ms")
        short = [(task, cost) for task, cost in zip(self.traffic.tasks, costs, strict=True)
                 if task.route in UPLOAD_ROUTES and cost.value < image_ms]
        if not short:
            return
        routes = tuple(dict.fromkeys(task.route for task, _ in short))
        rate, rate_input = self.rate("uploads without the pipeline's CPU", routes)
        self.add("api.image_cores", "image pipeline cores", rate * image_ms / 1000 / utilisation, "cores",
                 "uploads x image_pipeline_cpu_ms / 1000 / api_target_utilisation: one image worker per core"
                 " (PHOTOS_MEDIA_WORKERS) beside the API processes",
                 [rate_input, image_input, utilisation_input])
        for task, cost in short:
            how = {"route": "measured for the route", "mix": "the mix average", "assumed": "assumed"}[cost.how]
            self.checks.append(
                f"{task.route}: {fmt(cost.value)} ms of API CPU a request ({how}) is below the image pipeline's"
                f" {fmt(image_ms)} ms, so 'image pipeline cores' adds the pipeline; a profile whose api_cpu_ms counts"
                " the image workers' CPU needs no such line"
            )

    def events(self, task: Task) -> tuple[dict[str, float], str]:
        """Kafka messages per request by topic (suffix after the prefix): measured for the route, else assumed."""
        measured = self.profile.route(task.route, "kafka_by_topic")
        if measured is not None:
            return {topic.rsplit(".", 1)[-1]: count for topic, count in measured.items()}, "route"
        table, _ = self.assumed("deployment", "events_per_request", dict)
        return dict(table.get(task.route, {})), "assumed"

    def per_message(self) -> tuple[float, Input]:
        return self.measured_or_assumed(self.profile.cpu("streams_ms_per_kafka_message"),
                                        "streams_ms_per_kafka_message", "deployment", "streams_ms_per_kafka_message")

    def streams(self) -> None:
        def messages(task: Task) -> Cost:
            total = self.profile.route(task.route, "kafka_messages")
            if total is not None:
                return Cost(total, "route")
            by_topic, how = self.events(task)
            return Cost(sum(by_topic.values()), how)

        counts, counts_input = self.per_task("Kafka messages per request", messages)
        inputs = [self.rates(), counts_input]
        if any(c.how == "assumed" for c in counts):
            inputs.append(self.assumed("deployment", "events_per_request", dict)[1])
        rate = self.weighted(counts)
        self.add("streams.messages", "Kafka messages", rate, "messages/s",
                 "sum over tasks of rate x kafka_messages(route)", inputs)
        per_message, per_message_input = self.per_message()
        utilisation, utilisation_input = self.assumed("deployment", "streams_target_utilisation")
        cores = rate * per_message / 1000 / utilisation
        self.add("streams.cores", "stream worker cores", cores, "cores",
                 "Kafka messages x streams_ms_per_kafka_message / 1000 / streams_target_utilisation",
                 [self.ref("streams.messages"), per_message_input, utilisation_input])
        self.add("streams.processes", "stream worker processes", math.ceil(cores), "processes",
                 "stream worker cores, one Faust worker per core (each runs every agent)", [self.ref("streams.cores")])

    def kafka(self) -> None:
        sizes, _ = self.assumed("storage", "kafka_message_bytes", dict)
        per_message, per_message_input = self.per_message()
        utilisation, utilisation_input = self.assumed("deployment", "streams_target_utilisation")
        least, least_input = self.assumed("deployment", "kafka_min_partitions")
        partition_mb_s, partition_input = self.assumed("deployment", "kafka_partition_mb_s")
        workers = self.line("streams.processes").value
        rule = Input("partition rule", f"at least {fmt(least)}, {fmt(partition_mb_s)} MB/s a partition, "
                     f"{fmt(per_message)} ms a message at {fmt(utilisation)} utilisation",
                     _sources(least_input, partition_input, per_message_input, utilisation_input),
                     "[deployment] kafka_min_partitions, kafka_partition_mb_s; streams_ms_per_kafka_message")
        by_topic: dict[str, float] = {}
        hows = set()
        for task in self.traffic.tasks:
            counts, how = self.events(task)
            hows.add(how)
            for topic, count in counts.items():
                by_topic[topic] = by_topic.get(topic, 0.0) + task.rate * count
        counted = _sources(self.rates(), [MEASURED] if "route" in hows else [], [ASSUMED] if "assumed" in hows else [])
        entry = self.traffic.assumptions["storage"]["kafka_message_bytes"]
        total_bytes, total_partitions = 0.0, 0
        for topic in sorted(by_topic):
            if topic not in sizes:
                raise InputError(f"{self.traffic.name}: [storage] kafka_message_bytes has no topic {topic!r}")
            messages = by_topic[topic]
            bytes_s = messages * sizes[topic]
            consumer_cores = messages * per_message / 1000 / utilisation
            by_bytes = math.ceil(bytes_s / partition_mb_s / MB)
            partitions = max(int(least), int(workers), math.ceil(consumer_cores), by_bytes)
            total_bytes += bytes_s
            total_partitions += partitions
            self.add(
                f"kafka.partitions.{topic}", f"partitions of {topic}", partitions, "partitions",
                f"max(kafka_min_partitions, stream worker processes, consumer cores, bytes/s / kafka_partition_mb_s); "
                f"{fmt(messages)} messages/s x {fmt(sizes[topic])} B = {human_bytes(bytes_s)}/s, "
                f"{fmt(consumer_cores)} consumer cores",
                [Input("messages", f"{fmt(messages)} /s", counted,
                       "task rates x kafka_by_topic per route where measured, else [deployment] events_per_request"),
                 Input("kafka_message_bytes", exact(sizes[topic]), (entry.source,), entry.why),
                 self.ref("streams.processes"), rule],
            )
        widest = max((int(line.value) for line in self.lines if line.id.startswith("kafka.partitions.")), default=0)
        self.checks.append(f"PHOTOS_KAFKA_TOPIC_PARTITIONS gives every topic one partition count: {widest} covers "
                           "the busiest (or create the topics one by one)")
        replication, replication_input = self.assumed("deployment", "kafka_replication_factor")
        broker_mb_s, broker_input = self.assumed("deployment", "kafka_broker_write_mb_s")
        per_broker, per_broker_input = self.assumed("deployment", "kafka_max_partition_replicas_per_broker")
        retention_h, retention_input = self.assumed("deployment", "kafka_retention_hours")
        disk_tb, disk_input = self.assumed("deployment", "kafka_broker_disk_tb")
        fewest, fewest_input = self.assumed("deployment", "kafka_min_brokers")
        topic_lines = [line for line in self.lines if line.id.startswith("kafka.partitions.")]
        produced = Input("produced", f"{human_bytes(total_bytes)}/s in {fmt(total_partitions)} partitions",
                         _sources(*(line.sources for line in topic_lines)), "the partition lines")
        by_throughput = math.ceil(total_bytes * replication / (broker_mb_s * MB))
        by_partitions = math.ceil(total_partitions * replication / per_broker)
        by_disk = math.ceil(total_bytes * retention_h * 3600 * replication / (disk_tb * TB))
        self.add(
            "kafka.brokers", "Kafka brokers", max(int(fewest), by_throughput, by_partitions, by_disk), "brokers",
            f"max(kafka_min_brokers, throughput {by_throughput} = bytes/s x RF / kafka_broker_write_mb_s, "
            f"partitions {by_partitions} = partitions x RF / kafka_max_partition_replicas_per_broker, "
            f"disk {by_disk} = bytes/s x kafka_retention_hours x RF / kafka_broker_disk_tb)",
            [produced, replication_input, broker_input, per_broker_input, retention_input, disk_input, fewest_input],
        )

    def measured_replication(self) -> tuple[int, Input]:
        """The replication factor the profile's Cassandra costs were measured at."""
        stated = self.profile.environment.get("cassandra_replication_factor")
        if stated is not None:
            return int(stated), Input("replication where measured", fmt(stated), (MEASURED,), self.profile.name)
        nodes = self.profile.environment.get("cassandra_nodes")
        guess = 1 if nodes in (None, 1) else min(int(nodes), 3)
        return guess, Input("replication where measured", str(guess), (ASSUMED,),
                            f"not stated; taken from {fmt(nodes or 1)} Cassandra node(s)")

    def knee_traffic(self) -> dict[str, float] | None:
        """HTTP requests, the API's Cassandra requests and Kafka messages per second at the knee, from the
        profile's routes; None when no route has both its rate and its Cassandra requests."""
        routes = [fields for fields in self.profile.routes.values() if fields.get("requests_per_s") is not None]
        with_requests = [fields for fields in routes if fields.get("cassandra_requests") is not None]
        if not with_requests:
            return None
        return {
            "http": sum(fields["requests_per_s"] for fields in with_requests),
            "cassandra": sum(fields["requests_per_s"] * fields["cassandra_requests"] for fields in with_requests),
            "messages": sum(fields["requests_per_s"] * fields["kafka_messages"] for fields in routes
                            if fields.get("kafka_messages") is not None),
        }

    def stream_requests_per_message(self, per_request: float | None) -> tuple[float, Input]:
        """Cassandra requests the stream workers send per Kafka message: what the knee's Cassandra requests
        (its CPU / CPU per request) leave after the API's own, per message; else assumed."""
        knee = self.knee_traffic()
        cores = self.profile.cpu("cores", "cassandra")
        knee_rate = self.profile.data.get("knee", {}).get("requests_per_s")
        covered = knee is not None and bool(knee_rate) and knee["http"] >= KNEE_COVERAGE * knee_rate
        if covered and knee["messages"] and cores is not None and per_request:
            total = cores * 1000 / per_request
            derived = max(0.0, total - knee["cassandra"]) / knee["messages"]
            return derived, Input(
                "stream Cassandra requests per Kafka message", fmt(derived), (MEASURED,),
                f"at the knee: {fmt(total)} requests/s (cpu.cores.cassandra / cassandra_ms_per_cassandra_request)"
                f" - {fmt(knee['cassandra'])} from the API, over {fmt(knee['messages'])} messages/s",
            )
        value, item = self.assumed("deployment", "stream_cassandra_requests_per_kafka_message")
        why = ("the profile's routes carry no Kafka messages, cover under "
               f"{KNEE_COVERAGE:.0%} of the knee's requests, or Cassandra's CPU was not measured")
        return value, Input(item.name, item.value, item.sources, f"not derivable ({why}): {item.origin}")

    def cassandra_cpu(self) -> None:
        measured_ms = self.profile.cpu("cassandra_ms_per_cassandra_request")
        per_request, per_request_input = self.measured_or_assumed(
            measured_ms, "cassandra_ms_per_cassandra_request", "deployment", "cassandra_ms_per_request")
        requests_fallback, requests_input = self.assumed("deployment", "cassandra_requests_per_request")
        reads, reads_input = self.assumed("deployment", "read_replicas")
        writes, writes_input = self.assumed("deployment", "write_replicas")
        write_share, write_share_input = self.assumed("deployment", "write_share_of_changing_requests")
        # the measured CPU per request covers the replicas a request touched where it was measured; an assumed
        # one is per replica
        measured_rf, measured_rf_input = self.measured_replication() if measured_ms is not None else (1, None)
        knee = self.knee_traffic()

        def requests(task: Task) -> Cost:
            measured = self.profile.route(task.route, "cassandra_requests")
            if measured is not None:
                return Cost(measured, "route")
            if knee:
                return Cost(knee["cassandra"] / knee["http"], "mix")
            return Cost(requests_fallback, "assumed")

        def replica_factor(share: float) -> float:
            production = share * writes + (1 - share) * reads
            return production / (share * measured_rf + (1 - share) * (measured_rf // 2 + 1))

        def route_factor(task: Task) -> float:
            share = self.profile.route(task.route, "cassandra_write_share")
            if share is None:
                share = 0.0 if task.route.split(" ", 1)[0] in READ_METHODS else write_share
            return replica_factor(share)

        counts, counts_input = self.per_task("Cassandra requests per HTTP request", requests)
        inputs = [self.rates(), counts_input]
        if any(c.how == "assumed" for c in counts):
            inputs.append(requests_input)
        self.add("cassandra.api_requests", "Cassandra requests, API", self.weighted(counts), "requests/s",
                 "sum over tasks of rate x cassandra_requests(route) (a route the profile lacks: the knee's average)",
                 inputs)
        per_message, per_message_input = self.stream_requests_per_message(measured_ms)
        messages = self.line("streams.messages").value
        self.add("cassandra.stream_requests", "Cassandra requests, stream workers", messages * per_message,
                 "requests/s", "Kafka messages x stream Cassandra requests per Kafka message",
                 [self.ref("streams.messages"), per_message_input])
        utilisation, utilisation_input = self.assumed("deployment", "cassandra_target_utilisation")
        replica_requests = self.weighted(counts, route_factor) + messages * per_message * replica_factor(write_share)
        cores = replica_requests * per_request / 1000 / utilisation
        self.add(
            "cassandra.cores", "Cassandra cores", cores, "cores",
            "(sum over tasks of rate x cassandra_requests(route) x replica factor + stream requests x replica factor"
            " of write_share_of_changing_requests) x cassandra_ms_per_cassandra_request / 1000"
            " / cassandra_target_utilisation; replica factor = replicas a request touches in production"
            " (w x write_replicas + (1 - w) x read_replicas, w = its write share: 0 for GET, the route's measured"
            " cassandra_write_share, else write_share_of_changing_requests) / replicas it touched where measured",
            [self.ref("cassandra.api_requests"), self.ref("cassandra.stream_requests"), per_request_input,
             *([measured_rf_input] if measured_rf_input else []), reads_input, writes_input, write_share_input,
             utilisation_input],
        )
        node_cores, node_input = self.assumed("deployment", "cassandra_node_cores")
        self.add("cassandra.nodes_by_cpu", "Cassandra nodes by CPU", math.ceil(cores / node_cores), "nodes",
                 "Cassandra cores / cassandra_node_cores", [self.ref("cassandra.cores"), node_input])

    def entity_counts(self) -> dict[str, tuple[float, Input]]:
        """Each entity stored at the end of the retention; for stories, those alive at one time."""
        years, years_input = self.assumed("storage", "retention_years")
        story_hours, story_hours_input = self.assumed("storage", "story_rows_hours")
        users, users_input = self.assumed("storage", "total_users")
        counts = {"user": (users, users_input)}
        for entity, (adds, removes) in ENTITY_ROUTES.items():
            net = max(0.0, self.traffic.rate(adds) - self.traffic.rate(removes))
            span, span_input = (story_hours * 3600, story_hours_input) if entity == "story" else (years * YEAR_S,
                                                                                                   years_input)
            change = " - ".join((" + ".join(adds), *removes))
            shown = f"({change}) x {span_input.value} {'h' if entity == 'story' else 'years'}"
            sources = _sources(self.traffic.rate_sources(adds + removes) or (ASSUMED,), span_input)
            counts[entity] = (net * span, Input(f"{plural(entity)} stored", fmt(round(net * span)), sources, shown))
        return counts

    def cassandra_storage(self) -> None:
        fallback, fallback_input = self.assumed("storage", "cassandra_bytes_per_entity", dict)
        for entity, (count, count_input) in self.entity_counts().items():
            name = f"cassandra_bytes_per_{entity}"
            measured = self.profile.storage(name)
            if measured is not None:
                size, size_input = float(measured), Input(name, exact(measured), (MEASURED,), self.profile.name)
            elif isinstance(fallback.get(entity), int | float) and not isinstance(fallback[entity], bool):
                size = float(fallback[entity])
                size_input = Input(name, exact(fallback[entity]), fallback_input.sources,
                                   f"not measured: [storage] cassandra_bytes_per_entity, {fallback_input.origin}")
            else:
                raise InputError(f"{self.traffic.name}: [storage] cassandra_bytes_per_entity has no {entity}")
            self.add(f"cassandra.data.{entity}", f"Cassandra data: {plural(entity)}", count * size, "bytes",
                     f"{plural(entity)} stored x {name} (one copy)", [count_input, size_input])
        entity_lines = [self.line(f"cassandra.data.{entity}") for entity in ENTITIES]
        data = sum(line.value for line in entity_lines)
        self.add("cassandra.data", "Cassandra data, one copy", data, "bytes", "sum of the entities' data",
                 [self.ref(line.id) for line in entity_lines])
        replication, replication_input = self.assumed("deployment", "replication_factor")
        headroom, headroom_input = self.assumed("deployment", "cassandra_compaction_headroom")
        disk_tb, disk_input = self.assumed("deployment", "cassandra_disk_tb")
        density_tb, density_input = self.assumed("deployment", "cassandra_density_limit_tb")
        disk = data * replication * (1 + headroom)
        self.add("cassandra.disk", "Cassandra disk", disk, "bytes",
                 "data x replication_factor x (1 + cassandra_compaction_headroom)",
                 [self.ref("cassandra.data"), replication_input, headroom_input])
        by_disk = math.ceil(disk / (disk_tb * TB))
        by_density = math.ceil(data * replication / (density_tb * TB))
        self.add("cassandra.nodes_by_storage", "Cassandra nodes by storage", max(by_disk, by_density), "nodes",
                 f"max(disk / cassandra_disk_tb = {by_disk}, "
                 f"data x replication_factor / cassandra_density_limit_tb = {by_density})",
                 [self.ref("cassandra.disk"), self.ref("cassandra.data"), disk_input, density_input, replication_input])
        by_cpu, by_storage = self.line("cassandra.nodes_by_cpu").value, self.line("cassandra.nodes_by_storage").value
        nodes = max(int(replication), int(by_cpu), int(by_storage))
        deciding = "CPU" if nodes == by_cpu else "storage" if nodes == by_storage else "the replication factor"
        self.add("cassandra.nodes", "Cassandra nodes", nodes, "nodes",
                 f"max(replication_factor, nodes by CPU, nodes by storage): {deciding} decides",
                 [self.ref("cassandra.nodes_by_cpu"), self.ref("cassandra.nodes_by_storage"), replication_input])

    def redis(self) -> None:
        parts = []
        dau = float(self.traffic.model.get("daily_active_users", 0))
        dau_input = Input("daily_active_users", fmt(dau), (SEED,), f"{self.traffic.name} [model]")
        per_session, per_session_input = self.measured_or_assumed(
            self.profile.storage("redis_bytes_per_session"), "redis_bytes_per_session", "storage",
            "redis_bytes_per_session")
        sessions, sessions_input = self.assumed("storage", "sessions_per_active_user")
        parts.append(self.add("redis.sessions", "Redis: sessions", dau * sessions * per_session, "bytes",
                              "daily_active_users x sessions_per_active_user x redis_bytes_per_session",
                              [dau_input, sessions_input, per_session_input]))

        feeds, feeds_input = self.rate("feed requests", (FEED_ROUTE,))
        pages = float(self.traffic.model.get("feed_pages_per_load", 1))
        pages_input = Input("feed_pages_per_load", fmt(pages), (SEED,), f"{self.traffic.name} [model]")
        ttl, ttl_input = self.assumed("storage", "feed_cache_ttl_s")
        per_feed, per_feed_input = self.measured_or_assumed(
            self.profile.storage("redis_bytes_per_cached_feed"), "redis_bytes_per_cached_feed", "storage",
            "redis_bytes_per_cached_feed")
        parts.append(self.add(
            "redis.feed_pages", "Redis: cached first feed pages", feeds / pages * ttl * per_feed, "bytes",
            "feed requests / feed_pages_per_load (first pages a second) x feed_cache_ttl_s"
            " x redis_bytes_per_cached_feed",
            [feeds_input, pages_input, ttl_input, per_feed_input],
        ))
        weekly, weekly_input = self.assumed("storage", "weekly_active_users")
        per_mark, per_mark_input = self.assumed("storage", "redis_bytes_per_active_mark")
        parts.append(self.add("redis.active_marks", "Redis: active-reader marks", weekly * per_mark, "bytes",
                              "weekly_active_users x redis_bytes_per_active_mark", [weekly_input, per_mark_input]))
        liked, liked_input = self.assumed("storage", "liked_posts_per_day")
        per_count, per_count_input = self.assumed("storage", "redis_bytes_per_like_count")
        parts.append(self.add("redis.like_counts", "Redis: like counts", liked * per_count, "bytes",
                              "liked_posts_per_day x redis_bytes_per_like_count (a day's TTL)",
                              [liked_input, per_count_input]))
        users, users_input = self.assumed("storage", "total_users")
        tags, tags_input = self.assumed("storage", "distinct_hashtags")
        per_name, per_name_input = self.measured_or_assumed(
            self.profile.storage("redis_bytes_per_user_index"), "redis_bytes_per_user_index", "storage",
            "redis_bytes_per_indexed_name")
        parts.append(self.add("redis.search", "Redis: search index", (users + tags) * per_name, "bytes",
                              "(total_users + distinct_hashtags) x bytes per indexed name",
                              [users_input, tags_input, per_name_input]))
        uploads, uploads_input = self.rate("uploads", ENTITY_ROUTES["post"][0])
        tags_per_post, tags_per_post_input = self.assumed("storage", "hashtags_per_post")
        days, days_input = self.assumed("storage", "trending_days")
        per_member, per_member_input = self.assumed("storage", "redis_bytes_per_trending_member")
        parts.append(self.add(
            "redis.trending", "Redis: trending cells", uploads * DAY_S * tags_per_post * days * per_member, "bytes",
            "uploads a day x hashtags_per_post x trending_days x redis_bytes_per_trending_member",
            [uploads_input, tags_per_post_input, days_input, per_member_input],
        ))
        headroom, headroom_input = self.assumed("deployment", "redis_memory_headroom")
        memory = sum(line.value for line in parts) * (1 + headroom)
        self.add("redis.memory", "Redis memory", memory, "bytes",
                 "sum of the Redis lines x (1 + redis_memory_headroom)",
                 [*(self.ref(line.id) for line in parts), headroom_input])
        node_gb, node_input = self.assumed("deployment", "redis_node_memory_gb")
        replicas, replicas_input = self.assumed("deployment", "redis_replicas_per_primary")
        primaries = math.ceil(memory / (node_gb * GB))
        self.add("redis.nodes", "Redis nodes", primaries * (1 + int(replicas)), "nodes",
                 f"primaries = Redis memory / redis_node_memory_gb = {primaries}, x (1 + redis_replicas_per_primary)",
                 [self.ref("redis.memory"), node_input, replicas_input])
        if primaries > 1:
            self.checks.append(
                f"Redis needs {primaries} primaries, but the feed read script (app/storage/feed_cache.py OPEN_FEED)"
                " reads keys it does not declare and the search index's scripts span many slots (docs/search.md): both"
                " need one non-Cluster Redis today, so sharding them comes before this size"
            )

    def variant_bytes(self) -> tuple[dict[str, float], Input]:
        measured = self.profile.storage("media_variant_bytes") or {}
        fallback, fallback_input = self.assumed("storage", "media_variant_bytes", dict)
        sizes, missing = {}, []
        for variant in VARIANTS:
            if measured.get(variant) is not None:
                sizes[variant] = float(measured[variant])
            elif isinstance(fallback.get(variant), int | float):
                sizes[variant] = float(fallback[variant])
                missing.append(variant)
            else:
                raise InputError(f"{self.traffic.name}: [storage] media_variant_bytes has no {variant}")
        sources = _sources([MEASURED] if len(missing) < len(VARIANTS) else [], fallback_input if missing else [])
        origin = self.profile.name if not missing else f"{', '.join(missing)} not measured: {fallback_input.origin}"
        return sizes, Input("media_variant_bytes", ", ".join(f"{v} {exact(b)}" for v, b in sizes.items()), sources,
                            origin)

    def bytes_per_post(self) -> tuple[float, Input]:
        measured = self.profile.storage("media_bytes_per_post")
        if measured is not None:
            return float(measured), Input("media_bytes_per_post", exact(measured), (MEASURED,), self.profile.name)
        variants, variants_input = self.variant_bytes()
        if variants_input.sources == (MEASURED,):
            return sum(variants.values()), Input("media_bytes_per_post", exact(sum(variants.values())), (MEASURED,),
                                                 "the sum of the measured variants")
        photo, photo_input = self.assumed("storage", "seed_photo_bytes")
        thumbnail, thumbnail_input = self.assumed("storage", "seed_thumbnail_bytes")
        return photo + thumbnail, Input("media_bytes_per_post", exact(photo + thumbnail),
                                        _sources(photo_input, thumbnail_input),
                                        "not measured: the seed's photo + thumbnail")

    def media(self) -> None:
        years, years_input = self.assumed("storage", "retention_years")
        uploads, uploads_input = self.rate("uploads", ENTITY_ROUTES["post"][0])
        per_post, per_post_input = self.bytes_per_post()
        self.add("media.posts", f"media of posts, {fmt(years)} years", uploads * YEAR_S * years * per_post, "bytes",
                 "uploads x 86,400 x 365 x retention_years x media_bytes_per_post (every variant, stored once)",
                 [uploads_input, years_input, per_post_input])
        stories, stories_input = self.rate("stories posted", ENTITY_ROUTES["story"][0])
        hours, hours_input = self.assumed("storage", "story_media_hours")
        per_story, per_story_input = self.measured_or_assumed(
            self.profile.storage("media_bytes_per_story"), "media_bytes_per_story", "storage", "media_bytes_per_story")
        self.add("media.stories", "media of live stories", stories * hours * 3600 * per_story, "bytes",
                 "stories posted x story_media_hours x 3,600 x media_bytes_per_story (steady: expired media is swept)",
                 [stories_input, hours_input, per_story_input])
        self.add("media.total", "media storage", self.line("media.posts").value + self.line("media.stories").value,
                 "bytes", "media of posts + media of live stories",
                 [self.ref("media.posts"), self.ref("media.stories")])

    def seed_media(self) -> None:
        """The seed's ~400 PB re-derived, and the same posts at the measured bytes per post."""
        posts, posts_input = self.assumed("storage", "seed_posts_per_day")
        years, years_input = self.assumed("storage", "retention_years")
        photo, photo_input = self.assumed("storage", "seed_photo_bytes")
        thumbnail, thumbnail_input = self.assumed("storage", "seed_thumbnail_bytes")
        stated, stated_input = self.assumed("storage", "seed_total_pb")
        per_post, per_post_input = self.bytes_per_post()
        seed = posts * 365 * years * (photo + thumbnail)
        ours = posts * 365 * years * per_post
        self.add("media.seed", "seed's media estimate, re-derived", seed, "bytes",
                 f"seed_posts_per_day x 365 x retention_years x (seed_photo_bytes + seed_thumbnail_bytes); "
                 f"the seed rounds it to ~{fmt(stated)} PB",
                 [posts_input, years_input, photo_input, thumbnail_input, stated_input])
        self.add("media.seed_at_ours", "the seed's posts at our bytes per post", ours, "bytes",
                 "seed_posts_per_day x 365 x retention_years x media_bytes_per_post",
                 [posts_input, years_input, per_post_input])
        if not ours:
            self.checks.append("media_bytes_per_post is 0: no ratio to the seed's estimate")
            return
        self.add("media.seed_ratio", "seed estimate / ours", seed / ours, "ratio",
                 "seed's media estimate / the seed's posts at our bytes per post",
                 [self.ref("media.seed"), self.ref("media.seed_at_ours")],
                 [f"{human_bytes(photo + thumbnail)} a photo in the seed (2 variants) against {human_bytes(per_post)} "
                  f"for our 4 variants; against the seed's stated ~{fmt(stated)} PB it is {stated * PB / ours:.2f} x"])

    def egress(self) -> None:
        routes, routes_input = self.assumed("storage", "egress", dict)
        variants, variants_input = self.variant_bytes()
        total, inputs = 0.0, [variants_input, routes_input]
        for route, view in routes.items():
            if not isinstance(view, dict) or view.get("variant") not in VARIANTS:
                raise InputError(f"{self.traffic.name}: [storage] egress {route!r}: variant must be one of "
                                 f"{', '.join(VARIANTS)}")
            images = view.get("images", 1)
            images = self.traffic.model.get(images) if isinstance(images, str) else images
            if isinstance(images, bool) or not isinstance(images, int | float):
                raise InputError(f"{self.traffic.name}: [storage] egress {route!r}: images must be a number "
                                 "or a [model] key")
            rate, rate_input = self.rate(route, (route,))
            rate_input.value += f" x {fmt(images)} {view['variant']}"
            total += rate * images * variants[view["variant"]]
            inputs.append(rate_input)
        self.add("egress.edge", "egress to clients (CDN edge)", total, "bytes/s",
                 "sum over [storage] egress routes of rate x images x the variant's bytes", inputs,
                 [f"{human_bytes(total * 30 * DAY_S)} a month"])
        hit, hit_input = self.assumed("deployment", "cdn_hit_ratio")
        self.add("egress.origin", "egress from the media store", total * (1 - hit), "bytes/s",
                 "egress to clients x (1 - cdn_hit_ratio)", [self.ref("egress.edge"), hit_input],
                 [f"{human_bytes(total * (1 - hit) * 30 * DAY_S)} a month"])

    def knee_checks(self) -> None:
        """Does the per-route model reproduce the CPU the profile measured at its knee?"""
        routes = self.profile.routes
        measured = self.profile.cpu("cores", "api")
        pairs = [(fields.get("requests_per_s"), fields.get("api_cpu_ms")) for fields in routes.values()]
        if measured and pairs and all(None not in pair for pair in pairs):
            modelled = sum(rate * cost for rate, cost in pairs) / 1000
            self.checks.append(f"at the knee the routes' api_cpu_ms explain {modelled / measured:.0%} of the API CPU"
                               f" measured ({modelled:.2f} of {measured:.2f} cores); the rest is work no route"
                               " names (idle loops, metrics), spread by the mix average only where it is used")
        knee, cores, per_request = (self.knee_traffic(), self.profile.cpu("cores", "cassandra"),
                                    self.profile.cpu("cassandra_ms_per_cassandra_request"))
        if knee and cores and per_request:
            share = knee["cassandra"] * per_request / 1000 / cores
            self.checks.append(f"at the knee the API sent {share:.0%} of Cassandra's requests; the stream workers"
                               " (and any other client) the rest")
        unmeasured = [task for task in self.traffic.tasks if task.route not in routes]
        if unmeasured:
            share = sum(task.rate for task in unmeasured) / (self.traffic.total_rate or 1.0)
            self.checks.append(f"{len(unmeasured)} of {len(self.traffic.tasks)} tasks ({share:.0%} of the requests) "
                               "have no route figures in the profile: they cost the mix averages or the assumptions")
        ignored = sorted(set(routes) - {task.route for task in self.traffic.tasks})
        if ignored:
            self.checks.append(f"profile routes the traffic model does not have (ignored): {', '.join(ignored)}")
        mix = self.profile.data.get("mix")
        if mix not in (None, "seed"):
            self.checks.append(f"the profile ran the '{mix}' mix: its mix averages stand for that mix, not these rates")


def plan(profile: Profile, traffic: Traffic) -> Plan:
    return Planner(profile, traffic).plan()


# --- output -----------------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if unit == "bytes":
        return human_bytes(value)
    if unit == "bytes/s":
        return f"{human_bytes(value)}/s ({fmt(value * 8 / GB)} Gbit/s)"
    if unit == "cores":
        return f"{value:,.1f} cores"
    if unit == "ratio":
        return f"{value:.2f} x"
    return f"{fmt(value)} {unit}"


def _shown_path(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def render_text(result: Plan) -> str:
    profile, traffic = result.header["profile"], result.header["traffic"]
    knee, environment = profile["knee"], profile["environment"]
    out = [
        f"photos-capacity: {_shown_path(traffic['path'])} ({traffic['tasks']} tasks, "
        f"{fmt(traffic['requests_per_s'])} req/s) from {_shown_path(profile['path'])}",
        f"profile of {profile.get('created_at')}, mix {profile.get('mix')}: "
        f"knee at {exact(knee.get('requests_per_s'))} req/s, p99 {exact(knee.get('p99_ms'))} ms, "
        f"on {exact(environment.get('cores'))} cores "
        f"({environment.get('shared', 'not described')})",
        "sources: measured = the profile; seed = the design estimates recorded in loadtest/traffic.toml; assumed = the "
        "traffic model's [deployment] / [storage] entries and assumed tasks",
        "",
    ]
    values = [format_value(line.value, line.unit) for line in result.lines]
    label_width = max(len(line.label) for line in result.lines)
    value_width = max(len(value) for value in values)
    out.append(f"{'line':<{label_width}}  {'value':>{value_width}}  sources")
    out.append(f"{'-' * label_width}  {'-' * value_width}  {'-' * 23}")
    tier = None
    for line, value in zip(result.lines, values, strict=True):
        if tier is not None and line.id.split(".", 1)[0] != tier:
            out.append("")
        tier = line.id.split(".", 1)[0]
        out.append(f"{line.label:<{label_width}}  {value:>{value_width}}  {', '.join(line.sources)}")
    out += ["", "How each line was found", "-----------------------"]
    for line, value in zip(result.lines, values, strict=True):
        out.append(f"{line.label}: {value}")
        out.append(f"    = {line.formula}")
        for item in line.inputs:
            origin = f"  ({item.origin})" if item.origin and item.origin != "the line above" else ""
            out.append(f"    {item.name}: {item.value} [{', '.join(item.sources)}]{origin}")
        out += [f"    note: {note}" for note in line.notes]
    if result.checks:
        out += ["", "Checks", "------"]
        out += [f"- {check}" for check in result.checks]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="profile.json of a load run (schema 1)")
    parser.add_argument("--traffic", default=str(DEFAULT_TRAFFIC), help="the traffic model (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="the bill as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        result = plan(load_profile(args.profile), load_traffic(args.traffic))
    except InputError as exc:
        print(f"photos-capacity: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result.to_json(), indent=2) if args.json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
