"""The image pipeline: what it refuses and why, what it makes of what it accepts, and its process pool."""

import asyncio
import io
import os
import pickle
import resource
import time

import pytest
from PIL import Image, ImageStat

from app.media.filters import UnknownFilter
from app.media.preview import LONG_COMPONENTS, SHORT_COMPONENTS
from app.media.processing import (
    DRAFT_SLACK,
    MAX_JPEG_SCANS,
    MIN_EDGE,
    ImageTooLarge,
    InvalidImage,
    ProcessedImage,
    UnsupportedImage,
    header_pixels,
    process_image,
)
from app.media.processor import ImageProcessor, ProcessorBusy, ProcessorRestarted
from loadtest.images import (
    GREY,
    HEIC_HEADER,
    MARKER,
    TEXT_FILE,
    jpeg_with_scan_markers,
    make_gif,
    make_jpeg,
    make_mpo,
    make_png,
    make_webp,
    png_bomb,
    srgb_icc,
    swapped_primaries_icc,
    truncated_jpeg,
)

MAX_PIXELS = 50_000_000
ORANGE = (200, 120, 40)
BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def process(data: bytes, filter_name: str | None = None) -> ProcessedImage:
    return process_image(data, filter_name, MAX_PIXELS)


def opened(processed: ProcessedImage, variant: str) -> Image.Image:
    image = Image.open(io.BytesIO(processed.variants[variant].data))
    image.load()
    return image


def close_to(found: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(f - e) <= tolerance for f, e in zip(found, expected, strict=True))


def mean_colour(image: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image).mean)


# --- refusals --------------------------------------------------------------------


def test_zero_bytes_are_refused_as_an_empty_image():
    with pytest.raises(InvalidImage) as refused:
        process(b"")
    assert (refused.value.status, refused.value.code) == (422, "empty_image")


def test_a_truncated_jpeg_is_refused_as_corrupt():
    with pytest.raises(InvalidImage) as refused:
        process(truncated_jpeg())
    assert (refused.value.status, refused.value.code) == (422, "corrupt_image")


def test_a_text_file_is_refused_as_unsupported_whatever_its_name():
    with pytest.raises(UnsupportedImage) as refused:
        process(TEXT_FILE)
    assert (refused.value.status, refused.value.code) == (415, "unsupported_image")
    assert "JPEG, PNG and WebP" in refused.value.message


def test_an_heic_photo_is_refused_as_unsupported():
    with pytest.raises(UnsupportedImage):
        process(HEIC_HEADER)


def test_a_still_gif_is_refused_as_unsupported():
    with pytest.raises(UnsupportedImage) as refused:
        process(make_gif(animated=False))
    assert refused.value.code == "unsupported_image"


def test_an_animated_gif_is_refused_as_unsupported():
    with pytest.raises(UnsupportedImage):
        process(make_gif(animated=True))


@pytest.mark.parametrize("animated", [make_png, make_webp], ids=["apng", "webp"])
def test_an_animated_png_or_webp_is_refused_as_animated(animated):
    with pytest.raises(UnsupportedImage) as refused:
        process(animated(animated=True))
    assert (refused.value.status, refused.value.code) == (415, "animated_image")


def test_a_1x1_image_is_refused_with_the_minimum_size_in_the_message():
    with pytest.raises(InvalidImage) as refused:
        process(make_png(1, 1))
    assert (refused.value.status, refused.value.code) == (422, "image_too_small")
    assert "1x1" in refused.value.message and str(MIN_EDGE) in refused.value.message


def test_an_image_with_one_side_under_the_minimum_is_refused():
    with pytest.raises(InvalidImage):
        process(make_png(2000, MIN_EDGE - 1))


def test_a_30000x30000_png_bomb_is_refused_from_its_header_fast_and_without_allocating_it():
    bomb = png_bomb()
    assert len(bomb) < 1_000_000
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as refused:
        process(bomb)
    assert time.perf_counter() - started < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 50 * 1024  # decoded: 900 MB
    assert (refused.value.status, refused.value.code) == (413, "image_too_large")


