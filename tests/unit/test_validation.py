import re

import pytest

from app.errors import Invalid
from app.web import Field, validate

SPEC = {
    "name": Field(str, required=True, min_length=3, max_length=5, pattern=re.compile("[a-z]+")),
    "age": Field(int),
    "note": Field(str, nullable=True),
}
HIDDEN = ["\u202e", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
          "\u200f", "\u061c", "\u200b", "\u2060", "\ufeff"]


def test_a_valid_body_passes_through():
    assert validate({"name": "abc", "age": 3}, SPEC) == {"name": "abc", "age": 3}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"name": "abc", "extra": 1}, "unknown_field"),
        ({"name": 5}, "wrong_type"),
        ({"name": "abc", "age": True}, "wrong_type"),
        ({"name": "abc", "age": "3"}, "wrong_type"),
        ({"name": "ab"}, "validation_failed"),
        ({"name": "abcdef"}, "validation_failed"),
        ({"name": "ABC"}, "validation_failed"),
        ({"name": "abc", "note": "bell\x07"}, "control_characters"),
        ({"name": "abc", "note": "next line\x85"}, "control_characters"),
        ({"name": None}, "wrong_type"),
    ],
)
def test_each_kind_of_bad_field_is_named(body, code):
    with pytest.raises(Invalid) as err:
        validate(body, SPEC)
    assert err.value.code == code


def test_nullable_fields_accept_null():
    assert validate({"name": "abc", "note": None}, SPEC)["note"] is None


@pytest.mark.parametrize("hidden", HIDDEN)
def test_text_others_see_may_not_hold_bidi_controls_or_zero_width_characters(hidden):
    with pytest.raises(Invalid) as err:
        validate({"name": "abc", "note": f"moc.{hidden}elgoog"}, SPEC)
    assert err.value.code == "control_characters"


def test_text_nobody_sees_may_hold_them_but_not_control_characters():
    """A password is never shown, and one chosen before the rule must still log in."""
    spec = {"password": Field(str, shown=False)}
    assert validate({"password": "pass\u200ework"}, spec) == {"password": "pass\u200ework"}
    with pytest.raises(Invalid) as err:
        validate({"password": "pass\x00word"}, spec)
    assert err.value.code == "control_characters"


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family emoji: three people joined by ZWJ
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a zero-width non-joiner
        "\u05e9\u05dc\u05d5\u05dd world",  # Hebrew and Latin: the bidi algorithm needs no control for it
        "caf\u00e9 \U0001f3f3\ufe0f\u200d\U0001f308",  # the rainbow flag: variation selector and ZWJ
    ],
)
def test_joiners_and_right_to_left_scripts_are_text_like_any_other(text):
    """The zero-width joiner and non-joiner are part of emoji sequences and of Persian and Indic words."""
    assert validate({"name": "abc", "note": text}, SPEC)["note"] == text
