"""Follower growth: the follows each user gained per day, and the users who gained the most.

Reads `following` (the truth of the follow graph, one row per edge with `followed_at`) in full: no key of
it names a day, so every partition is scanned (split by token range over the executors). Unfollows delete
their edge, so these are the follows made in the window that still stand: net growth, not gross follows.
Edge-less partitions (a `following` partition keeps its static edge_count after its last unfollow) read as
a row with a null followee and are left out.
"""

from __future__ import annotations

import sys
from typing import Any

from app.analytics.jobs import run_job
from app.analytics.spark import DAY_MS, format_table, read_table

PROG = "photos-analytics follower-growth"


def configure(parser) -> None:
    parser.add_argument("--top", type=int, default=10, help="users shown (default 10)")


def follows_per_user_day(spark: Any, settings, window) -> Any:
    """followee_id, day, gained: the standing follows each user gained on each day of the window."""
    from pyspark.sql import functions as F

    edges = read_table(spark, settings, "following").where(F.col("followee_id").isNotNull())
    followed_ms = F.col("followed_at").cast("double") * 1000  # a timestamp cast to double: Unix seconds
    dated = edges.select("followee_id", (followed_ms / DAY_MS).cast("long").alias("day"))
    return (dated.where((F.col("day") >= window.first_day) & (F.col("day") <= window.last_day))
            .groupBy("followee_id", "day").agg(F.count("*").alias("gained")))


def job(spark: Any, settings, window, args) -> str:
    from pyspark.sql import functions as F

    from app.analytics.cli import day_text

    growth = follows_per_user_day(spark, settings, window).cache()
    per_day = growth.groupBy("day").agg(F.sum("gained").alias("follows"),
                                        F.countDistinct("followee_id").alias("users")).orderBy("day").collect()
    top = (growth.groupBy("followee_id").agg(F.sum("gained").alias("gained"), F.count("*").alias("days"))
           .orderBy(F.desc("gained"), "followee_id").limit(args.top).collect())
    return "\n".join([
        format_table(["day", "follows", "users followed"], [[day_text(r.day), r.follows, r.users] for r in per_day]),
        "",
        format_table(["user", "gained", "days with follows"], [[r.followee_id, r.gained, r.days] for r in top]),
    ])


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, __doc__, 30, configure, job, argv)


if __name__ == "__main__":
    sys.exit(main())
