"""Uploaded bytes to stored JPEG variants and a preview: validation, colour, filter, resizes.

`process_image` runs in worker processes (app/media/processor.py): it is synchronous, takes and
returns picklable values, and its refusals are `AppError`s, which pickle with their code and
message, so the error middleware answers them like any other domain error.

The order of the work is chosen for speed (stage figures in docs/media.md):
  1. the header is checked (format, pixel count, size, frames) before any pixel is decoded;
  2. a JPEG is decoded at the smallest DCT scale (1/1, 1/2, 1/4, 1/8) still covering 2048 px;
  3. the decoded image is fitted to 2048 px first: colour conversion, rotation and the filter
     run on that, never on the full-size source;
  4. each smaller variant is resized from the smallest variant already made that covers it.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache

from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError, WebPImagePlugin

from app.errors import Invalid, TooLarge, UnsupportedMedia
from app.media.filters import Filter, find_filter
from app.media.preview import preview

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")  # Pillow's plugin ids; a JPEG with MPF data opens as "MPO"
MIN_EDGE = 32  # px: the shortest side accepted; below it there is no picture left to show
# Each progressive scan is a pass over every DCT block, so thousands of tiny scans make a small
# file cost seconds of CPU or more. Encoders write about 10; 100 leaves room for odd ones.
MAX_JPEG_SCANS = 100
JPEG_QUALITY = 82
DRAFT_SLACK = 0.95  # a DCT-scaled decode down to 95% of the original's edge is used as the original
# Bicubic rather than Lanczos: a third less time on the big first resize, at about 50 dB PSNR from
# Lanczos, which no eye tells apart (loadtest/media_benchmark.py measures both).
RESAMPLE = Image.Resampling.BICUBIC
# Resizes of 6x or more (large PNG and WebP sources; JPEGs shrink while decoding) start with a box
# reduce() by an integer factor, leaving at least 3x to resample, which Pillow documents as
# indistinguishable from a full resample in most cases.
REDUCING_GAP = 3.0
WHITE = (255, 255, 255)

# what Pillow's parsers and decoders raise for malformed data
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_SOURCE_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp"}
_UPRIGHT = {  # EXIF orientation -> the transpose that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
# In entropy-coded data 0xFF is always followed by 00 or a restart marker, so these two bytes only
# occur as a scan's marker or, rarely, inside metadata: counting them can only overestimate.
_START_OF_SCAN = b"\xff\xda"

StageTimer = Callable[[str], AbstractContextManager[object]]


class UnsupportedImage(UnsupportedMedia):
    """Not a still JPEG, PNG or WebP image (415)."""

    code = "unsupported_image"


class ImageTooLarge(TooLarge):
    """More pixels than the decoder may allocate (413)."""

    code = "image_too_large"


class InvalidImage(Invalid):
    """An accepted format that cannot be used: empty, corrupt, truncated or too small (422)."""

    code = "invalid_image"


@dataclass(frozen=True)
class VariantSpec:
    name: str
    edge: int  # the long edge at most; for a square, its side
    square: bool = False  # a centre square crop


VARIANT_SPECS = (
    VariantSpec("original", 2048),
    VariantSpec("large", 1080),
    VariantSpec("medium", 640),
    VariantSpec("thumbnail", 320, square=True),
)
ORIGINAL = VARIANT_SPECS[0]


@dataclass(frozen=True)
class Variant:
    name: str
    data: bytes
    width: int
    height: int
    content_type: str = "image/jpeg"


@dataclass(frozen=True)
class ProcessedImage:
    variants: dict[str, Variant]
    preview: str  # a BlurHash of the filtered image
    source_format: str  # "jpeg", "png" or "webp"
    source_width: int  # the upload's own size, upright
    source_height: int
    filter: str | None


def configure_worker(max_pixels: int) -> None:
    """Set Pillow's own decompression-bomb limit to ours, for the decoders' internal checks too."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def untimed(stage: str) -> AbstractContextManager[object]:
    """The default StageTimer: times nothing."""
    return nullcontext()


