"""What the Spark command lines share: the Spark options, the window of UTC days, one-line errors."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

from app.analytics.spark import LOCAL_MASTER, SparkOptions, Window

EPOCH = date(1970, 1, 1)


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad input on one line (no usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_spark_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=LOCAL_MASTER,
                        help=f"Spark master (default {LOCAL_MASTER}; spark://host:7077 for a cluster)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra Spark setting, applied last (repeatable)")


def spark_options(args: argparse.Namespace, app_name: str) -> SparkOptions:
    conf = []
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf {item!r} is not KEY=VALUE")
        conf.append((key.strip(), value))
    return SparkOptions(args.master, app_name, tuple(conf))


def add_window_options(parser: argparse.ArgumentParser, default_days: int) -> None:
    parser.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="first UTC day of the window")
    parser.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="last UTC day of the window (inclusive)")
    parser.add_argument("--days", type=int, help=f"the window: this many days ending today (default {default_days})")


def window_of(args: argparse.Namespace, today: int, default_days: int) -> Window:
    """The window the options name; UsageError names the first bad one."""
    if args.days is not None and (args.first or args.last):
        raise UsageError("--days cannot be combined with --from/--to")
    if args.days is not None and args.days < 1:
        raise UsageError("--days must be at least 1")
    last = day_number(args.last, "--to") if args.last else today
    first = day_number(args.first, "--from") if args.first else last - (args.days or default_days) + 1
    if first > last:
        raise UsageError("--from is after --to")
    if last > today:
        raise UsageError("--to is in the future")
    return Window(first, last)


def day_number(text: str, flag: str) -> int:
    try:
        return (date.fromisoformat(text) - EPOCH).days
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a date (YYYY-MM-DD)") from None


def today() -> int:
    """Today's UTC day number (days since 1970-01-01, the ranking log's `day`)."""
    return (datetime.now(UTC).date() - EPOCH).days


def day_text(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()
