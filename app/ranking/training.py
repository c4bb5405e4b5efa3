"""The training set, built in Spark from the ranking log, and the LightGBM lambdarank model trained on it.

Training set: every impression of FEATURE_VERSION served in the window (`feed_impressions`, read by day x
shard partitions), left-joined to the same reader's engagements with the same post (`feed_engagements`)
that happened in [served_ms, served_ms + label window). The label is the best engagement: comment 3, like
2, open 1, none 0. A post shown twice in one snapshot counts once, at its best (lowest) position. Only the
result, one row per impression, is collected to the driver; LightGBM trains there (docs/ranking.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.analytics.spark import Window, read_table
from app.ranking.evaluation import Query
from app.ranking.features import FEATURE_VERSION, FEATURES

GRADES = {"comment": 3, "like": 2, "open": 1}  # the label of an impression: its best engagement

# Small trees, fixed seed, two threads: the same data trains the same model (and the CPU stays modest)
MODEL_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "lambdarank_truncation_level": 20,
    "seed": 17,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}
BOOST_ROUNDS = 150


def read_log(spark: Any, settings: Any, window: Window) -> tuple[Any, Any]:
    """The window's impressions of FEATURE_VERSION and the engagements that can label them, as DataFrames
    (only the window's day x shard partitions are read)."""
    from pyspark.sql import functions as F

    impressions = (
        read_table(spark, settings, "feed_impressions", days=window.impression_days())
        .where((F.col("feature_version") == FEATURE_VERSION)
               & (F.col("served_ms") >= window.from_ms) & (F.col("served_ms") < window.to_ms))
        .select("reader_id", "request_id", "position", "post_id", "served_ms", "features")
    )
    engagements = (
        read_table(spark, settings, "feed_engagements", days=window.engagement_days(settings.ranking_label_window_s))
        .select("reader_id", "post_id", "kind", "at_ms")
    )
    return impressions, engagements


def label_impressions(impressions: Any, engagements: Any, label_window_ms: int) -> Any:
    """One row per impression: reader_id, request_id, post_id, position, served_ms, features, label, and `acts`:
    the (at_ms, grade) of every engagement within its window, so the training side of a split can count only
    the engagements made before the held-out part starts (Query.labelled_before)."""
    from pyspark.sql import Window as SparkWindow
    from pyspark.sql import functions as F

    # a post shown twice in one snapshot: keep its best position
    best = SparkWindow.partitionBy("reader_id", "request_id", "post_id").orderBy("position")
    shown = impressions.withColumn("_nth", F.row_number().over(best)).where(F.col("_nth") == 1).drop("_nth")
    grade = F.lit(0)
    for kind, value in GRADES.items():
        grade = F.when(F.col("kind") == kind, F.lit(value)).otherwise(grade)
    acts = engagements.select(F.col("reader_id").alias("e_reader"), F.col("post_id").alias("e_post"), "at_ms",
                              grade.alias("grade"))
    joined = shown.join(
        acts,
        (shown.reader_id == acts.e_reader) & (shown.post_id == acts.e_post)
        & (acts.at_ms >= shown.served_ms) & (acts.at_ms < shown.served_ms + label_window_ms),
        "left",
    )
    return joined.groupBy("reader_id", "request_id", "post_id").agg(
        F.first("position").alias("position"), F.first("served_ms").alias("served_ms"),
        F.first("features").alias("features"), F.coalesce(F.max("grade"), F.lit(0)).alias("label"),
        F.collect_list(F.when(F.col("at_ms").isNotNull(), F.struct("at_ms", "grade"))).alias("acts"),
    )


def queries_of(rows: Sequence[Any]) -> list[Query]:
    """The collected rows grouped into queries (reader, request), each in logged order."""
    grouped: dict[tuple[int, int], list[Any]] = {}
    for row in rows:
        if row.features is None or len(row.features) != len(FEATURES):
            continue  # a row the log wrote for other features: never train on a misaligned row
        grouped.setdefault((row.reader_id, row.request_id), []).append(row)
    queries = []
    for (reader_id, request_id), members in grouped.items():
        members.sort(key=lambda row: row.position)
        queries.append(Query(
            reader_id=reader_id, request_id=request_id, served_ms=min(row.served_ms for row in members),
            post_ids=tuple(row.post_id for row in members),
            features=tuple(tuple(float(v) for v in row.features) for row in members),
            labels=tuple(int(row.label) for row in members),
            acts=tuple(tuple((int(a.at_ms), int(a.grade)) for a in (getattr(row, "acts", None) or ()))
                       for row in members),
        ))
    return queries


def train_model(queries: Sequence[Query], rounds: int = BOOST_ROUNDS) -> Any:
    """A lambdarank booster trained on the queries (blocking CPU work, 1-2 s per ~30k rows)."""
    import lightgbm
    import numpy as np

    features = np.asarray([row for q in queries for row in q.features], dtype=np.float64)
    labels = np.asarray([label for q in queries for label in q.labels], dtype=np.float64)
    data = lightgbm.Dataset(features, label=labels, group=[len(q.labels) for q in queries],
                            feature_name=list(FEATURES), free_raw_data=False)
    return lightgbm.train(MODEL_PARAMS, data, num_boost_round=rounds)


def formula_scores(query: Query) -> list[float]:
    """The formula's score of each logged impression, as the feed computed it (app/feed/ranking.py)."""
    from app.feed.ranking import SeedRanker
    from app.ranking.features import formula_inputs

    formula = SeedRanker()
    return [formula.score_of(*formula_inputs(row)) for row in query.features]


def model_scorer(booster: Any):
    """A scorer of queries by the booster (single-threaded, as the API scores)."""
    import numpy as np

    def score(query: Query) -> list[float]:
        return booster.predict(np.asarray(query.features, dtype=np.float64), num_threads=1).tolist()

    return score