def test_an_image_over_the_configured_pixel_limit_is_refused_with_its_size():
    with pytest.raises(ImageTooLarge) as refused:
        process_image(make_png(200, 100), None, max_pixels=10_000)
    assert "200x100" in refused.value.message


def test_a_jpeg_with_more_scans_than_the_limit_is_refused_before_decoding():
    process(jpeg_with_scan_markers(MAX_JPEG_SCANS - 5))
    with pytest.raises(InvalidImage) as refused:
        process(jpeg_with_scan_markers(MAX_JPEG_SCANS + 1))
    assert refused.value.code == "too_many_scans"


def test_an_unknown_filter_is_refused_before_the_image_is_read():
    with pytest.raises(UnknownFilter) as refused:
        process(TEXT_FILE, "sepia-deluxe")
    assert (refused.value.status, refused.value.code) == (422, "unknown_filter")


@pytest.mark.parametrize(
    "refusal",
    [
        UnsupportedImage("animated images are not accepted", code="animated_image"),
        ImageTooLarge("the image has too many pixels"),
        InvalidImage("the image is truncated", code="corrupt_image"),
        UnknownFilter("unknown filter 'x'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_refusals_cross_a_process_boundary_with_their_status_code_and_message(refusal):
    copy = pickle.loads(pickle.dumps(refusal))
    assert type(copy) is type(refusal)
    assert (copy.status, copy.code, copy.message) == (refusal.status, refusal.code, refusal.message)


# --- colour, orientation, metadata ----------------------------------------------


def test_a_cmyk_jpeg_with_adobe_inverted_samples_comes_out_in_its_colours():
    data = make_jpeg(64, 64, colour=(255, 0, 0), cmyk=True)
    source = Image.open(io.BytesIO(data))
    assert (source.mode, "adobe" in source.info) == ("CMYK", True)
    assert close_to(opened(process(data), "original").getpixel((32, 32)), (255, 0, 0))


@pytest.mark.parametrize(
    ("orientation", "size", "marker_corner"),
    [(3, (400, 300), "bottom-right"), (6, (300, 400), "top-right"), (8, (300, 400), "bottom-left")],
)
def test_an_exif_rotated_jpeg_comes_out_upright(orientation, size, marker_corner):
    processed = process(make_jpeg(400, 300, colour=GREY, corner_marker=True, exif_orientation=orientation))
    original = opened(processed, "original")
    assert original.size == size == (processed.source_width, processed.source_height)
    width, height = size
    corners = {
        "top-left": (5, 5),
        "top-right": (width - 5, 5),
        "bottom-left": (5, height - 5),
        "bottom-right": (width - 5, height - 5),
    }
    for corner, xy in corners.items():
        assert close_to(original.getpixel(xy), MARKER if corner == marker_corner else GREY, 20), corner


def test_gps_exif_xmp_and_comments_are_stripped_from_every_variant():
    data = make_jpeg(gps=True)
    assert {"exif", "xmp", "comment"} <= set(Image.open(io.BytesIO(data)).info)
    processed = process(data)
    for name in processed.variants:
        variant = opened(processed, name)
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(variant.info), name
        assert not variant.getexif(), name


def test_an_embedded_icc_profile_is_honoured_and_not_embedded_in_the_outputs():
    processed = process(make_jpeg(64, 64, colour=(255, 0, 0), icc=swapped_primaries_icc()))
    original = opened(processed, "original")
    assert close_to(original.getpixel((32, 32)), (0, 255, 0))  # the profile's red primary is sRGB green
    assert "icc_profile" not in original.info


def test_an_srgb_profile_leaves_the_colours_as_they_are():
    tagged = opened(process(make_jpeg(64, 64, colour=ORANGE, icc=srgb_icc())), "original")
    assert close_to(tagged.getpixel((32, 32)), ORANGE)


def test_a_16_bit_greyscale_png_is_scaled_to_8_bits_not_clipped():
    original = opened(process(make_png(mode="I;16", colour=GREY)), "original")
    assert (original.mode, *original.getpixel((10, 10))) == ("RGB", *GREY)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(mode):
    original = opened(process(make_png(800, 600, mode, colour=ORANGE, transparent_left=True)), "original")
    opaque = ORANGE if mode != "LA" else (135, 135, 135)  # LA keeps only the orange's grey
    assert original.mode == "RGB"
    assert close_to(original.getpixel((100, 300)), (255, 255, 255))
    assert close_to(original.getpixel((700, 300)), opaque)


def test_a_greyscale_png_comes_out_as_grey_rgb():
    original = opened(process(make_png(mode="L", colour=GREY)), "original")
    assert (original.mode, original.getpixel((10, 10))) == ("RGB", GREY)


def test_a_webp_is_accepted():
    processed = process(make_webp(colour=ORANGE))
    assert processed.source_format == "webp"
    assert close_to(opened(processed, "medium").getpixel((10, 10)), ORANGE)


def test_a_phone_jpeg_carrying_a_second_image_is_processed_as_its_primary_image():
    processed = process(make_mpo(800, 600))
    assert (processed.source_format, processed.source_width, processed.source_height) == ("jpeg", 800, 600)
    assert close_to(opened(processed, "original").getpixel((10, 10)), GREY)


# --- variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(4000, 3000), (3000, 4000), (1600, 1200), (900, 700), (500, 400), (100, 80), (6000, 300)]
)
def test_each_variant_is_within_its_bounds_keeps_the_aspect_ratio_and_is_never_upscaled(size):
    processed = process(make_png(*size, colour=ORANGE) if min(size) < 500 else make_jpeg(*size, colour=ORANGE))
    width, height = size
    for name, edge in (("original", 2048), ("large", 1080), ("medium", 640)):
        variant = processed.variants[name]
        bound = min(edge, max(size))
        # a JPEG original may stop at a DCT-scaled decode slightly under its bound
        slack = DRAFT_SLACK if name == "original" else 1.0
        assert bound * slack <= max(variant.width, variant.height) <= bound, name
        # the short side is the exact scaled length, rounded: within a pixel
        assert abs(variant.width * height - variant.height * width) <= max(width, height), name
    original, thumbnail = processed.variants["original"], processed.variants["thumbnail"]
    assert thumbnail.width == thumbnail.height == min(320, original.width, original.height)


def test_every_variant_is_a_progressive_jpeg():
    processed = process(make_jpeg(1600, 1200))
    for name, variant in processed.variants.items():
        image = opened(processed, name)
        assert (image.format, image.info.get("progressive"), variant.content_type) == ("JPEG", 1, "image/jpeg")


def test_a_filter_gives_every_variant_the_same_look():
    plain, filtered = process(make_jpeg(1600, 1200)), process(make_jpeg(1600, 1200), "nashville")
    assert filtered.filter == "nashville"
    original = opened(filtered, "original")
    side = min(original.size)
    centre = original.crop(((original.width - side) // 2, 0, (original.width + side) // 2, side))
    assert close_to(mean_colour(opened(filtered, "thumbnail")), mean_colour(centre), 2)
    for name in ("large", "medium"):
        assert close_to(mean_colour(opened(filtered, name)), mean_colour(original), 2), name
        assert not close_to(mean_colour(opened(filtered, name)), mean_colour(opened(plain, name)), 5), name


def test_the_source_facts_are_reported():
    processed = process(make_png(900, 700))
    assert (processed.source_format, processed.source_width, processed.source_height) == ("png", 900, 700)
    assert processed.filter is None


# --- preview ------------------------------------------------------------------------


def base83(text: str) -> int:
    value = 0
    for char in text:
        value = value * 83 + BASE83.index(char)
    return value


@pytest.mark.parametrize(("size", "components"), [((800, 600), (4, 3)), ((600, 800), (3, 4))])
def test_the_preview_is_a_blurhash_of_the_image_colours(size, components):
    preview = process(make_jpeg(*size, colour=ORANGE)).preview
    x_components, y_components = components
    assert {x_components, y_components} == {LONG_COMPONENTS, SHORT_COMPONENTS}
    assert len(preview) == 4 + 2 * x_components * y_components
    assert base83(preview[0]) == (x_components - 1) + (y_components - 1) * 9
    dc = base83(preview[2:6])
    assert close_to((dc >> 16, (dc >> 8) & 255, dc & 255), ORANGE, 3)


# --- the process pool ---------------------------------------------------------------


@pytest.fixture(scope="module")
def processor():
    pool = ImageProcessor(workers=2, max_pixels=MAX_PIXELS)
    yield pool
    pool.close()


async def test_the_worker_processes_return_variants_and_refusals_intact(processor):
    processed = await processor.process(make_jpeg(1600, 1200), "clarendon")
    assert (processed.variants["large"].width, processed.filter) == (1080, "clarendon")
    with pytest.raises(InvalidImage) as refused:
        await processor.process(truncated_jpeg(), None)
    assert refused.value.code == "corrupt_image"


async def test_the_event_loop_keeps_ticking_during_a_burst_of_processing(processor):
    photo = make_jpeg(3000, 2000)
    started = time.perf_counter()
    process(photo)
    one_image_s = time.perf_counter() - started
    gaps, done = [], asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            gaps.append(time.perf_counter() - last)
            last = time.perf_counter()

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(processor.process(photo, None) for _ in range(6)))
    done.set()
    await ticking
    assert max(gaps) < one_image_s / 2, (max(gaps), one_image_s)


async def test_a_full_queue_refuses_at_once_with_busy():
    small = ImageProcessor(workers=1, max_pixels=MAX_PIXELS, max_waiting=1)
    try:
        accepted = [asyncio.create_task(small.process(make_jpeg(1600, 1200), None)) for _ in range(2)]
        await asyncio.sleep(0)  # both are now running or queued
        with pytest.raises(ProcessorBusy) as refused:
            await small.process(make_jpeg(64, 64), None)
        assert (refused.value.status, refused.value.code) == (503, "image_processor_busy")
        assert "Retry-After" in refused.value.headers
        await asyncio.gather(*accepted)
    finally:
        small.close()


def die(data: bytes, filter_name: str | None, max_pixels: int) -> None:
    """Stands in for process_image: the worker dies, as the kernel's OOM killer would make it."""
    os._exit(1)


async def test_a_worker_that_dies_is_replaced_and_its_job_answers_retry(monkeypatch):
    pool = ImageProcessor(workers=1, max_pixels=MAX_PIXELS)
    try:
        with monkeypatch.context() as patch:
            patch.setattr("app.media.processor.process_image", die)
            with pytest.raises(ProcessorRestarted):
                await pool.process(make_jpeg(64, 64), None)
        processed = await pool.process(make_jpeg(64, 64), None)
        assert processed.variants["original"].width == 64
    finally:
        pool.close()


@pytest.mark.parametrize("data", [make_jpeg(800, 600), make_png(800, 600), make_webp(800, 600), make_mpo(800, 600)],
                         ids=["jpeg", "png", "webp", "mpo"])
def test_header_pixels_are_width_times_height_read_without_decoding(data):
    assert header_pixels(data, 50_000_000) == 800 * 600


def test_what_the_header_alone_refuses_costs_nothing():
    assert header_pixels(png_bomb(), 50_000_000) == 0  # 900 M pixels: refused from the header
    assert header_pixels(TEXT_FILE, 50_000_000) == 0
    assert header_pixels(make_jpeg(800, 600), 100_000) == 0
