from datetime import UTC, datetime, timedelta

import pytest

from app.ids import MAX_SEQUENCE, IdGenerator, id_time, parse_id


def test_ids_are_unique_and_increasing_within_one_millisecond():
    gen = IdGenerator(shard=7, clock=lambda: 1_800_000_000.0)
    ids = [gen.next_id() for _ in range(3 * (MAX_SEQUENCE + 1))]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_keep_increasing_when_the_clock_steps_back():
    now = [1_800_000_000.0]
    gen = IdGenerator(shard=1, clock=lambda: now[0])
    first = gen.next_id()
    now[0] -= 5
    assert gen.next_id() > first


def test_id_time_recovers_the_creation_instant():
    gen = IdGenerator(shard=3)
    before = datetime.now(UTC) - timedelta(milliseconds=2)
    created = id_time(gen.next_id())
    assert before <= created <= datetime.now(UTC) + timedelta(milliseconds=2)


def test_ids_from_different_shards_differ_in_the_same_millisecond():
    clock = lambda: 1_800_000_000.0  # noqa: E731
    assert IdGenerator(shard=1, clock=clock).next_id() != IdGenerator(shard=2, clock=clock).next_id()


def test_shard_out_of_range_is_refused():
    with pytest.raises(ValueError):
        IdGenerator(shard=1 << 13)


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "1.5", "99999999999999999999", "9223372036854775808", " 12"])
def test_parse_id_rejects_what_is_not_an_id(text):
    assert parse_id(text) is None


def test_parse_id_accepts_the_largest_id():
    assert parse_id("9223372036854775807") == 2**63 - 1