def process_image(data: bytes, filter_name: str | None, max_pixels: int, timer: StageTimer = untimed) -> ProcessedImage:
    """The variants and preview of an uploaded image; `timer(stage)` may time each stage."""
    photo_filter = find_filter(filter_name)  # an unknown name is refused before any decoding
    with timer("decode"):
        image = open_image(data, max_pixels)
        source_format, source_size = _SOURCE_FORMATS[image.format or ""], image.size
        decode(image)
    orientation = _orientation(image)
    images = _resize_cascade(_original(image, orientation, photo_filter, timer), timer)
    variants = {}
    for name, variant in images.items():
        with timer(f"encode {name}"):
            variants[name] = Variant(name, encode_jpeg(variant), *variant.size)
    with timer("preview"):
        blurred = preview(images["medium"])
    width, height = source_size[::-1] if orientation in _SWAPS_SIDES else source_size
    return ProcessedImage(variants, blurred, source_format, width, height, filter_name)


def header_pixels(data: bytes, max_pixels: int) -> int:
    """The pixels decoding the upload would produce (width x height, read from its header, nothing decoded),
    the charge of an upload (`charge_upload`, app/web.py); 0 for what the pool refuses from the header alone
    (not an image, or more than `max_pixels`). Cheap enough for the event loop: no pixel is touched."""
    try:
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            # Pillow's WebP plugin allocates the canvas when it opens a file: read the size from the bytes
            size = WebPImagePlugin._get_size(data[:30])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                size = Image.open(io.BytesIO(data), formats=("JPEG", "PNG")).size
    except Exception:  # whatever the header's fault, the pool refuses it without decoding
        return 0
    pixels = size[0] * size[1] if size else 0
    return pixels if pixels <= max_pixels else 0


