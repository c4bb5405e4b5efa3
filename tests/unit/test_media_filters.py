"""The filter catalogue: names, lookups and what each colour operation does to pixels."""

import pytest
from PIL import Image, ImageEnhance, ImageStat

from app.media.filters import FILTERS, UnknownFilter, contrast, fade, filter_catalogue, find_filter, tone
from loadtest.images import photo_like

MID_GREY = (128, 128, 128)
ORANGE = (200, 120, 40)


def flat(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (8, 8), colour)


def filtered(name: str, colour: tuple[int, int, int]) -> tuple[int, ...]:
    return FILTERS[name].apply(flat(colour)).getpixel((0, 0))


def saturation_of(rgb: tuple[int, ...]) -> int:
    return max(rgb) - min(rgb)


def mid_range_test_card() -> Image.Image:
    """Three gradients in 64..191, whose grey mean is mid-grey: contrast about the mean and about 127.5 agree."""
    ramp = Image.linear_gradient("L").resize((128, 128)).point(lambda v: 64 + v // 2)
    return Image.merge("RGB", (ramp, ramp.rotate(90), ramp.rotate(180)))


def test_the_catalogue_lists_every_filter_with_a_description():
    catalogue = filter_catalogue()
    assert [entry["name"] for entry in catalogue] == list(FILTERS)
    assert {"clarendon", "gingham", "juno", "lark", "moon", "reyes", "valencia", "nashville"} <= set(FILTERS)
    assert all(entry["description"] and set(entry) == {"name", "description"} for entry in catalogue)


def test_an_unknown_filter_name_is_refused_with_422():
    with pytest.raises(UnknownFilter) as refused:
        find_filter("sepia-deluxe")
    assert (refused.value.status, refused.value.code) == (422, "unknown_filter")
    assert "GET /v1/filters" in refused.value.message


def test_no_filter_name_means_no_filter():
    assert find_filter(None) is None
    assert find_filter("lark") is FILTERS["lark"]


@pytest.mark.parametrize("name", list(FILTERS))
def test_every_filter_changes_a_photo_and_keeps_it_rgb(name):
    photo = photo_like(96, 64)
    result = FILTERS[name].apply(photo)
    assert (result.mode, result.size) == ("RGB", photo.size)
    assert result.tobytes() != photo.tobytes()


def test_clarendon_matches_the_imageenhance_chain_it_replaces():
    card = mid_range_test_card()
    enhanced = ImageEnhance.Color(ImageEnhance.Contrast(card).enhance(1.3)).enhance(1.2)
    ours = FILTERS["clarendon"].apply(card)
    difference = [abs(a - b) for a, b in zip(ours.tobytes(), enhanced.tobytes(), strict=True)]
    assert max(difference) <= 3


def test_lark_brightens_and_desaturates():
    before = ORANGE
    after = filtered("lark", before)
    assert sum(after) > sum(before)
    assert saturation_of(after) < saturation_of(before)


@pytest.mark.parametrize("name", ["moon", "inkwell"])
def test_black_and_white_filters_leave_no_colour(name):
    red, green, blue = FILTERS[name].apply(photo_like(96, 64)).split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()


def test_moon_has_more_contrast_than_plain_black_and_white():
    photo = photo_like(96, 64)
    moon, inkwell = (ImageStat.Stat(FILTERS[name].apply(photo).convert("L")).stddev[0] for name in ("moon", "inkwell"))
    assert moon > inkwell


@pytest.mark.parametrize("name", ["gingham", "reyes", "valencia", "nashville", "moon"])
def test_faded_filters_lift_the_blacks(name):
    assert min(filtered(name, (0, 0, 0))) >= 10


@pytest.mark.parametrize("name", ["gingham", "juno", "reyes", "valencia", "nashville", "xpro2"])
def test_warm_filters_turn_mid_grey_warm(name):
    red, _, blue = filtered(name, MID_GREY)
    assert red > blue


def test_clarendon_spreads_tones_away_from_mid_grey():
    dark, light = filtered("clarendon", (60, 60, 60)), filtered("clarendon", (200, 200, 200))
    assert dark[0] < 60 and light[0] > 200


def test_tone_curves_apply_in_order_and_clip_to_the_byte_range():
    table = tone(contrast(3.0), fade(10), blue=[fade(0, 100)])
    assert len(table) == 768
    assert (table[0], table[128], table[255]) == (10, 134, 255)  # contrast clips 0 to 0, then fade lifts it to 10
    assert (table[512], table[640], table[767]) == (4, 53, 100)  # blue is then squeezed into 0..100
    assert all(0 <= v <= 255 for v in table)
