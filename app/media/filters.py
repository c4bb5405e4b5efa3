"""The photo filters: named colour operations, each at most two passes of Pillow's C code.

A filter is
  1. an optional colour matrix (`Image.convert("RGB", matrix)`): saturation and greyscale,
     the operations that mix channels; then
  2. optional tone curves, one per channel, baked at import into a single 768-entry lookup
     table (`Image.point`): contrast, brightness, lifted blacks, tints, S-curves.
That is what an `ImageEnhance` chain computes (contrast pivots on mid-grey here instead of the
image's mean, so a filter's look does not depend on the picture), in two passes instead of two
or three per step. The pipeline applies a filter once, to the largest variant, before the
smaller ones are resized from it, so every variant has the same look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from app.errors import Invalid

Curve = Callable[[float], float]  # a tone curve on 0..255 sample values
LUMA = (0.299, 0.587, 0.114)  # Rec. 601, the weights of Pillow's "L" conversion and ImageEnhance.Color
MID_GREY = 127.5


class UnknownFilter(Invalid):
    """The upload names a filter that does not exist (422)."""

    code = "unknown_filter"


@dataclass(frozen=True)
class Filter:
    name: str
    description: str
    matrix: tuple[float, ...] | None = None  # 12 coefficients for Image.convert("RGB", matrix)
    curves: tuple[int, ...] | None = None  # 768 entries for Image.point, red then green then blue

    def apply(self, image: Image.Image) -> Image.Image:
        """The filtered copy of an RGB image."""
        if self.matrix is not None:
            image = image.convert("RGB", self.matrix)
        if self.curves is not None:
            image = image.point(self.curves)
        return image


# --- colour matrices -----------------------------------------------------------


def saturation(amount: float) -> tuple[float, ...]:
    """Scale each pixel's distance from its own grey: 0 is black and white, 1 unchanged, above 1 richer."""
    coefficients: list[float] = []
    for row in range(3):
        for column, weight in enumerate(LUMA):
            coefficients.append(weight * (1 - amount) + (amount if row == column else 0.0))
        coefficients.append(0.0)  # no offset
    return tuple(coefficients)


# --- tone curves -----------------------------------------------------------------


def contrast(amount: float) -> Curve:
    """Stretch (above 1) or flatten (below 1) values away from mid-grey."""
    return lambda v: MID_GREY + (v - MID_GREY) * amount


def brightness(amount: float) -> Curve:
    """Scale values: above 1 brighter, below 1 darker; on one channel, a tint."""
    return lambda v: v * amount


def fade(black: float, white: float = 255.0) -> Curve:
    """Map 0..255 onto black..white: lifted blacks and dimmed whites, the look of a faded print."""
    return lambda v: black + v * (white - black) / 255


def s_curve(strength: float) -> Curve:
    """Steeper midtones with compressed shadows and highlights (0 none, 1 a full smoothstep)."""

    def curve(v: float) -> float:
        x = v / 255
        return 255 * (x + strength * (x * x * (3 - 2 * x) - x))

    return curve


def tone(
    *every: Curve, red: Sequence[Curve] = (), green: Sequence[Curve] = (), blue: Sequence[Curve] = ()
) -> tuple[int, ...]:
    """The lookup table of the curves in `every` and then each channel's own, applied in order.

    Each step clips to 0..255, as the same steps applied one after the other to an 8-bit image
    would, so "contrast, then lift the blacks" does lift them.
    """
    table: list[int] = []
    for own in (red, green, blue):
        for value in range(256):
            v = float(value)
            for curve in (*every, *own):
                v = min(255.0, max(0.0, curve(v)))
            table.append(round(v))
    return tuple(table)


# --- the catalogue ---------------------------------------------------------------

_CATALOGUE = (
    Filter(
        "clarendon",
        "Punchy and vivid: contrast 130%, saturation 120%.",
        matrix=saturation(1.2),
        curves=tone(contrast(1.3)),
    ),
    Filter(
        "gingham",
        "Vintage wash: saturation 55%, contrast 90%, blacks lifted to 28, a warm tint (red +6%, blue -10%).",
        matrix=saturation(0.55),
        curves=tone(contrast(0.9), fade(28), red=[brightness(1.06)], blue=[brightness(0.9)]),
    ),
    Filter(
        "juno",
        "Warm and vivid: saturation 115%, contrast 110%, warm tones boosted (red +8%, green +3%, blue -10%).",
        matrix=saturation(1.15),
        curves=tone(contrast(1.1), red=[brightness(1.08)], green=[brightness(1.03)], blue=[brightness(0.9)]),
    ),
    Filter(
        "lark",
        "Bright and airy: saturation 70%, brightness 120%.",
        matrix=saturation(0.7),
        curves=tone(brightness(1.2)),
    ),
    Filter(
        "moon",
        "High-contrast black and white: greyscale, contrast 140%, blacks lifted to 12.",
        matrix=saturation(0),
        curves=tone(contrast(1.4), fade(12)),
    ),
    Filter(
        "reyes",
        "Faded summer: saturation 75%, contrast 80%, blacks lifted to 40, brightness 106%, slightly warm.",
        matrix=saturation(0.75),
        curves=tone(contrast(0.8), fade(40), brightness(1.06), red=[brightness(1.04)], blue=[brightness(0.94)]),
    ),
    Filter(
        "valencia",
        "Warm fade: saturation 110%, contrast 95%, blacks lifted to 18, a warm tint (red +8%, blue -12%).",
        matrix=saturation(1.1),
        curves=tone(contrast(0.95), fade(18), red=[brightness(1.08)], blue=[brightness(0.88)]),
    ),
    Filter(
        "nashville",
        "Pink shadows, creamy highlights: contrast 115%, saturation 115%, blacks lifted pink (red 40, green 12, "
        "blue 36), blue highlights held at 215.",
        matrix=saturation(1.15),
        curves=tone(contrast(1.15), red=[fade(40)], green=[fade(12)], blue=[fade(36, 215)]),
    ),
    Filter(
        "xpro2",
        "Cross-processed (X-Pro II): saturation 130%, S-curve contrast on red and green, blue squeezed into "
        "40-200 for blue shadows and yellow highlights.",
        matrix=saturation(1.3),
        curves=tone(red=[s_curve(0.6)], green=[s_curve(0.5)], blue=[fade(40, 200)]),
    ),
    Filter(
        "inkwell",
        "Plain black and white: each pixel's luma.",
        matrix=saturation(0),
    ),
)

FILTERS: dict[str, Filter] = {f.name: f for f in _CATALOGUE}


def find_filter(name: str | None) -> Filter | None:
    """The filter called `name`, None for no filter; UnknownFilter for a name not in the catalogue."""
    if name is None:
        return None
    found = FILTERS.get(name)
    if found is None:
        raise UnknownFilter(f"unknown filter {name!r}; GET /v1/filters lists them")
    return found


def filter_catalogue() -> list[dict[str, str]]:
    """The filters offered, for GET /v1/filters."""
    return [{"name": f.name, "description": f.description} for f in _CATALOGUE]
