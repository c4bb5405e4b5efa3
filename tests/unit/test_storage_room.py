"""The storage room, read from the source: CQL lives only in app/storage/ (and cql/), and every table owner
there is part of `Storage`, the set app/wiring.py prepares for every process (docs/architecture.md)."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from app.wiring import Storage

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "app" / "storage"
OUTSIDE = sorted(
    path for package in ("app", "streams", "loadtest", "infra") for path in (ROOT / package).rglob("*.py")
    if STORAGE not in path.parents
)
CQL = re.compile(
    r"^\s*(SELECT\s.*\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+(SET|USING)\s|DELETE\s.*FROM\s|BEGIN\s+(UNLOGGED\s+)?BATCH"
    r"|TRUNCATE\s|CREATE\s+(TABLE|KEYSPACE|INDEX)\s|ALTER\s+TABLE\s|DROP\s+(TABLE|KEYSPACE)\s)",
    re.DOTALL,  # CQL here is written in capitals; prose ("select a photo from ...") is not
)
PRIMITIVES = {"timelines", "member_pages", "counted_set", "recount", "paging", "cassandra", "migrate"}


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of the module (f-string parts included), docstrings left out."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def owner_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in app/storage/ that prepares statements, primitives left out."""
    owners = []
    for path in sorted(STORAGE.glob("*.py")):
        if path.stem in PRIMITIVES or path.stem == "__init__":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.AsyncFunctionDef) and item.name == "prepare" for item in node.body
            ):
                owners.append((path.stem, node.name))
    return owners


def test_the_scans_find_what_they_are_about():
    assert ROOT / "app" / "main.py" in OUTSIDE and STORAGE / "posts.py" not in OUTSIDE
    assert CQL.search("SELECT post_id FROM posts WHERE post_id = ?")
    assert CQL.search(' UPDATE posts USING TIMESTAMP ? SET like_count = ?')
    assert not CQL.search("select a photo from the gallery")  # prose is not CQL
    assert ("users", "UserRepository") in owner_classes() and ("posts", "PostRepository") in owner_classes()


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_cql_outside_the_storage_room(path: Path):
    statements = [f"line {line}: {text[:80]!r}" for line, text in string_literals(path) if CQL.search(text)]
    assert not statements, "CQL belongs to its table's owner in app/storage/ (docs/architecture.md)"


def test_every_table_owner_is_prepared_by_the_wiring():
    hints = typing.get_type_hints(Storage)
    prepared = {(hints[field.name].__module__.rsplit(".", 1)[-1], hints[field.name].__name__)
                for field in dataclasses.fields(Storage) if field.name != "cass"}
    assert set(owner_classes()) <= prepared
