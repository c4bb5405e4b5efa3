"""Bad uploads, one test each: the right 4xx JSON error, and no post, media or count is created."""

import io

import aiohttp
import pytest
from PIL import Image

from loadtest import images
from tests.e2e.client.common import expect_error
from tests.e2e.client.posts import form, publish, user_posts
from tests.e2e.client.users import register


@pytest.fixture
async def author(http, api_url):
    return await register(http, api_url)


async def upload(http, api_url, account, data) -> aiohttp.ClientResponse:
    return await http.post(f"{api_url}/v1/posts", data=data, headers=account.auth)


async def assert_refused(http, api_url, account, data, status, code=None) -> None:
    async with await upload(http, api_url, account, data) as response:
        await expect_error(response, status, code)
    assert await user_posts(http, api_url, account, account.id) == []


@pytest.mark.parametrize(
    ("name", "image", "status"),
    [
        ("truncated JPEG", images.truncated_jpeg(), 422),
        ("zero bytes", b"", 422),
        ("a text file named .jpg", b"just some text, honestly a photo\n" * 20, 415),
        ("a 1x1 image", images.make_png(1, 1), 422),
        ("a 30000x30000 PNG bomb", images.png_bomb(), 413),
        ("an animated GIF", images.make_gif(animated=True), 415),
    ],
)
async def test_undecodable_or_refused_images(http, api_url, author, name, image, status):
    await assert_refused(http, api_url, author, form(image=image), status)


async def test_a_cmyk_jpeg_comes_out_in_the_right_colours(http, api_url, author):
    post = await publish(http, api_url, author, image=images.make_jpeg(640, 480, colour=(220, 30, 30), cmyk=True))
    async with http.get(post["media"]["thumbnail"]["url"]) as response:
        thumbnail = Image.open(io.BytesIO(await response.read())).convert("RGB")
    red, green, blue = thumbnail.resize((1, 1)).getpixel((0, 0))
    assert red > 150 and green < 90 and blue < 90


async def test_an_exif_rotated_jpeg_comes_out_upright_without_metadata(http, api_url, author):
    stored_sideways = images.make_jpeg(800, 600, exif_orientation=6, corner_marker=True, gps=True)
    post = await publish(http, api_url, author, image=stored_sideways)
    assert (post["media"]["original"]["width"], post["media"]["original"]["height"]) == (600, 800)
    for variant in ("original", "large", "medium"):
        async with http.get(post["media"][variant]["url"]) as response:
            image = Image.open(io.BytesIO(await response.read()))
        assert image.height > image.width, variant
        assert not image.getexif() and "icc_profile" not in image.info
        # orientation 6 turns the stored top-left corner to the top right
        w, h = image.size
        top_right = image.convert("RGB").getpixel((w - w // 16, h // 16))
        top_left = image.convert("RGB").getpixel((w // 16, h // 16))
        assert top_right != top_left


async def test_a_10000_character_caption_is_422(http, api_url, author):
    await assert_refused(http, api_url, author, form(caption="x" * 10_000), 422, "caption_too_long")


@pytest.mark.parametrize("caption", ["bell\x07", "null\x00byte", "escape\x1b[31m", "c1\x85control"])
async def test_control_characters_in_captions_are_422(http, api_url, author, caption):
    await assert_refused(http, api_url, author, form(caption=caption), 422, "control_characters")


@pytest.mark.parametrize("field", ["caption", "location"])
@pytest.mark.parametrize("invisible", ["\u202e", "\u2066", "\u200f", "\u200b", "\ufeff"])
async def test_bidi_controls_and_zero_width_characters_in_captions_and_locations_are_422(
    http, api_url, author, field, invisible
):
    await assert_refused(http, api_url, author, form(**{field: f"gpj.{invisible}exe"}), 422, "control_characters")


@pytest.mark.parametrize("name", ["sepia-deluxe", "Clarendon", " clarendon", ""])
async def test_a_filter_not_exactly_in_the_catalogue_is_422(http, api_url, author, name):
    """The document lists the names (an enum): another spelling of one is refused, not guessed at."""
    await assert_refused(http, api_url, author, form(filter=name), 422, "unknown_filter")


async def test_a_location_on_two_lines_is_422_before_it_is_trimmed(http, api_url, author):
    await assert_refused(http, api_url, author, form(location="Lisbon\n"), 422, "control_characters")


async def test_too_many_hashtags_are_422(http, api_url, author):
    caption = " ".join(f"#tag{i}" for i in range(31))
    await assert_refused(http, api_url, author, form(caption=caption), 422, "too_many_hashtags")


async def test_an_anonymous_upload_is_401(http, api_url, author):
    async with http.post(f"{api_url}/v1/posts", data=form()) as response:
        await expect_error(response, 401)


async def test_an_upload_over_20_mb_is_413(http, api_url, author, settings):
    await assert_refused(http, api_url, author, form(image=b"\xff\xd8" + b"\0" * settings.max_upload_bytes), 413)


async def test_a_json_body_instead_of_a_form_is_415(http, api_url, author):
    async with http.post(f"{api_url}/v1/posts", json={"caption": "hi"}, headers=author.auth) as response:
        await expect_error(response, 415)


async def test_a_form_without_an_image_is_422(http, api_url, author):
    data = aiohttp.FormData()
    data.add_field("caption", "no picture")
    data.add_field("dummy", "x", filename="x.txt")  # forces multipart
    await assert_refused(http, api_url, author, data, 422)
    only_caption = aiohttp.FormData()
    only_caption.add_field("caption", "still no picture")
    only_caption.add_field("image", b"", filename="empty.jpg", content_type="image/jpeg")
    await assert_refused(http, api_url, author, only_caption, 422)


async def test_unknown_form_fields_are_422(http, api_url, author):
    await assert_refused(http, api_url, author, form(author_id="1"), 422, "unknown_field")


async def test_a_garbage_post_id_is_404(http, api_url, author):
    for post_id in ("abc", "-1", "99999999999999999999", "0"):
        async with http.get(f"{api_url}/v1/posts/{post_id}", headers=author.auth) as response:
            await expect_error(response, 404, "post_not_found")


@pytest.mark.parametrize(
    "body",
    [b"no boundary at all", b"--wrong\r\nContent-Disposition: form-data; name=image\r\n\r\ntruncated"],
)
async def test_a_malformed_multipart_body_is_400(http, api_url, author, body):
    headers = {**author.auth, "Content-Type": "multipart/form-data; boundary=xyz"}
    async with http.post(f"{api_url}/v1/posts", data=body, headers=headers) as response:
        await expect_error(response, 400, "malformed_multipart")
    assert await user_posts(http, api_url, author, author.id) == []
