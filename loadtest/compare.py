"""Before and after in one run: the same step load against the API and stream workers of two revisions.

    .venv/bin/python -m loadtest.compare --before REV --after REV --out DIR [--mix seed --mix timelines]
        [--workers N] [step options of loadtest.run: --start-users --step-users --step-seconds --warmup ...]

For each mix, and for each revision in turn (before, then after), it checks the revision out into a
worktree under `.stack/compare/`, restarts the local stack's `api` and `streams` services from it
(`PYTHONPATH` puts the worktree's packages ahead of the installed ones; the servers, the data and the
seeded accounts stay as they are), and runs `python -m loadtest.run --shape step` (this checkout's load
generator) against it. Then it prints one table per mix: the knee (requests/s, p50, p99) and, per route,
latency, Cassandra requests, Redis round trips and API CPU per request, before and after, with the ratio.
At the end the stack's `api` and `streams` run this checkout's code again.

The load generator, the API, the stream workers and the servers share this machine's cores, and both
revisions see the same data, so the pair is comparable with itself, not with another machine. Seed the
data first (`photos-seed --users 2000 --seed 2`, as `make capacity` does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
WORKTREES = REPO_ROOT / ".stack" / "compare"
COLUMNS = ("p50_ms", "p99_ms", "cassandra_requests", "redis_round_trips", "api_cpu_ms")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout.strip()


def worktree(rev: str) -> Path:
    """A detached checkout of `rev` (made once, reused by later runs)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = WORKTREES / sha[:12]
    if not path.exists():
        WORKTREES.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", str(path), sha)
    return path


def stack(*args: str, code: Path | None = None) -> None:
    """`photos-stack ARGS`, its api and streams running the code of `code` (this checkout when None).

    The launcher itself always runs this checkout's infra/ (it owns the stack's state under .stack/);
    only the processes it starts see `code` first on PYTHONPATH."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    launcher = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from infra.stack import main; sys.exit(main())"
    subprocess.run([sys.executable, "-c", launcher, *args], cwd=REPO_ROOT, env=env, check=True)


def run_step(code: Path, out: Path, mix: str, passthrough: list[str], host: str, warmup_s: int) -> dict:
    """The step run of one revision, after `warmup_s` of light load on its freshly started processes (their
    first requests prepare statements and fill caches: that start is not what either revision carries)."""
    stack("down", "--services", "api,streams")
    stack("up", code=code)
    load = [sys.executable, "-m", "loadtest.run", "--host", host, "--mix", mix]
    if warmup_s:
        subprocess.run([*load, "--shape", "soak", "--out", str(out / "warmup"), "--start-users", "2",
                        "--duration", str(warmup_s), "--step-seconds", str(warmup_s), "--no-storage"],
                       cwd=REPO_ROOT, check=False)  # its verdict does not matter
    subprocess.run([*load, "--shape", "step", "--out", str(out), *passthrough], cwd=REPO_ROOT, check=False)
    profile = out / "profile.json"
    if not profile.exists():  # not even the first step held its SLOs
        return {"knee": {}, "routes": {}, "cpu": {"ms_per_request": {}}, "environment": {}}
    return json.loads(profile.read_text())


def ratio(before: float | None, after: float | None) -> str:
    if not before or after is None:
        return "-"
    return f"{after / before:.2f}x"


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(mix: str, labels: tuple[str, str], profiles: tuple[dict, dict]) -> list[str]:
    """The knee and each route's costs, before / after / ratio (markdown)."""
    before, after = profiles
    lines = [f"mix {mix}: {labels[0]} -> {labels[1]} ({before['environment'].get('shared', '')})", "",
             "| | before | after | after/before |", "|---|---|---|---|"]
    for key, name in (("requests_per_s", "knee req/s"), ("p50_ms", "knee p50 ms"), ("p99_ms", "knee p99 ms")):
        b, a = before["knee"].get(key), after["knee"].get(key)
        lines.append(f"| {name} | {number(b)} | {number(a)} | {ratio(b, a)} |")
    for key in ("api", "cassandra", "streams"):
        b, a = before["cpu"]["ms_per_request"].get(key), after["cpu"]["ms_per_request"].get(key)
        lines.append(f"| {key} CPU ms per request | {number(b)} | {number(a)} | {ratio(b, a)} |")
    lines += ["", "| route | " + " | ".join(f"{c} before / after" for c in COLUMNS) + " |",
              "|---|" + "---|" * len(COLUMNS)]
    routes = sorted(set(before["routes"]) | set(after["routes"]),
                    key=lambda r: -(before["routes"].get(r, {}).get("requests_per_s") or 0))
    for route in routes:
        b, a = before["routes"].get(route, {}), after["routes"].get(route, {})
        cells = [f"{number(b.get(c))} / {number(a.get(c))}" for c in COLUMNS]
        lines.append(f"| {route} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the baseline revision (a commit, branch or tag)")
    parser.add_argument("--after", default="HEAD", help="the revision measured against it (default HEAD)")
    parser.add_argument("--out", type=Path, required=True, help="directory for each run's output and report.md")
    parser.add_argument("--mix", action="append", help="mixes of loadtest/traffic.toml (default: seed, timelines)")
    parser.add_argument("--host", default="http://127.0.0.1:8080")
    parser.add_argument("--warm-up", type=int, default=30, help="seconds of light load before each step run")
    args, passthrough = parser.parse_known_args(argv)
    mixes = args.mix or ["seed", "timelines"]
    revisions = {"before": args.before, "after": args.after}
    codes = {label: worktree(rev) for label, rev in revisions.items()}
    labels = (f"before {git('rev-parse', '--short', args.before)}", f"after {git('rev-parse', '--short', args.after)}")
    report: list[str] = []
    try:
        for mix in mixes:
            profiles = tuple(run_step(codes[label], args.out / f"{mix.replace(':', '-')}-{label}", mix, passthrough,
                                      args.host, args.warm_up)
                             for label in ("before", "after"))
            report += [*table(mix, labels, profiles), ""]
    finally:
        stack("down", "--services", "api,streams")
        stack("up")
    text = "\n".join(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
