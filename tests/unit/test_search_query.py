"""Search's pure logic: which queries are valid, how popularity orders members, how pages are cut."""

from __future__ import annotations

import pytest

from app.errors import BadRequest
from app.search.query import (
    MAX_POPULARITY,
    Match,
    cut_page,
    hashtag_prefix,
    member,
    normalise_user_query,
    parse_member,
    prefixes,
)


@pytest.mark.parametrize(("raw", "q"), [("alice", "alice"), ("@Alice", "alice"), (" al.i_ce9 ", "al.i_ce9"),
                                        ("a", "a"), ("x" * 30, "x" * 30)])
def test_user_queries_are_lower_cased_without_a_leading_at(raw, q):
    assert normalise_user_query(raw) == q


@pytest.mark.parametrize("raw", [None, "", "@", "@@alice", "a b", "ali-ce", "ünï", "x" * 31, "#tag"])
def test_user_queries_no_username_could_start_with_are_refused(raw):
    with pytest.raises(BadRequest) as caught:
        normalise_user_query(raw)
    assert caught.value.code == "invalid_query"


@pytest.mark.parametrize(("raw", "q"), [("#Sunset", "sunset"), ("café", "café"), ("2024", "2024"), ("a_b", "a_b"),
                                        ("x" * 100, "x" * 100)])
def test_hashtag_queries_are_lower_cased_without_a_leading_hash(raw, q):
    assert hashtag_prefix(raw) == q  # digits alone are a valid prefix ("2024" of "2024trip")


@pytest.mark.parametrize("raw", ["", "#", "##tag", "no-dash", "two words", "x" * 101])
def test_hashtag_queries_no_tag_could_start_with_find_nothing(raw):
    """Hashtags are words of any script, which no JSON Schema pattern can say portably: any q is a
    valid request, and one no tag could start with finds nothing (GET /v1/search/hashtags answers [])."""
    assert hashtag_prefix(raw) is None


def test_members_sort_most_popular_first_then_by_name():
    entries = [("bob", 3), ("alice", 3), ("carol", 10), ("dave", 0), ("erin", MAX_POPULARITY + 5)]
    ordered = sorted(member(name, popularity) for name, popularity in entries)
    assert [parse_member(m)[0] for m in ordered] == ["erin", "carol", "alice", "bob", "dave"]
    assert parse_member(member("carol", 10)) == ("carol", 10)
    assert parse_member(member("erin", MAX_POPULARITY + 5)) == ("erin", MAX_POPULARITY)  # clamped
    assert parse_member(member("dave", -1)) == ("dave", 0)


def test_a_name_is_listed_under_every_prefix_including_itself():
    assert prefixes("abc") == ["a", "ab", "abc"]


def _ranked(*names: str) -> list[tuple[str, Match]]:
    return [(member(n, 1), Match(n, 1, b"")) for n in names]


def test_the_first_page_shows_the_exact_match_then_the_ranked_ones_and_continues_after_the_last_shown():
    exact = Match("al", 0, b"")
    page = cut_page(exact, _ranked("alice", "alan", "alex"), limit=3, after="")
    assert [m.name for m in page.matches] == ["al", "alice", "alan"]
    assert page.after == member("alan", 1)


def test_a_page_with_nothing_more_has_no_cursor():
    page = cut_page(None, _ranked("alice", "alan"), limit=2, after="")
    assert [m.name for m in page.matches] == ["alice", "alan"] and page.after is None


def test_a_page_of_only_the_exact_match_continues_from_the_start_of_the_ranked_list():
    page = cut_page(Match("al", 0, b""), _ranked("alice"), limit=1, after="")
    assert [m.name for m in page.matches] == ["al"] and page.after == ""
