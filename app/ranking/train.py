"""`photos-train-ranker`: train a LightGBM feed ranker on the ranking log, and promote it only if it beats the formula.

Spark reads the window's impressions and engagements from Cassandra and builds the labelled training set
(app/ranking/training.py); the driver trains LightGBM lambdarank on the earlier queries and measures NDCG@10
and recall@10 of the model and of the formula on the later, held-out ones (app/ranking/evaluation.py). The
artifact goes to the media store, the model to the registry (`ranker_models`), and, when the gate passes,
`ranker_active` points at it; every API process picks it up within settings.ranker_poll_s.

Exit codes: 0 trained and promoted (or --dry-run, --promote, --deactivate, --list done), 3 trained but not
promoted (the gate refused, or nothing to train on), 2 bad input, 1 anything else. docs/ranking.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.analytics import cli
from app.analytics.cli import UsageError
from app.analytics.spark import DAY_MS, SparkOptions, SparkSetupError, Stopwatch, Window, format_table, spark_session
from app.ranking import evaluation
from app.ranking.evaluation import Scores, Split, Verdict
from app.ranking.features import FEATURE_VERSION, FEATURES
from app.ranking.model import ARTIFACT_CONTENT_TYPE, MODEL_NAME, artifact_key, encode_artifact, sha256
from app.ranking.training import (
    formula_scores,
    label_impressions,
    model_scorer,
    queries_of,
    read_log,
    train_model,
)
from app.settings import Settings
from app.storage.ranker_models import ModelRecord

PROG = "photos-train-ranker"
DEFAULT_DAYS = 7
EXIT_NOT_PROMOTED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--promote", type=int, metavar="VERSION", help="serve this recorded version (a roll back)")
    mode.add_argument("--deactivate", action="store_true", help="serve no model: the feed goes back to the formula")
    mode.add_argument("--list", action="store_true", help="the newest recorded models and which one serves")
    cli.add_spark_options(parser)
    cli.add_window_options(parser, DEFAULT_DAYS)
    parser.add_argument("--holdout-days", type=int, help="hold out the window's last N whole days")
    parser.add_argument("--holdout-fraction", type=float, default=0.2,
                        help="otherwise hold out this latest share of the queries by serving time (default 0.2)")
    parser.add_argument("--min-queries", type=int, default=30,
                        help="held-out queries with an engagement the gate needs (default 30)")
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="NDCG@10 the model must beat the formula's by, more than (default 0)")
    parser.add_argument("--dry-run", action="store_true", help="train and evaluate, record and promote nothing")
    return parser


@dataclass(frozen=True)
class TrainArgs:
    window: Window
    holdout_days: int | None
    holdout_fraction: float
    min_queries: int
    min_gain: float
    dry_run: bool
    spark: SparkOptions


def training_args(args: argparse.Namespace, today: int) -> TrainArgs:
    """The validated options of a training run; UsageError names the first bad one."""
    window = cli.window_of(args, today, DEFAULT_DAYS)
    span = window.last_day - window.first_day + 1
    if args.holdout_days is not None and not 1 <= args.holdout_days < span:
        raise UsageError(f"--holdout-days must be between 1 and {span - 1} (the window has {span} days)")
    if not 0.0 < args.holdout_fraction < 1.0:
        raise UsageError("--holdout-fraction must be between 0 and 1")
    if args.min_queries < 1:
        raise UsageError("--min-queries must be at least 1")
    if args.min_gain < 0:
        raise UsageError("--min-gain cannot be negative (a model worse than the formula is never promoted)")
    return TrainArgs(window, args.holdout_days, args.holdout_fraction, args.min_queries, args.min_gain,
                     args.dry_run, cli.spark_options(args, PROG))


@dataclass
class Outcome:
    version: int
    split: Split
    train_impressions: int
    holdout_impressions: int
    model: Scores
    formula: Scores
    verdict: Verdict
    booster: Any
    seconds: dict[str, float]

    def metrics(self) -> dict[str, float]:
        return {
            "model_ndcg10": self.model.ndcg, "formula_ndcg10": self.formula.ndcg,
            "model_recall10": self.model.recall, "formula_recall10": self.formula.recall,
            "train_queries": float(len(self.split.train)), "train_impressions": float(self.train_impressions),
            "holdout_queries": float(len(self.split.holdout)), "holdout_impressions": float(self.holdout_impressions),
            "evaluated_queries": float(self.model.queries),
            **{f"seconds_{name.replace(' ', '_')}": round(s, 3) for name, s in self.seconds.items()},
        }


def new_version(now: datetime | None = None) -> int:
    """YYYYMMDDHHMMSS of the run's start, UTC."""
    return int((now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S"))


def train(settings: Settings, run: TrainArgs, version: int, spark: Any = None) -> Outcome | None:
    """Build the set in Spark, train and evaluate (blocking). None when the window holds nothing to train on.
    Without `spark`, a session is started for the run and stopped after the join."""
    watch = Stopwatch()
    own_session = spark is None
    if own_session:
        spark = spark_session(settings, run.spark)
    try:
        watch.lap("spark start")
        impressions, engagements = read_log(spark, settings, run.window)
        impressions, engagements = impressions.cache(), engagements.cache()
        read = (impressions.count(), engagements.count())
        watch.lap("read")
        rows = label_impressions(impressions, engagements, settings.ranking_label_window_s * 1000).collect()
        impressions.unpersist()
        engagements.unpersist()
        watch.lap("join")
    finally:
        if own_session:
            spark.stop()
    print(f"read {read[0]:,} impressions and {read[1]:,} engagements of days {cli.day_text(run.window.first_day)} .. "
          f"{cli.day_text(run.window.last_day)}")
    queries = queries_of(rows)
    if run.holdout_days is not None:
        split = evaluation.split_by_days(queries, (run.window.last_day + 1 - run.holdout_days) * DAY_MS)
    else:
        split = evaluation.split_by_fraction(queries, run.holdout_fraction)
    if not split.train:
        return None
    booster = train_model(split.train)
    watch.lap("train")
    model = evaluation.evaluate(split.holdout, model_scorer(booster))
    formula = evaluation.evaluate(split.holdout, formula_scores)
    watch.lap("evaluate")
    return Outcome(
        version=version, split=split, train_impressions=sum(len(q.labels) for q in split.train),
        holdout_impressions=sum(len(q.labels) for q in split.holdout), model=model, formula=formula,
        verdict=evaluation.gate(model, formula, run.min_queries, run.min_gain), booster=booster,
        seconds=dict(watch.seconds),
    )


def report(outcome: Outcome) -> str:
    split = outcome.split
    lines = [format_table(["", "queries", "impressions", "positives"], [
        ["train", len(split.train), outcome.train_impressions, sum(q.positives for q in split.train)],
        ["held out", len(split.holdout), outcome.holdout_impressions, sum(q.positives for q in split.holdout)],
    ]), "", format_table([f"held out ({outcome.model.queries} queries)", "NDCG@10", "recall@10"], [
        [f"{MODEL_NAME}-{outcome.version}", outcome.model.ndcg, outcome.model.recall],
        ["formula", outcome.formula.ndcg, outcome.formula.recall],
    ]), "", "timings: " + ", ".join(f"{name} {s:.1f} s" for name, s in outcome.seconds.items()),
        f"gate: {outcome.verdict.reason}"]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def opened(settings: Settings):
    """The wiring of a command's storage and media store, closed after it."""
    from app.wiring import Wiring

    wiring = Wiring(settings)
    try:
        yield wiring
    finally:
        await wiring.close()


async def publish(settings: Settings, run: TrainArgs, outcome: Outcome) -> ModelRecord:
    """Artifact, then registry row, then (gate passed) promotion: a reader of the registry never finds a row
    whose artifact is missing, nor an active version that was not recorded."""
    async with opened(settings) as wiring:
        models = (await wiring.storage()).ranker_models
        if await models.get(MODEL_NAME, outcome.version) is not None:
            raise RuntimeError(f"{MODEL_NAME}-{outcome.version} is already recorded: run again in a second")
        artifact = encode_artifact(MODEL_NAME, outcome.version, FEATURE_VERSION, FEATURES,
                                   outcome.booster.model_to_string())
        key = artifact_key(MODEL_NAME, outcome.version)
        await wiring.media_store().put(key, artifact, ARTIFACT_CONTENT_TYPE)
        record = ModelRecord(
            name=MODEL_NAME, version=outcome.version, created_at=datetime.now(UTC), artifact_key=key,
            artifact_sha256=sha256(artifact), feature_version=FEATURE_VERSION, features=FEATURES,
            train_from_ms=run.window.from_ms, holdout_from_ms=outcome.split.holdout_from_ms,
            holdout_to_ms=run.window.to_ms, metrics=outcome.metrics(), promoted=False, verdict=outcome.verdict.reason,
        )
        await models.record(record)
        if outcome.verdict.promote:
            await models.promote(MODEL_NAME, outcome.version)
        return record


async def promote_recorded(settings: Settings, version: int) -> str:
    async with opened(settings) as wiring:
        models = (await wiring.storage()).ranker_models
        record = await models.get(MODEL_NAME, version)
        if record is None:
            raise UsageError(f"no recorded model {MODEL_NAME}-{version} (see --list)")
        if record.feature_version != FEATURE_VERSION:
            raise UsageError(f"{record.label} reads feature version {record.feature_version}, the API computes "
                             f"{FEATURE_VERSION}")
        if not await wiring.media_store().exists(record.artifact_key):
            raise UsageError(f"{record.label}'s artifact {record.artifact_key} is missing from the media store")
        await models.promote(MODEL_NAME, version)
        return f"{record.label} promoted (it was: {record.verdict})"


async def deactivate(settings: Settings) -> str:
    async with opened(settings) as wiring:
        await (await wiring.storage()).ranker_models.deactivate(MODEL_NAME)
    return f"no {MODEL_NAME} model serves now: the feed ranks with the formula"


async def list_models(settings: Settings) -> str:
    async with opened(settings) as wiring:
        models = (await wiring.storage()).ranker_models
        active = await models.active(MODEL_NAME)
        recent = await models.recent(MODEL_NAME, 20)
    rows = [[m.version, "*" if active and active.version == m.version else "", m.metrics.get("model_ndcg10"),
             m.metrics.get("formula_ndcg10"), int(m.metrics.get("evaluated_queries", 0)), m.verdict] for m in recent]
    return format_table(["version", "active", "NDCG@10", "formula", "queries", "verdict"], rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.promote is not None:
            print(asyncio.run(promote_recorded(settings, args.promote)))
            return 0
        if args.deactivate:
            print(asyncio.run(deactivate(settings)))
            return 0
        if args.list:
            print(asyncio.run(list_models(settings)))
            return 0
        run = training_args(args, cli.today())
    except (UsageError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return run_training(settings, run)


def run_training(settings: Settings, run: TrainArgs, spark: Any = None) -> int:
    """Train, print the report, record and maybe promote: the exit code (blocking; Spark's session is `spark`
    when given, one of the run's own otherwise)."""
    version = new_version()
    try:
        outcome = train(settings, run, version, spark)
    except SparkSetupError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if outcome is None:
        print(f"{PROG}: nothing to train on: no queries of feature version {FEATURE_VERSION} served before the "
              "held-out part of the window", file=sys.stderr)
        return EXIT_NOT_PROMOTED
    print(report(outcome))
    if run.dry_run:
        print(f"dry run: {MODEL_NAME}-{version} neither recorded nor promoted")
        return 0
    record = asyncio.run(publish(settings, run, outcome))
    state = "promoted" if outcome.verdict.promote else "recorded, not promoted"
    print(f"{record.label}: {state}; artifact {record.artifact_key} (sha256 {record.artifact_sha256[:12]}...)")
    return 0 if outcome.verdict.promote else EXIT_NOT_PROMOTED


if __name__ == "__main__":
    sys.exit(main())
