import pytest

from app.storage.migrate import MIGRATIONS_DIR, load_migrations, split_statements


def test_statements_are_split_on_semicolons_and_comments_dropped():
    text = "-- header\nCREATE TABLE a (x int PRIMARY KEY); -- trailing\n\nCREATE TABLE b (\n  y int PRIMARY KEY\n);\n"
    assert split_statements(text) == ["CREATE TABLE a (x int PRIMARY KEY)", "CREATE TABLE b (\n  y int PRIMARY KEY\n)"]


def test_a_file_ending_inside_a_statement_is_refused():
    with pytest.raises(SystemExit):
        split_statements("CREATE TABLE a (x int PRIMARY KEY)")


def test_the_shipped_migrations_are_numbered_from_one_without_gaps():
    versions = [m.version for m in load_migrations(MIGRATIONS_DIR)]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.statements for m in load_migrations(MIGRATIONS_DIR))
