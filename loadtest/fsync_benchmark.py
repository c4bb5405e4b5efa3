"""Would batching the media store's directory fsyncs make uploads cheaper? Measured on this disk.

An upload stores four variants. `LocalMediaStore.put` makes each one durable on its own: write a
temporary file, fsync it, rename it over the key, fsync the directory. The alternative measured here
writes and fsyncs the four files, renames them, then fsyncs their directory once (one journal commit
for the four renames instead of four). Both patterns run interleaved, round after round, in the
media directory's file system, with the variant sizes of a 1080-pixel photo; the figure is the wall
time of the four puts, what a request waits for (the fsyncs run in the store's thread pool, not on the
event loop's core).

    .venv/bin/python -m loadtest.fsync_benchmark --uploads 200 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.settings import Settings

VARIANT_BYTES = (350_000, 120_000, 45_000, 9_000)  # original, large, medium, thumbnail (a 1080 px JPEG)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: str, data: bytes) -> str:
    temporary = f"{path}.{secrets.token_hex(6)}.tmp"
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return temporary


def each(directory: str, name: str, variants: list[bytes]) -> None:
    """Today's pattern: every variant is made durable on its own (its file, its rename)."""
    for i, data in enumerate(variants):
        path = f"{directory}/{name}-{i}.jpg"
        os.replace(_write_synced(path, data), path)
        _fsync_directory(directory)


def batched(directory: str, name: str, variants: list[bytes]) -> None:
    """The alternative: the four files, the four renames, one directory fsync."""
    for i, data in enumerate(variants):
        path = f"{directory}/{name}-{i}.jpg"
        os.replace(_write_synced(path, data), path)
    _fsync_directory(directory)


PATTERNS = {"each": each, "batched": batched}


def run(root: Path, uploads: int, rounds: int) -> dict[str, list[float]]:
    variants = [os.urandom(n) for n in VARIANT_BYTES]
    timings: dict[str, list[float]] = {name: [] for name in PATTERNS}
    with tempfile.TemporaryDirectory(prefix="fsync-bench-", dir=root) as scratch:
        for round_no in range(rounds):
            for name, pattern in PATTERNS.items():
                directory = f"{scratch}/{name}-{round_no}"
                os.mkdir(directory)
                started = time.perf_counter()
                for upload in range(uploads):
                    pattern(directory, str(upload), variants)
                timings[name].append((time.perf_counter() - started) / uploads * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fsync_benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200, help="uploads (four variants each) per pattern and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: the media directory)")
    args = parser.parse_args(argv)
    root = args.dir or Path(Settings.from_env().media_dir)
    root.mkdir(parents=True, exist_ok=True)
    timings = run(root, args.uploads, args.rounds)
    print(f"Media durability: {args.uploads} uploads x 4 variants {list(VARIANT_BYTES)} bytes, {args.rounds} "
          f"interleaved rounds, in {root} (other processes share this machine's disk and 2 cores)")
    print(f"{'pattern':<9} {'ms per upload (median)':>22} {'rounds':>40}")
    for name, values in timings.items():
        print(f"{name:<9} {statistics.median(values):>22.2f}   {' '.join(f'{v:.2f}' for v in values)}")
    ratio = statistics.median(timings["batched"]) / statistics.median(timings["each"])
    print(f"batched / each: {ratio:.2f}x the wall time of an upload's puts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
