"""The traffic model file (loadtest/traffic.toml), read and checked in one place.

Locust's scenarios take their task weights from it, the load shapes their SLOs, and the capacity
planner its rates. A malformed file raises `TrafficError` with one line that names the problem.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent / "traffic.toml"
SOURCES = ("seed", "assumed", "measured")


class TrafficError(ValueError):
    """The traffic file cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class Task:
    name: str
    route: str  # "<METHOD> <path template>", as the API's metrics label it
    rate: float  # requests per second at the seed's scale
    source: str
    why: str


@dataclass(frozen=True)
class Slo:
    p99_ms: float
    error_ratio: float


@dataclass(frozen=True)
class Traffic:
    path: Path
    model: dict
    tasks: dict[str, Task]
    mixes: dict[str, dict[str, float]]  # mix -> task -> weight (only tasks with weight > 0)
    slo_default: Slo
    slo_routes: dict[str, Slo] = field(default_factory=dict)
    raw: dict = field(default_factory=dict)  # every section, for readers of their own ([deployment], ...)

    def weights(self, mix: str) -> dict[str, float]:
        """Task -> weight of a mix; `only:<task>` is that task alone."""
        if mix.startswith("only:"):
            name = mix.removeprefix("only:")
            if name not in self.tasks:
                raise TrafficError(f"no task {name!r} in {self.path} (tasks: {', '.join(sorted(self.tasks))})")
            return {name: 1.0}
        if mix not in self.mixes:
            raise TrafficError(f"no mix {mix!r} in {self.path} (mixes: {', '.join(sorted(self.mixes))})")
        return self.mixes[mix]

    def slo(self, route: str) -> Slo:
        return self.slo_routes.get(route, self.slo_default)

    def route_of(self, task: str) -> str:
        return self.tasks[task].route


def load(path: str | Path | None = None) -> Traffic:
    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TrafficError(f"traffic file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TrafficError(f"cannot read traffic file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise TrafficError(f"traffic file {path} is not valid TOML: {error}") from None
    return parse(raw, path)


def parse(raw: dict, path: Path) -> Traffic:
    def fail(message: str) -> TrafficError:
        return TrafficError(f"{path}: {message}")

    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise fail("needs a [tasks.<name>] table per task")
    tasks: dict[str, Task] = {}
    for name, spec in tasks_raw.items():
        if not isinstance(spec, dict):
            raise fail(f"[tasks.{name}] must be a table")
        route, rate, source = spec.get("route"), spec.get("rate"), spec.get("source")
        if not isinstance(route, str) or len(route.split(" ")) != 2 or not route.split(" ")[1].startswith("/"):
            raise fail(f"[tasks.{name}] route must be '<METHOD> /path', not {route!r}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise fail(f"[tasks.{name}] rate must be a positive number, not {rate!r}")
        if source not in SOURCES:
            raise fail(f"[tasks.{name}] source must be one of {', '.join(SOURCES)}, not {source!r}")
        tasks[name] = Task(name, route, float(rate), source, str(spec.get("why", "")))

    mixes: dict[str, dict[str, float]] = {}
    for name, spec in (raw.get("mixes") or {}).items():
        weights = spec.get("weights") if isinstance(spec, dict) else None
        if weights == "rates":
            mixes[name] = {task.name: task.rate for task in tasks.values()}
        elif weights == "uniform":
            mixes[name] = {task: 1.0 for task in tasks}
        elif isinstance(weights, dict) and weights:
            unknown = sorted(set(weights) - set(tasks))
            if unknown:
                raise fail(f"[mixes.{name}] names tasks that do not exist: {', '.join(unknown)}")
            if any(isinstance(w, bool) or not isinstance(w, int | float) or w < 0 for w in weights.values()):
                raise fail(f"[mixes.{name}] weights must be numbers >= 0")
            mixes[name] = {task: float(w) for task, w in weights.items() if w > 0}
            if not mixes[name]:
                raise fail(f"[mixes.{name}] gives every task weight 0")
        else:
            raise fail(f"[mixes.{name}] weights must be \"rates\", \"uniform\" or a table of task = weight")
    if not mixes:
        raise fail("needs at least one [mixes.<name>]")

    slo_raw = raw.get("slo") or {}
    default = _slo(slo_raw.get("default"), None, fail, "default")
    routes = {
        route: _slo(spec, default, fail, route) for route, spec in slo_raw.items() if route != "default"
    }
    return Traffic(path, dict(raw.get("model") or {}), tasks, mixes, default, routes, raw)


def _slo(spec, default: Slo | None, fail, name: str) -> Slo:
    if not isinstance(spec, dict):
        raise fail(f"[slo.{name}] must be a table" if default else "needs an [slo.default] table")
    p99 = spec.get("p99_ms", default.p99_ms if default else None)
    errors = spec.get("error_ratio", default.error_ratio if default else None)
    if isinstance(p99, bool) or not isinstance(p99, int | float) or p99 <= 0:
        raise fail(f"[slo.{name}] p99_ms must be a positive number")
    if isinstance(errors, bool) or not isinstance(errors, int | float) or not 0 <= errors <= 1:
        raise fail(f"[slo.{name}] error_ratio must be a number from 0 to 1")
    return Slo(float(p99), float(errors))
