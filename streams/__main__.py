"""`photos-streams`: run a Faust worker with every agent of the project."""

from __future__ import annotations

import sys

import faust

from app.settings import Settings
from streams.app import create_app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    loglevel = "debug" if "--debug" in args else "info"
    app = create_app(Settings.from_env())
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
