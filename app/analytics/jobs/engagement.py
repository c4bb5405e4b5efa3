"""Engagement per author per day: likes, comments and comment opens readers gave each author's posts.

Reads `feed_engagements` (the ranking log's labels: every like, comment and opened comment thread, one row per
reader, post and kind a day) for the window's day x shard partitions only, so the cost is the window's
partitions, not the table. The log lives ranking_log_ttl_days (30); for all-time figures the truth tables
(`likes`, `comments`) answer, at the price of full-table scans (docs/analytics.md).
"""

from __future__ import annotations

import sys
from typing import Any

from app.analytics.jobs import run_job
from app.analytics.spark import format_table, read_table

PROG = "photos-analytics engagement"


def configure(parser) -> None:
    parser.add_argument("--top", type=int, default=10, help="authors shown per day (default 10)")


def engagement_per_author_day(spark: Any, settings, window) -> Any:
    """day, author_id, likes, comments, opens, readers, total: one row per author and day."""
    from pyspark.sql import functions as F

    acts = read_table(spark, settings, "feed_engagements", days=window.impression_days())

    def count(kind: str):
        return F.sum(F.when(F.col("kind") == kind, 1).otherwise(0)).alias(f"{kind}s")

    per_day = acts.groupBy("day", "author_id").agg(
        count("like"), count("comment"), count("open"), F.countDistinct("reader_id").alias("readers"))
    return per_day.withColumn("total", F.col("likes") + F.col("comments") + F.col("opens"))


def job(spark: Any, settings, window, args) -> str:
    from pyspark.sql import Window as SparkWindow
    from pyspark.sql import functions as F

    from app.analytics.cli import day_text

    frame = engagement_per_author_day(spark, settings, window).cache()
    ranked = frame.withColumn("rank", F.row_number().over(
        SparkWindow.partitionBy("day").orderBy(F.desc("total"), "author_id")))
    rows = ranked.where(F.col("rank") <= args.top).orderBy(F.desc("day"), "rank").collect()
    totals = frame.agg(F.count("*").alias("pairs"), F.sum("total").alias("acts")).first()
    table = format_table(["day", "author", "likes", "comments", "opens", "readers"], [
        [day_text(r.day), r.author_id, r.likes, r.comments, r.opens, r.readers] for r in rows])
    return f"{table}\n{totals.pairs or 0:,} author-days, {totals.acts or 0:,} engagements"


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, __doc__, 7, configure, job, argv)


if __name__ == "__main__":
    sys.exit(main())
