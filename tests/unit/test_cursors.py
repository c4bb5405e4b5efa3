import pytest

from app.cursors import CursorCodec
from app.errors import BadRequest
from app.feed.service import FeedService


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


# A forged cursor needs the secret, but one that reaches the code must still be a 400, never a 500.
INT_MAX = (1 << 31) - 1  # a bucket is a Cassandra int
BIGINT_MAX = (1 << 63) - 1  # an id is a Cassandra bigint


@pytest.mark.parametrize("payload", [
    b"[1, 2]", b"12", b'"followers"', b"null", b"not json", b"\xff\xfe",
    b'{"k": "followers"}', b'{"k": "followers", "p": [0, 1]}', b'{"k": "followers", "p": 7}',
])
def test_a_signed_payload_that_is_not_a_position_object_is_a_bad_request(payload):
    codec = CursorCodec("secret")
    with pytest.raises(BadRequest) as err:
        codec.decode("followers", codec.sign(payload))
    assert err.value.code == "invalid_cursor"


@pytest.mark.parametrize("position", [
    {"b": 0, "a": BIGINT_MAX + 1}, {"b": 0, "a": (1 << 64) - 1}, {"b": INT_MAX + 1, "a": 1}, {"b": -1, "a": 1},
    {"b": 0, "a": 1e19}, {"b": 0, "a": "1"}, {"b": 0, "a": True}, {"b": 0, "a": None}, {"b": 0}, {"b": 0, "a": [1]},
])
def test_integers_a_cassandra_column_cannot_hold_are_a_bad_request(position):
    codec = CursorCodec("secret")
    with pytest.raises(BadRequest) as err:
        codec.decode_ints("followers", codec.encode("followers", position), "b", "a")
    assert err.value.code == "invalid_cursor"


def test_an_integer_past_64_bits_is_a_bad_request():
    codec = CursorCodec("secret")
    cursor = codec.sign(b'{"k": "followers", "p": {"b": 0, "a": 100000000000000000000}}')
    with pytest.raises(BadRequest):
        codec.decode_ints("followers", cursor, "b", "a")


def test_the_largest_bucket_and_id_are_positions():
    codec = CursorCodec("secret")
    cursor = codec.encode("followers", {"b": INT_MAX, "a": BIGINT_MAX})
    assert codec.decode_ints("followers", cursor, "b", "a") == (INT_MAX, BIGINT_MAX)


@pytest.mark.parametrize("order, position", [
    ("chronological", {"a": BIGINT_MAX + 1}), ("ranked", {"a": BIGINT_MAX + 1}),
    ("ranked", {"s": BIGINT_MAX + 1, "o": 0}), ("ranked", {"s": 1, "o": (1 << 64) - 1}), ("ranked", {"s": 1}),
])
async def test_a_feed_cursor_with_an_overflowing_position_is_a_bad_request(order, position):
    codec = CursorCodec("secret")
    service = FeedService(feed=None, writer=None, cache=None, follows=None, affinity=None, post_rows=None,
                          posts=None, rankers=None, ids=None, cursors=codec, rank_window=8)
    with pytest.raises(BadRequest) as err:  # before any store is asked
        await service.read(1, order, 10, codec.encode(order, position))
    assert err.value.code == "invalid_cursor"


async def test_a_ranked_feed_cursor_naming_a_ranker_that_is_not_a_name_is_a_bad_request():
    codec = CursorCodec("secret")
    service = FeedService(feed=None, writer=None, cache=None, follows=None, affinity=None, post_rows=None,
                          posts=None, rankers=None, ids=None, cursors=codec, rank_window=8)
    with pytest.raises(BadRequest) as err:  # before any store is asked
        await service.read(1, "ranked", 10, codec.encode("ranked", {"s": 1, "o": 0, "r": 5}))
    assert err.value.code == "invalid_cursor"
