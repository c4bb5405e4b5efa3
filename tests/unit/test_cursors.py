import pytest

from app.cursors import CursorCodec
from app.errors import BadRequest


def test_a_cursor_round_trips_its_position():
    codec = CursorCodec("secret")
    assert codec.decode("followers", codec.encode("followers", {"b": 2, "a": 12345})) == {"b": 2, "a": 12345}


def test_no_cursor_means_the_first_page():
    assert CursorCodec("secret").decode("followers", None) is None


@pytest.mark.parametrize("garbage", ["x", "!!!!", "AAAA", "a" * 3000, "eyJrIjoiZm9sbG93ZXJzIn0"])
def test_garbage_cursors_are_a_bad_request(garbage):
    with pytest.raises(BadRequest) as err:
        CursorCodec("secret").decode("followers", garbage)
    assert err.value.code == "invalid_cursor"


def test_a_cursor_signed_with_another_key_is_refused():
    forged = CursorCodec("other").encode("followers", {"b": 0, "a": 1})
    with pytest.raises(BadRequest):
        CursorCodec("secret").decode("followers", forged)


def test_a_cursor_of_another_list_is_refused():
    codec = CursorCodec("secret")
    with pytest.raises(BadRequest):
        codec.decode("following", codec.encode("followers", {"a": 1}))
