import re

import pytest

from app.errors import Invalid
from app.web import Field, validate

SPEC = {
    "name": Field(str, required=True, min_length=3, max_length=5, pattern=re.compile("[a-z]+")),
    "age": Field(int),
    "note": Field(str, nullable=True),
}


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
