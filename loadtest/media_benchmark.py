"""The media pipeline's speed on this machine, measured against libvips doing the same work.

    .venv/bin/python -m loadtest.media_benchmark [--iterations 15] [--burst 16] [--workers 0]

One run (about a minute) makes 12 MP photo-like JPEGs and measures:
  (a) our four variants per image on one core, with the time of each stage, for a plain JPEG,
      a phone-like one (Display P3 profile, EXIF orientation 6) and the plain one with a filter;
  (b) libvips making the same four progressive JPEGs from the plain JPEG, two ways:
      `thumbnail_buffer` per variant (shrink-on-load, so one decode per variant) and a cascade
      (one decode, each variant from the previous one); on one thread for the per-core
      comparison, and on its default threads;
  (c) the longest event-loop stall while a burst of uploads goes through ImageProcessor.
Figures are CPU time per image (every thread of the process): the best of the iterations, which
other work on a shared machine can only make worse, and the median. The pipelines take turns, in
a new order each round, so that such drift hits them alike. It also measures the two
choices the pipeline rests on: the resampling filter of the big first resize (time, and PSNR
against Lanczos) and progressive against baseline JPEG encoding.

libvips comes with the `bench` extra: `pip install -e .[bench]`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import random
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
from loadtest.images import display_p3_icc, encode, make_jpeg

T = TypeVar("T")

SOURCE_SIZE = (4000, 3000)
SOURCE_QUALITY = 90  # what a phone camera writes
TICK_S = 0.001  # the stall ticker's sleep
KERNELS = ("LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX")
OURS = "ours: plain JPEG"
VIPS_PER_VARIANT = "libvips thumbnail_buffer per variant, 1 thread"
VIPS_CASCADE = "libvips cascade, 1 thread"


@dataclass
class Timing:
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu_ms)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_ms)

    @property
    def median_wall(self) -> float:
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


def vips_per_variant(data: bytes, threads: int, original_edge: int) -> list[tuple[int, int]]:
    """`original_edge` is the long edge our original came out at, so both sides make the same sizes."""
    pyvips.concurrency_set(threads)
    sizes = []
    for spec in VARIANT_SPECS:
        crop = "centre" if spec.square else "none"
        edge = original_edge if spec is ORIGINAL else spec.edge
        image = pyvips.Image.thumbnail_buffer(data, edge, height=edge, size="down", crop=crop)
        _vips_jpeg(image)
        sizes.append((image.width, image.height))
    return sizes


def vips_cascade(data: bytes, threads: int, original_edge: int) -> list[tuple[int, int]]:
    pyvips.concurrency_set(threads)
    sizes = []
    image = pyvips.Image.thumbnail_buffer(data, original_edge, height=original_edge, size="down")
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
    """Each pipeline once per round, in a new order each round, so no pipeline always runs after the same one."""
    timings = {name: Timing() for name in pipelines}
    order, shuffler = list(pipelines), random.Random(0)
    for _ in range(iterations):
        shuffler.shuffle(order)
        for name in order:
            cpu, wall = time.process_time(), time.perf_counter()
            pipelines[name]()
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
    lines = [
        f"{'ms per image':<48} {'CPU best':>8} {'CPU median':>10} {'wall median':>11} {'img/s/core':>10}   variants"
    ]
    for name, t in timings.items():
        dims = " ".join(f"{w}x{h}" for w, h in sizes[name])
        lines.append(
            f"{name:<48} {t.best_cpu:>8.0f} {t.median_cpu:>10.0f} {t.median_wall:>11.0f} "
            f"{1000 / t.best_cpu:>10.2f}   {dims}"
        )
    lines.append("ours per core / libvips per core (its best CPU time over ours; above 1, ours is faster):")
    for name in (VIPS_PER_VARIANT, VIPS_CASCADE):
        lines.append(f"  vs {name}: {timings[name].best_cpu / timings[OURS].best_cpu:.2f}")
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


def report_choices(plain: bytes) -> list[str]:
    size = fitted_size(SOURCE_SIZE, ORIGINAL.edge)
    lines = [f"First resize {SOURCE_SIZE} -> {size}: filter, time, PSNR against Lanczos"]
    lines += [f"  {name:<10} {ms:>6.0f} ms {db:>7.1f} dB" for name, ms, db in kernel_table(plain)]
    lines.append(f"Encoding the {ORIGINAL.name} variant at q{JPEG_QUALITY}: mode, time, size")
    lines += [f"  {name:<28} {ms:>6.1f} ms {size:>9,} B" for name, ms, size in encoding_table(plain)]
    return lines


def comparison(
    plain: bytes, phone: bytes, max_pixels: int, profiles: dict[str, StageProfile]
) -> dict[str, Callable[[], list[tuple[int, int]]]]:
    threads = pyvips.concurrency_get()  # libvips' default: one per core
    # libvips makes the variants at the sizes ours come out at (the original may stop at a DCT-scaled
    # decode under 2048 px, which libvips' shrink-on-load can use just the same)
    edge = max(ours(plain, None, max_pixels, StageProfile())[0])
    return {
        OURS: lambda: ours(plain, None, max_pixels, profiles["plain"]),
        "ours: phone-like JPEG (P3 profile, rotated)": lambda: ours(phone, None, max_pixels, profiles["phone-like"]),
        "ours: plain JPEG, clarendon filter": lambda: ours(plain, "clarendon", max_pixels, profiles["clarendon"]),
        VIPS_PER_VARIANT: lambda: vips_per_variant(plain, 1, edge),
        VIPS_CASCADE: lambda: vips_cascade(plain, 1, edge),
        f"libvips thumbnail_buffer per variant, {threads} thr": lambda: vips_per_variant(plain, threads, edge),
        f"libvips cascade, {threads} threads": lambda: vips_cascade(plain, threads, edge),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=15, help="images per pipeline")
    parser.add_argument("--burst", type=int, default=16, help="concurrent uploads in the stall test")
    parser.add_argument("--workers", type=int, default=0, help="ImageProcessor workers in the stall test (0: cores)")
    args = parser.parse_args(argv)

    max_pixels = Settings.from_env().max_image_pixels
    plain = make_jpeg(*SOURCE_SIZE, quality=SOURCE_QUALITY)
    phone = make_jpeg(*SOURCE_SIZE, quality=SOURCE_QUALITY, exif_orientation=6, icc=display_p3_icc())
    pyvips.cache_set_max(0)  # every call decodes and resizes for real, none is answered from the cache
    profiles = {"plain": StageProfile(), "phone-like": StageProfile(), "clarendon": StageProfile()}
    pipelines = comparison(plain, phone, max_pixels, profiles)
    sizes = {name: run() for name, run in pipelines.items()}  # a warm-up round, and the variants' sizes
    for profile in profiles.values():
        profile.totals_s.clear()
    timings = take_turns(pipelines, args.iterations)
    stall = asyncio.run(burst(plain, args.burst, args.workers, max_pixels))

    print(
        f"Media pipeline: {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} photo-like JPEG ({len(plain) / 1e6:.1f} MB, "
        f"q{SOURCE_QUALITY}) -> {', '.join(s.name for s in VARIANT_SPECS)} as progressive q{JPEG_QUALITY} JPEGs; "
        f"{args.iterations} rounds"
    )
    for lines in (report_pipelines(timings, sizes), report_stages(profiles, args.iterations), report_choices(plain)):
        print("\n".join(lines), end="\n\n")
    print(
        f"Burst: {stall.uploads} concurrent uploads through ImageProcessor({stall.workers} workers): "
        f"{stall.elapsed_s:.2f} s, {stall.uploads / stall.elapsed_s:.1f} img/s, "
        f"longest event-loop stall {stall.longest_stall_ms:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
