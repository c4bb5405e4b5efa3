"""`photos-analytics <job> [options]`: run one of the worked Spark jobs (docs/analytics.md)."""

from __future__ import annotations

import importlib
import sys

JOBS = {
    "engagement": "app.analytics.jobs.engagement",
    "follower-growth": "app.analytics.jobs.follower_growth",
    "training-set": "app.analytics.jobs.training_set",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in JOBS:
        given = repr(argv[0]) if argv else "none"
        print(f"photos-analytics: error: job {given}: choose one of {', '.join(JOBS)}", file=sys.stderr)
        return 2
    return importlib.import_module(JOBS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
