"""Images made on the fly: good photos in every accepted form, and every kind of upload to refuse.

Here, in the installed `loadtest` package, because the benchmarks need them (the media benchmark's
4000x3000 photo, the small upload of the feed and write benchmarks) and the tests need the same ones;
tests import them from here. Not in app/media/, which only ever reads images: a PNG bomb has no place
in the code the API runs.

Accepted: `make_jpeg` (EXIF orientation, GPS and other metadata, CMYK, ICC profile options),
`make_mpo` (a phone JPEG with a second image), `make_png` (any mode, with transparency),
`make_webp`, `striped_jpeg` (a quick upload with some structure). Refused: `make_gif`, animated
`make_png`/`make_webp`, `png_bomb` (30000x30000 in about 100 KB), `truncated_jpeg`,
`jpeg_with_scan_markers`, `HEIC_HEADER`, `TEXT_FILE`, b"". Profiles to embed: `srgb_icc`,
`display_p3_icc`, `swapped_primaries_icc` (which shows whether a profile was honoured).

`photo_like` draws the content: smooth colour fields, hard-edged detail and grain, so the
encoders and resamplers have the work a real photo gives them.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFilter, ImageOps

MARKER = (255, 0, 0)  # the colour `corner_marker` paints in the stored top-left corner
GREY = (128, 128, 128)
TEXT_FILE = b"name,caption\nalice,hello world\n"
# the start of an HEIC file (an ISO-BMFF `ftyp` box), the format iPhones store photos in
HEIC_HEADER = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
# sRGB's red, green and blue colorants, adapted to the D50 white of the ICC connection space
SRGB_COLORANTS = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
# Display P3's, as Apple's profile carries them
DISPLAY_P3_COLORANTS = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
D50 = (0.9642, 1.0, 0.8249)


def photo_like(width: int, height: int) -> Image.Image:
    """An RGB picture with a photo's mix of smooth areas, sharp edges and grain."""
    fields = Image.merge("RGB", [_smooth_field(width, height) for _ in range(3)])
    fractal = Image.effect_mandelbrot((width // 2, height // 2), (-0.79, 0.13, -0.73, 0.175), 60)
    detail = fractal.resize((width, height), Image.Resampling.BILINEAR)
    tinted = Image.merge("RGB", (detail, detail.point(lambda v: v * 3 // 4), ImageChops.invert(detail)))
    grain = Image.effect_noise((width, height), 6)
    return ImageChops.add(Image.blend(fields, tinted, 0.4), Image.merge("RGB", (grain, grain, grain)), offset=-128)


def _smooth_field(width: int, height: int) -> Image.Image:
    """Blotches of light and dark a sixteenth of the image across, as skies, skin and foliage give."""
    noise = Image.effect_noise((max(1, width // 16), max(1, height // 16)), 100)
    blotches = ImageOps.autocontrast(noise.filter(ImageFilter.GaussianBlur(3)))
    return blotches.resize((width, height), Image.Resampling.BICUBIC)


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def make_jpeg(
    width: int = 800,
    height: int = 600,
    *,
    colour: tuple[int, int, int] | None = None,
    corner_marker: bool = False,
    exif_orientation: int | None = None,
    gps: bool = False,
    cmyk: bool = False,
    icc: bytes | None = None,
    quality: int = 90,
) -> bytes:
    """A JPEG of `photo_like` content, or of one flat `colour`.

    corner_marker: a MARKER square in the stored top-left corner (where it shows depends on the
    orientation). gps: EXIF with a GPS position, plus an XMP packet and a comment, as phones write.
    cmyk: stored as CMYK, inverted with an Adobe marker as Photoshop writes it. icc: embedded profile.
    """
    image = photo_like(width, height) if colour is None else Image.new("RGB", (width, height), colour)
    if corner_marker:
        side = min(width, height) // 4
        image.paste(MARKER, (0, 0, side, side))
    params: dict[str, object] = {"quality": quality}
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[ExifTags.Base.Orientation] = exif_orientation
    if gps:
        exif[ExifTags.Base.Make] = "Phone"
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (38.0, 42.0, 43.0),
            ExifTags.GPS.GPSLongitudeRef: "W",
            ExifTags.GPS.GPSLongitude: (9.0, 8.0, 21.0),
        }
        params["xmp"] = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>38,42.7N</exif:GPSLatitude></x:xmpmeta>'
        params["comment"] = b"shot at home"
    if len(exif):
        params["exif"] = exif
    if icc is not None:
        params["icc_profile"] = icc
    return encode(image.convert("CMYK") if cmyk else image, "JPEG", **params)


def striped_jpeg(width: int = 1600, height: int = 1200, colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A quick JPEG upload: one `colour` crossed by a stripe every 50 pixels, so its variants differ
    from a flat colour; far cheaper to make than `make_jpeg`'s photo-like content."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(0, width, 50):
        image.paste((x % 255, 80, 160), (x, 0, x + 10, height))
    return encode(image, "JPEG", quality=90)


def make_mpo(width: int = 800, height: int = 600, colour: tuple[int, int, int] = GREY) -> bytes:
    """A phone-style JPEG that also carries a second, smaller image (MPF), as depth maps are stored."""
    primary = Image.new("RGB", (width, height), colour)
    secondary = Image.new("RGB", (width // 4, height // 4), (0, 0, 255))
    return encode(primary, "MPO", save_all=True, append_images=[secondary])


def make_png(
    width: int = 800,
    height: int = 600,
    mode: str = "RGB",
    *,
    colour: tuple[int, int, int] = (200, 120, 40),
    transparent_left: bool = False,
    animated: bool = False,
) -> bytes:
    """A PNG of one flat `colour` in `mode` ("RGB", "RGBA", "L", "LA", "P", "1", "I;16" for 16-bit grey).

    transparent_left: the left half fully transparent (alpha 0, or the palette's tRNS entry for "P").
    animated: an APNG of two frames.
    """
    if mode == "I;16":
        luma = Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))
        return encode(Image.new("I;16", (width, height), luma * 257), "PNG")
    image = Image.new("RGB", (width, height), colour)
    if mode == "P" and transparent_left:
        return _png_with_transparent_index(image)
    image = image.convert(mode)
    if transparent_left and "A" in mode:
        alpha = Image.new("L", (width, height), 255)
        alpha.paste(0, (0, 0, width // 2, height))
        image.putalpha(alpha)
    if animated:
        return encode(image, "PNG", save_all=True, append_images=[ImageOps.invert(image.convert("RGB"))])
    return encode(image, "PNG")


def _png_with_transparent_index(image: Image.Image) -> bytes:
    width, height = image.size
    palette_image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    palette_image.paste(1, (0, 0, width // 2, height))
    palette = palette_image.getpalette() or []
    palette[3:6] = [0, 0, 0]  # index 1: black, but transparent, so it must come out white
    palette_image.putpalette(palette)
    return encode(palette_image, "PNG", transparency=1)


def make_webp(
    width: int = 800, height: int = 600, *, colour: tuple[int, int, int] = (200, 120, 40), animated: bool = False
) -> bytes:
    """A lossy WebP of one flat `colour`; animated: two frames."""
    image = Image.new("RGB", (width, height), colour)
    if animated:
        return encode(image, "WEBP", save_all=True, append_images=[ImageOps.invert(image)])
    return encode(image, "WEBP", quality=90)


def make_gif(width: int = 320, height: int = 240, *, animated: bool = True) -> bytes:
    """A GIF, by default of two frames."""
    first = Image.new("RGB", (width, height), (200, 120, 40))
    if animated:
        return encode(first, "GIF", save_all=True, append_images=[ImageOps.invert(first)], duration=100, loop=0)
    return encode(first, "GIF")


def truncated_jpeg(width: int = 800, height: int = 600) -> bytes:
    """The first half of a valid JPEG, as an interrupted upload leaves it."""
    data = make_jpeg(width, height)
    return data[: len(data) // 2]


def jpeg_with_scan_markers(count: int, width: int = 64, height: int = 64) -> bytes:
    """A JPEG whose bytes hold `count` start-of-scan markers, as a scan bomb's do (in an APP15 segment)."""
    data = make_jpeg(width, height, colour=GREY)
    payload = b"\xff\xda" * count
    app15 = b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app15 + data[2:]  # right after the start-of-image marker


@lru_cache
def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A 1-bit greyscale PNG of width x height black pixels that compresses to about 100 KB.

    Written chunk by chunk here: Pillow would have to allocate the whole image to save it.
    """
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed black pixels
    rows_per_block = 1024
    compressor = zlib.compressobj(9)
    compressed = []
    for first in range(0, height, rows_per_block):
        compressed.append(compressor.compress(row * min(rows_per_block, height - first)))
    compressed.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(compressed))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def srgb_icc() -> bytes:
    """Pillow's built-in sRGB profile."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def swapped_primaries_icc() -> bytes:
    """An RGB profile whose red and green primaries are sRGB's green and red.

    A pixel (255, 0, 0) tagged with it is pure green: a pipeline that honours the profile turns
    it green, one that ignores it leaves it red.
    """
    red, green, blue = SRGB_COLORANTS
    return matrix_icc("channels swapped test profile", red=green, green=red, blue=blue, gamma=2.2)


def display_p3_icc() -> bytes:
    """The wide-gamut profile iPhones tag their photos with (its tone curve simplified to gamma 2.2)."""
    return matrix_icc("Display P3 test profile", *DISPLAY_P3_COLORANTS, gamma=2.2)


def matrix_icc(
    description: str,
    red: tuple[float, float, float],
    green: tuple[float, float, float],
    blue: tuple[float, float, float],
    gamma: float,
) -> bytes:
    """A minimal ICC v2 RGB display profile: D50 colorants and one gamma curve for every channel."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    ascii_text = description.encode("ascii") + b"\x00"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(red)),
        (b"gXYZ", _xyz_tag(green)),
        (b"bXYZ", _xyz_tag(blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        padded = data + bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
        + bytes(12)  # creation date
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15f16(D50)
        + bytes(48)  # creator, profile id, reserved
    )
    return header + struct.pack(">I", len(tags)) + table + body


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + _s15f16(xyz)


def _s15f16(values: tuple[float, ...]) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)