def open_image(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """The image opened, not yet decoded, once its header passed every check."""
    if not data:
        raise InvalidImage("the image is empty", code="empty_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise UnsupportedImage("only JPEG, PNG and WebP images are accepted") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt() from exc
    _check_header(image, data, max_pixels)
    return image


def _check_header(image: ImageFile.ImageFile, data: bytes, max_pixels: int) -> None:
    """Refuse what the header already shows: too many or too few pixels, animation, a scan bomb."""
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(max_pixels, image.size)
    if min(width, height) < MIN_EDGE:
        raise InvalidImage(
            f"the image is {width}x{height} pixels; both sides must be at least {MIN_EDGE}", code="image_too_small"
        )
    # an MPO is a phone JPEG carrying extra images (depth map, preview): its first frame is the photo
    if image.format != "MPO" and getattr(image, "n_frames", 1) > 1:
        raise UnsupportedImage("animated images are not accepted; upload a still image", code="animated_image")
    if image.format in ("JPEG", "MPO") and data.count(_START_OF_SCAN) > MAX_JPEG_SCANS:
        raise InvalidImage(f"the JPEG has more than {MAX_JPEG_SCANS} scans", code="too_many_scans")


def decode(image: ImageFile.ImageFile) -> None:
    """Decode the pixels; a JPEG at the smallest DCT scale that still covers the original variant.

    "Covers" allows DRAFT_SLACK: a 4032 px phone photo decodes at half scale to 2016 px and
    becomes the original as it is, instead of being decoded whole and resized to 2048. The
    original's long edge is "at most 2048"; a 1.6% smaller one saves two thirds of the work.
    """
    image.draft(None, fitted_size(image.size, int(ORIGINAL.edge * DRAFT_SLACK)))  # JPEG only
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise _corrupt() from exc


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8), 1 when there is none or it makes no sense."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if isinstance(orientation, int) and orientation in _UPRIGHT else 1


def _original(image: Image.Image, orientation: int, photo_filter: Filter | None, timer: StageTimer) -> Image.Image:
    """The original variant of the decoded image: fitted to its edge, sRGB, upright, filtered, without metadata.

    Fitting comes first, so the other steps work on at most 2048 px instead of the full source.
    """
    icc_profile = image.info.get("icc_profile")
    with timer("convert"):
        image = _flatten(image)
        image.info = {}  # derived images copy `info`, and the JPEG encoder writes its comment: no metadata leaks
    with timer("resize original"):
        image = _fit(image, ORIGINAL.edge)
    with timer("convert"):
        image = _to_srgb(image, icc_profile)
    with timer("orient"):
        image = _upright(image, orientation)
    if photo_filter is None:
        return image
    with timer("filter"):
        return photo_filter.apply(image)


def _flatten(image: Image.Image) -> Image.Image:
    """The image as RGB, L or CMYK: transparency composited on white, palettes expanded, 16 bits scaled to 8."""
    if image.mode.startswith("I"):  # 16-bit greyscale: convert("L") would clip, not scale
        return image.convert("I").point(lambda v: v / 257).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", image.size, WHITE)
        flat.paste(rgba, mask=rgba)  # an RGBA mask means its alpha band
        return flat
    if image.mode in ("RGB", "L", "CMYK"):
        return image
    return image.convert("RGB")


def _fit(image: Image.Image, edge: int) -> Image.Image:
    size = fitted_size(image.size, edge)
    if size == image.size:
        return image
    return image.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """The image in sRGB RGB, through its ICC profile when it has a usable one that is not sRGB already."""
    transform = _transform_to_srgb(icc_profile, image.mode) if icc_profile else None
    if transform is not None:
        return ImageCms.applyTransform(image, transform)
    return image if image.mode == "RGB" else image.convert("RGB")


@lru_cache(maxsize=8)  # a phone model embeds the same profile in every photo
def _transform_to_srgb(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if "srgb" in profile.profile.profile_description.lower():
            return None  # converting sRGB to sRGB would only cost time
        return ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), mode, "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile is ignored, as browsers do, rather than refusing the photo


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def _resize_cascade(original: Image.Image, timer: StageTimer) -> dict[str, Image.Image]:
    """Every variant, each resized from the smallest one already made that covers it."""
    images = {ORIGINAL.name: original}
    for spec in VARIANT_SPECS[1:]:
        source = _smallest_covering(list(images.values()), spec)
        with timer(f"resize {spec.name}"):
            images[spec.name] = _square(source, spec.edge) if spec.square else _fit(source, spec.edge)
    return images


def _smallest_covering(made: list[Image.Image], spec: VariantSpec) -> Image.Image:
    """The last (smallest) of `made` large enough for `spec`; the first (largest) when none is."""
    covering = [image for image in made if (min(image.size) if spec.square else max(image.size)) >= spec.edge]
    return covering[-1] if covering else made[0]


def _square(image: Image.Image, edge: int) -> Image.Image:
    """The centre square, `edge` px a side or the short side when that is smaller."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side <= edge:
        return image.crop(box)
    return image.resize((edge, edge), RESAMPLE, box=box, reducing_gap=REDUCING_GAP)


def encode_jpeg(image: Image.Image) -> bytes:
    """A progressive JPEG (4:2:0, optimised Huffman tables, which progressive mode implies), no metadata."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, progressive=True)
    return buffer.getvalue()


def fitted_size(size: tuple[int, int], edge: int) -> tuple[int, int]:
    """`size` scaled down so its long edge is at most `edge`, aspect ratio kept; never scaled up."""
    width, height = size
    scale = edge / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _too_large(max_pixels: int, size: tuple[int, int] | None = None) -> ImageTooLarge:
    found = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "more pixels than allowed"
    return ImageTooLarge(f"the image has {found}; the limit is {max_pixels:,} pixels")


def _corrupt() -> InvalidImage:
    return InvalidImage("the image could not be decoded: it is truncated or corrupt", code="corrupt_image")
