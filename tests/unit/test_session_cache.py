"""The in-process level of the session cache (app/storage/session_cache.py): its bound, its expiry, and the
epoch that keeps a fill begun before a revocation out of memory."""

from __future__ import annotations

import pytest

from app.storage.session_cache import LocalSessions, Session


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def far(clock: Clock, user_id: int) -> Session:
    return Session(user_id, clock.now + 86_400)


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_an_entry_is_served_until_the_local_ttl_then_forgotten(clock):
    local = LocalSessions(max_entries=10, ttl_s=5.0, clock=clock)
    local.put(h(1), far(clock, 7), local.epoch)
    assert local.get(h(1)) == 7
    clock.now += 4.9
    assert local.get(h(1)) == 7
    clock.now += 0.1
    assert local.get(h(1)) is None
    assert len(local) == 0  # an expired entry is removed when it is found


def test_an_entry_never_outlives_its_session(clock):
    local = LocalSessions(max_entries=10, ttl_s=5.0, clock=clock)
    local.put(h(1), Session(7, clock.now + 2), local.epoch)
    clock.now += 1.9
    assert local.get(h(1)) == 7
    clock.now += 0.1
    assert local.get(h(1)) is None


def test_the_least_recently_used_entries_leave_at_the_bound(clock):
    local = LocalSessions(max_entries=3, ttl_s=5.0, clock=clock)
    for n in (1, 2, 3):
        local.put(h(n), far(clock, n), local.epoch)
    assert local.get(h(1)) == 1  # 1 is now the most recently used, 2 the least
    local.put(h(4), far(clock, 4), local.epoch)
    assert len(local) == 3
    assert local.get(h(2)) is None
    assert [local.get(h(n)) for n in (1, 3, 4)] == [1, 3, 4]
    for n in range(5, 105):
        local.put(h(n), far(clock, n), local.epoch)
    assert len(local) == 3  # however many arrive
    assert [local.get(h(n)) for n in (102, 103, 104)] == [102, 103, 104]


def test_a_drop_forgets_the_token_and_refuses_fills_begun_before_it(clock):
    local = LocalSessions(max_entries=10, ttl_s=5.0, clock=clock)
    local.put(h(1), far(clock, 1), local.epoch)
    begun = local.epoch  # a lookup of token 2 starts, reads Redis or Cassandra...
    local.drop(h(1))  # ...a revocation (of any token) is heard meanwhile...
    local.put(h(2), far(clock, 2), begun)  # ...so what it read is not kept: it may be the revoked one
    assert local.get(h(1)) is None and local.get(h(2)) is None
    local.put(h(2), far(clock, 2), local.epoch)
    assert local.get(h(2)) == 2


def test_clear_empties_and_refuses_fills_begun_before_it(clock):
    local = LocalSessions(max_entries=10, ttl_s=5.0, clock=clock)
    local.put(h(1), far(clock, 1), local.epoch)
    begun = local.epoch
    local.clear()  # the revocation listener (re)connected: what it missed is unknown
    local.put(h(2), far(clock, 2), begun)
    assert len(local) == 0


@pytest.mark.parametrize(("max_entries", "ttl_s"), [(0, 5.0), (10, 0.0)])
def test_a_zero_bound_or_ttl_turns_the_level_off(clock, max_entries, ttl_s):
    local = LocalSessions(max_entries=max_entries, ttl_s=ttl_s, clock=clock)
    local.put(h(1), far(clock, 1), local.epoch)
    assert local.get(h(1)) is None and len(local) == 0
