"""The ranker's training set, as `photos-train-ranker` builds it, written out as Parquet (or CSV) for study.

Reads the window's day x shard partitions of `feed_impressions` and of `feed_engagements` (plus the days a
label window reaches past it) and labels each impression with its reader's best engagement within
ranking_label_window_s (app/ranking/training.py). One row per impression: reader_id, request_id, post_id,
position, served_ms, label, and the features as columns named after FEATURES.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from app.analytics.jobs import run_job
from app.analytics.spark import format_table

PROG = "photos-analytics training-set"


def configure(parser) -> None:
    parser.add_argument("--out", help="directory to write (default <stack_dir>/analytics/training-set-<from>-<to>)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")


def job(spark: Any, settings, window, args) -> str:
    from pyspark.sql import functions as F

    from app.analytics.cli import day_text
    from app.ranking.features import FEATURES
    from app.ranking.training import label_impressions, read_log

    impressions, engagements = read_log(spark, settings, window)
    labelled = label_impressions(impressions, engagements, settings.ranking_label_window_s * 1000)
    flat = labelled.select("reader_id", "request_id", "post_id", "position", "served_ms", "label",
                           *(F.col("features")[i].alias(name) for i, name in enumerate(FEATURES))).cache()
    out = args.out or str(Path(settings.stack_dir) / "analytics" /
                          f"training-set-{day_text(window.first_day)}-{day_text(window.last_day)}")
    writer = flat.write.mode("overwrite")
    (writer.option("header", True).csv(out) if args.format == "csv" else writer.parquet(out))
    labels = flat.groupBy("label").count().orderBy("label").collect()
    queries = flat.select("reader_id", "request_id").distinct().count()
    engaged = flat.where(F.col("label") > 0).select("reader_id", "request_id").distinct().count()
    total = sum(r["count"] for r in labels)
    table = format_table(["label", "impressions", "share"], [
        [r.label, r["count"], r["count"] / total if total else 0.0] for r in labels])
    return (f"{table}\n{total:,} impressions in {queries:,} queries ({engaged:,} with an engaged post)\n"
            f"written as {args.format} to {out}")


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, __doc__, 7, configure, job, argv)


if __name__ == "__main__":
    sys.exit(main())
