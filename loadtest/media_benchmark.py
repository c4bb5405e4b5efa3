"""The media pipeline's speed on this machine, measured against libvips doing the same work.

    .venv/bin/python -m loadtest.media_benchmark [--iterations 10] [--burst 16]

One run (about a minute) makes a 12 MP photo-like JPEG and measures:
  (a) our four variants per image on one core, with the time of each stage;
  (b) libvips making the same four progressive JPEGs two ways: `thumbnail_buffer` per variant
      (shrink-on-load, so one decode per variant) and a cascade (one decode, each variant from
      the previous one); on one thread for the per-core comparison, and on its default threads;
  (c) the longest event-loop stall while a burst of uploads goes through ImageProcessor.
Figures are CPU time per image (every thread of the process), the median of the iterations; the
pipelines take turns so that drift on a shared machine hits them alike. It also measures the two
choices the pipeline rests on: the resampling filter of the big first resize (time, and PSNR
against Lanczos) and progressive against baseline JPEG encoding.

libvips comes with the `bench` extra: `pip install -e .[bench]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import pyvips
from PIL import Image, ImageChops, ImageStat

from app.media.processing import (
    JPEG_QUALITY,
    ORIGINAL,
    RESAMPLE,
    VARIANT_SPECS,
    encode_jpeg,
    fitted_size,
    process_image,
)
from app.media.processor import ImageProcessor
from app.settings import Settings
from tests.support.images import encode, photo_like

T = TypeVar("T")

SOURCE_SIZE = (4000, 3000)
SOURCE_QUALITY = 90  # what a phone camera writes
TICK_S = 0.001  # the stall ticker's sleep
KERNELS = ("LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX")


@dataclass
class Timing:
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_ms)

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_ms)


class StageProfile:
    """A StageTimer for process_image that adds up the wall time of each stage."""

    def __init__(self) -> None:
        self.totals_s: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals_s[stage] += time.perf_counter() - started


# --- (a) and (b): one image at a time ---------------------------------------------


def ours(data: bytes, filter_name: str | None, max_pixels: int, profile: StageProfile) -> list[tuple[int, int]]:
    processed = process_image(data, filter_name, max_pixels, profile)
    return [(v.width, v.height) for v in processed.variants.values()]


def vips_per_variant(data: bytes, threads: int) -> list[tuple[int, int]]:
    pyvips.concurrency_set(threads)
    sizes = []
    for spec in VARIANT_SPECS:
        crop = "centre" if spec.square else "none"
        image = pyvips.Image.thumbnail_buffer(data, spec.edge, height=spec.edge, size="down", crop=crop)
        _vips_jpeg(image)
        sizes.append((image.width, image.height))
    return sizes


def vips_cascade(data: bytes, threads: int) -> list[tuple[int, int]]:
    pyvips.concurrency_set(threads)
    sizes = []
    image = pyvips.Image.thumbnail_buffer(data, ORIGINAL.edge, height=ORIGINAL.edge, size="down")
    for spec in VARIANT_SPECS:
        if spec is not ORIGINAL:
            crop = "centre" if spec.square else "none"
            image = image.thumbnail_image(spec.edge, height=spec.edge, size="down", crop=crop)
        image = image.copy_memory()  # computed once: the next variant starts from these pixels
        _vips_jpeg(image)
        sizes.append((image.width, image.height))
    return sizes


def _vips_jpeg(image: pyvips.Image) -> bytes:
    return image.jpegsave_buffer(Q=JPEG_QUALITY, interlace=True, strip=True)


def take_turns(pipelines: dict[str, Callable[[], object]], iterations: int) -> dict[str, Timing]:
    timings = {name: Timing() for name in pipelines}
    for _ in range(iterations):
        for name, run in pipelines.items():
            cpu, wall = time.process_time(), time.perf_counter()
            run()
            timings[name].cpu_ms.append((time.process_time() - cpu) * 1000)
            timings[name].wall_ms.append((time.perf_counter() - wall) * 1000)
    return timings


# --- (c): the event loop during a burst ----------------------------------------------


@dataclass
class Burst:
    uploads: int
    workers: int
    elapsed_s: float
    longest_stall_ms: float


async def burst(data: bytes, uploads: int, workers: int, max_pixels: int) -> Burst:
    processor = ImageProcessor(workers, max_pixels, max_waiting=uploads)
    try:
        # one job per worker first, so process start-up and imports are not counted
        await asyncio.gather(*(processor.process(data, None) for _ in range(processor.workers)))
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(TICK_S)
                now = time.perf_counter()
                gaps.append(now - last - TICK_S)
                last = now

        ticking = asyncio.create_task(ticker())
        started = time.perf_counter()
        await asyncio.gather(*(processor.process(data, None) for _ in range(uploads)))
        elapsed = time.perf_counter() - started
        done.set()
        await ticking
        return Burst(uploads, processor.workers, elapsed, max(gaps) * 1000)
    finally:
        processor.close()


# --- the choices ---------------------------------------------------------------------


def kernel_table(data: bytes) -> list[tuple[str, float, float]]:
    """(filter, ms, PSNR against Lanczos) of the resize from the decoded source to the original variant."""
    source = Image.open(io.BytesIO(data))
    source.load()
    size = fitted_size(source.size, ORIGINAL.edge)
    results, reference = [], None
    for name in KERNELS:
        kernel = Image.Resampling[name]
        ms, resized = best_of(3, lambda k=kernel: source.resize(size, k))
        reference = reference or resized
        results.append((name, ms, psnr(reference, resized)))
    return results


def encoding_table(data: bytes) -> list[tuple[str, float, int]]:
    """(mode, ms, bytes) of encoding the original variant."""
    source = Image.open(io.BytesIO(data))
    source.load()
    original = source.resize(fitted_size(source.size, ORIGINAL.edge), RESAMPLE)
    modes = {
        "baseline": {"quality": JPEG_QUALITY},
        "baseline, optimised tables": {"quality": JPEG_QUALITY, "optimize": True},
        "progressive (ours)": None,
    }
    results = []
    for name, params in modes.items():
        if params is None:
            ms, encoded = best_of(5, lambda: encode_jpeg(original))
        else:
            ms, encoded = best_of(5, lambda p=params: encode(original, "JPEG", **p))
        results.append((name, ms, len(encoded)))
    return results


def best_of(times: int, run: Callable[[], T]) -> tuple[float, T]:
    results = []
    for _ in range(times):
        started = time.perf_counter()
        result = run()
        results.append(((time.perf_counter() - started) * 1000, result))
    return min(results, key=lambda timed: timed[0])


def psnr(reference: Image.Image, other: Image.Image) -> float:
    rms = ImageStat.Stat(ImageChops.difference(reference, other)).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


# --- the report ----------------------------------------------------------------------


def report_pipelines(timings: dict[str, Timing], sizes: dict[str, list[tuple[int, int]]]) -> list[str]:
    lines = [f"{'pipeline':<44} {'CPU ms/img':>10} {'wall ms/img':>11} {'img/s/core':>10}   variants"]
    for name, timing in timings.items():
        dims = " ".join(f"{w}x{h}" for w, h in sizes[name])
        lines.append(f"{name:<44} {timing.cpu:>10.0f} {timing.wall:>11.0f} {1000 / timing.cpu:>10.2f}   {dims}")
    return lines


def report_stages(profiles: dict[str, StageProfile], iterations: int) -> list[str]:
    stages = list(dict.fromkeys(stage for p in profiles.values() for stage in p.totals_s))
    lines = [f"{'stage (ms/img)':<20}" + "".join(f"{name:>18}" for name in profiles)]
    for stage in stages:
        cells = "".join(
            f"{p.totals_s[stage] / iterations * 1000:>18.1f}" if stage in p.totals_s else f"{'-':>18}"
            for p in profiles.values()
        )
        lines.append(f"{stage:<20}{cells}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10, help="images per pipeline")
    parser.add_argument("--burst", type=int, default=16, help="concurrent uploads in the stall test")
    parser.add_argument("--workers", type=int, default=0, help="ImageProcessor workers in the stall test (0: cores)")
    args = parser.parse_args(argv)

    max_pixels = Settings.from_env().max_image_pixels
    data = encode(photo_like(*SOURCE_SIZE), "JPEG", quality=SOURCE_QUALITY)
    default_threads = pyvips.concurrency_get()
    pyvips.cache_set_max(0)  # every call decodes and resizes for real, none is answered from the cache
    profiles = {"no filter": StageProfile(), "clarendon": StageProfile()}
    pipelines: dict[str, Callable[[], list[tuple[int, int]]]] = {
        "ours (Pillow), no filter": lambda: ours(data, None, max_pixels, profiles["no filter"]),
        "ours (Pillow), clarendon": lambda: ours(data, "clarendon", max_pixels, profiles["clarendon"]),
        "libvips thumbnail_buffer per variant, 1 thr": lambda: vips_per_variant(data, 1),
        "libvips cascade, 1 thread": lambda: vips_cascade(data, 1),
        f"libvips thumbnail_buffer, {default_threads} threads": lambda: vips_per_variant(data, default_threads),
        f"libvips cascade, {default_threads} threads": lambda: vips_cascade(data, default_threads),
    }
    sizes = {name: run() for name, run in pipelines.items()}  # a warm-up round, and the variants' sizes
    for profile in profiles.values():
        profile.totals_s.clear()
    timings = take_turns(pipelines, args.iterations)
    stall = asyncio.run(burst(data, args.burst, args.workers, max_pixels))

    width, height = SOURCE_SIZE
    print(f"Media pipeline: {width}x{height} photo-like JPEG ({len(data) / 1e6:.1f} MB, q{SOURCE_QUALITY}) -> "
          f"{', '.join(s.name for s in VARIANT_SPECS)}, progressive q{JPEG_QUALITY}; median of {args.iterations}")
    print("\n".join(report_pipelines(timings, sizes)))
    ours_cpu = timings["ours (Pillow), no filter"].cpu
    for name in ("libvips thumbnail_buffer per variant, 1 thr", "libvips cascade, 1 thread"):
        print(f"ours per core / {name} per core: {timings[name].cpu / ours_cpu:.2f}")
    print()
    print("\n".join(report_stages(profiles, args.iterations)))
    print()
    print(f"First resize {width}x{height} -> {fitted_size(SOURCE_SIZE, ORIGINAL.edge)}: filter, ms, PSNR vs Lanczos")
    for name, ms, db in kernel_table(data):
        print(f"  {name:<10} {ms:>6.0f} ms {db:>7.1f} dB")
    print(f"Encoding the {ORIGINAL.name} variant at q{JPEG_QUALITY}: mode, ms, bytes")
    for name, ms, size in encoding_table(data):
        print(f"  {name:<28} {ms:>6.1f} ms {size:>9,} B")
    print()
    print(f"Burst: {stall.uploads} concurrent uploads through ImageProcessor({stall.workers} workers): "
          f"{stall.elapsed_s:.2f} s, {stall.uploads / stall.elapsed_s:.1f} img/s, "
          f"longest event-loop stall {stall.longest_stall_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
