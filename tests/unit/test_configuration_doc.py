"""docs/configuration.md against `Settings`: every setting documented, nothing documented that is not a
setting, and every default shown the code's.

The variable names are not listed here: they are what `Settings.from_env` asks its environment for, so
the test follows the code however it builds them. A documented default is checked by setting the
variable to it: the settings must come out equal to the defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import REPO_ROOT, Settings

DOC = REPO_ROOT / "docs" / "configuration.md"
ROW = re.compile(r"^\|\s*`(PHOTOS_[A-Z0-9_]+)`\s*\|([^|]*)\|")
NAME = re.compile(r"PHOTOS_[A-Z0-9_]+")
CODE = re.compile(r"`([^`]*)`")


class RecordingEnviron(dict):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def variables_read() -> set[str]:
    environ = RecordingEnviron()
    Settings.from_env(environ)
    return {name for name in environ.asked if name.startswith("PHOTOS_")}


def documented_rows() -> dict[str, str]:
    """variable -> its default cell, from the doc's tables (one row per variable)."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, default = match.group(1), match.group(2).strip()
            assert name not in rows, f"{name} has two rows in {DOC.name}"
            rows[name] = default
    return rows


def documented_value(cell: str) -> str:
    """The value a default cell shows: its first code span, or "" for a cell that starts with "empty"."""
    if cell.lower().startswith("empty"):
        return ""
    code = CODE.search(cell)
    assert code, f"a default cell needs the value in backticks or the word 'empty': {cell!r}"
    return code.group(1)


def test_settings_are_read_from_photos_variables():
    assert len(variables_read()) > 50  # the probe itself works: from_env asked for every field


def test_every_setting_has_a_row():
    missing = sorted(variables_read() - set(documented_rows()))
    assert not missing, f"settings missing from {DOC.name}: {', '.join(missing)}"


def test_the_doc_names_only_settings():
    named = set(NAME.findall(DOC.read_text()))
    unknown = sorted(named - variables_read())
    assert not unknown, f"{DOC.name} names variables Settings does not read: {', '.join(unknown)}"


@pytest.mark.parametrize("name", sorted(documented_rows()))
def test_documented_default_is_the_codes(name, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # the cache directory's default follows it
    value = documented_value(documented_rows()[name])
    defaults = Settings.from_env({})
    # a path may be shown relative to the repository, or with ~ for the home directory
    candidates = [value, str(REPO_ROOT / value), str(Path(value).expanduser())]
    for candidate in candidates:
        try:
            if Settings.from_env({name: candidate}) == defaults:
                return
        except ValueError:
            continue
    pytest.fail(f"{name}: {DOC.name} shows the default {value!r}, which is not the code's")
