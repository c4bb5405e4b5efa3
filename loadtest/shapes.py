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

How a phase is judged: loadtest/slo.py.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from locust import LoadTestShape

from loadtest import load_state
from loadtest import traffic as traffic_model
from loadtest.slo import Phase, env_float, judge, plan, snapshot, window


class PhotosShape(LoadTestShape):
    """Runs the phases of PHOTOS_LOAD_SHAPE and records each one's judgement."""

    def __init__(self) -> None:
        super().__init__()
        self.shape = os.environ.get("PHOTOS_LOAD_SHAPE", "step")
        self.traffic = traffic_model.load(os.environ.get("PHOTOS_LOAD_TRAFFIC"))
        mix = os.environ.get("PHOTOS_LOAD_MIX", "seed")
        self.phases = plan(self.shape, list(self.traffic.weights(mix)))
        self.user_rate = env_float("PHOTOS_LOAD_USER_RATE", 1)
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
