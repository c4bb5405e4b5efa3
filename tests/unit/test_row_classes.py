"""Rows keep the driver's named-tuple shape while their classes are built once per column list."""

import cassandra.query

import app.storage.cassandra  # noqa: F401 - installs the cached row classes


def test_rows_of_the_same_columns_share_one_class_and_read_by_name():
    first = cassandra.query.named_tuple_factory(["post_id", "like_count"], [(1, 2)])
    second = cassandra.query.named_tuple_factory(["post_id", "like_count"], [(3, 4), (5, 6)])
    assert type(first[0]) is type(second[0]) is type(second[1])
    assert (second[1].post_id, second[1].like_count) == (5, 6)
    other = cassandra.query.named_tuple_factory(["post_id", "comment_count"], [(7, 8)])
    assert type(other[0]) is not type(first[0]) and other[0].comment_count == 8


def test_lwt_and_odd_column_names_are_cleaned_as_before():
    rows = cassandra.query.named_tuple_factory(["[applied]", "count(*)"], [(True, 3)])
    assert rows[0].applied is True and rows[0][1] == 3
