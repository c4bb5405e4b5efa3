"""The preview stored with a post: a BlurHash (https://blurha.sh), 28 characters of text.

A client paints the blurred colours while the real image loads. BlurHash is chosen over a tiny
inline JPEG because it is text that fits a Cassandra column and a JSON field as it is, is about
15 times smaller (a 16x12 JPEG is 430 characters of base64, its header tables being most of it),
and has decoders for every client platform.

The encoder works on a copy of at most 32 px a side, which keeps its pure-Python sums to a few
thousand multiplications (1 to 2 ms with the downscale): the colours of a 4x3-component hash do
not change visibly above that size.
"""

from __future__ import annotations

import math
from functools import cache
from operator import mul

from PIL import Image

PREVIEW_EDGE = 32  # the long edge of the copy the hash is computed from
LONG_COMPONENTS = 4  # cosine components along the long edge
SHORT_COMPONENTS = 3  # and along the short edge

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
# sRGB byte -> linear light, once for all 256 values
_LINEAR = tuple(v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in (i / 255 for i in range(256)))


def preview(image: Image.Image) -> str:
    """The BlurHash of an RGB image: 4 components along its long edge, 3 along the short one."""
    small = image.copy()
    small.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE), Image.Resampling.BOX)
    width, height = small.size
    if width >= height:
        return blurhash(small, LONG_COMPONENTS, SHORT_COMPONENTS)
    return blurhash(small, SHORT_COMPONENTS, LONG_COMPONENTS)


def blurhash(image: Image.Image, x_components: int, y_components: int) -> str:
    """The BlurHash of a small RGB image (every pixel is visited, so downscale it first)."""
    factors = _cosine_factors(image, x_components, y_components)
    dc, ac = factors[0], factors[1:]
    size_flag = (x_components - 1) + (y_components - 1) * 9
    if ac:  # the largest AC amplitude, in 83 steps, is the scale every AC component is quantised against
        quantised_max = max(0, min(82, math.floor(max(abs(c) for f in ac for c in f) * 166 - 0.5)))
        max_value = (quantised_max + 1) / 166
    else:
        quantised_max, max_value = 0, 1.0
    parts = [_base83(size_flag, 1), _base83(quantised_max, 1), _base83(_encode_dc(dc), 4)]
    parts += [_base83(_encode_ac(f, max_value), 2) for f in ac]
    return "".join(parts)


def _cosine_factors(image: Image.Image, x_components: int, y_components: int) -> list[tuple[float, ...]]:
    """Each component's (r, g, b) weight, DC first, x varying fastest.

    The 2-D cosine basis is separable, so each row is first reduced to one sum per x component
    (dot products done by `map` in C), and those sums are then weighted by the y cosines.
    """
    width, height = image.size
    linear = [_LINEAR[v] for v in image.convert("RGB").tobytes()]
    channels = [linear[c::3] for c in range(3)]
    cos_x = [_cosines(i, width) for i in range(x_components)]
    cos_y = [_cosines(j, height) for j in range(y_components)]
    row_sums = [
        [[sum(map(mul, cx, pixels[y * width : (y + 1) * width])) for y in range(height)] for cx in cos_x]
        for pixels in channels
    ]
    factors = []
    for j, cy in enumerate(cos_y):
        for i in range(x_components):
            scale = (1 if i == j == 0 else 2) / (width * height)
            factors.append(tuple(scale * sum(map(mul, cy, row_sums[c][i])) for c in range(3)))
    return factors


@cache
def _cosines(component: int, length: int) -> tuple[float, ...]:
    return tuple(math.cos(math.pi * component * p / length) for p in range(length))


def _encode_dc(rgb: tuple[float, ...]) -> int:
    r, g, b = (_srgb_byte(c) for c in rgb)
    return (r << 16) + (g << 8) + b


def _encode_ac(rgb: tuple[float, ...], max_value: float) -> int:
    """Each channel in 19 levels on a square-root scale, which keeps more steps for faint components."""
    r, g, b = (max(0, min(18, math.floor(_sign_sqrt(c / max_value) * 9 + 9.5))) for c in rgb)
    return r * 19 * 19 + g * 19 + b


def _srgb_byte(linear: float) -> int:
    v = max(0.0, min(1.0, linear))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _sign_sqrt(value: float) -> float:
    return math.copysign(math.sqrt(abs(value)), value)


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))
