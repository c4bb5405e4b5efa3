import pytest

from app.errors import NotFound
from app.hashtags.service import normalise_tag
from app.posts import text


@pytest.mark.parametrize("raw", ["sunset", "#Sunset", "SUNSET", "#sunset"])
def test_a_tag_is_lower_cased_without_hash(raw):
    assert normalise_tag(raw) == "sunset"


def test_every_tag_a_caption_yields_is_accepted_as_is():
    for tag in text.hashtags("#Café #日本 #a_1 #x" + "y" * 99):
        assert normalise_tag(tag) == tag


@pytest.mark.parametrize("raw", ["", "#", "123", "no-dash", "two words", "a" * 101, "##double"])
def test_what_no_caption_could_yield_is_not_found(raw):
    with pytest.raises(NotFound) as error:
        normalise_tag(raw)
    assert error.value.code == "invalid_hashtag"
