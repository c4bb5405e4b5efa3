"""Worked Spark jobs over the tables (docs/analytics.md): `photos-analytics <job>` or
`python -m app.analytics.jobs.<job>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from app.analytics import cli
from app.analytics.spark import SparkSetupError, Stopwatch, spark_session
from app.settings import Settings


def run_job(prog: str, doc: str, default_days: int, configure: Callable[[argparse.ArgumentParser], None],
            job: Callable[[Any, Settings, Any, argparse.Namespace], str], argv: list[str] | None) -> int:
    """Parse the options (window, Spark, the job's own), start Spark, run `job(spark, settings, window, args)`
    and print what it returns with the timings; bad input is one line and exit 2."""
    parser = cli.OneLineParser(prog=prog, description=doc.splitlines()[0])
    cli.add_spark_options(parser)
    cli.add_window_options(parser, default_days)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        window = cli.window_of(args, cli.today(), default_days)
        options = cli.spark_options(args, prog)
    except (cli.UsageError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    watch = Stopwatch()
    try:
        spark = spark_session(settings, options)
    except SparkSetupError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    try:
        watch.lap("spark start")
        print(f"{prog}: {cli.day_text(window.first_day)} .. {cli.day_text(window.last_day)}, "
              f"keyspace {settings.cassandra_keyspace}")
        print(job(spark, settings, window, args))
        watch.lap("job")
    finally:
        spark.stop()
    print("timings: " + ", ".join(f"{name} {s:.1f} s" for name, s in watch.seconds.items()))
    return 0
