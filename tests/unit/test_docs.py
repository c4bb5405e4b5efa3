"""The docs stay a map that works: README.md small, every relative link (and its #anchor) pointing at
something in this repository, nothing pointing outside it, and docs/api.md naming every served route.

The routes are read from the `Route(...)` calls in app/ (their method and path arguments), so this test
follows the route tables wherever they live.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
README_MAX_BYTES = 12 * 1024
DOCS = sorted([README, *(REPO_ROOT / "docs").glob("*.md"), *(REPO_ROOT / "cql").glob("*.md")])
API_DOC = REPO_ROOT / "docs" / "api.md"

LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
OUTSIDE_REFERENCE = re.compile(r"(\.\./)+shared\b|\bshared/\w+\.md\b")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
PATH_PARAMETER = re.compile(r"{(\w+)(?::[^}]*)?}")  # aiohttp's `{key:.+}` is `{key}` in the docs


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    return [target for line in prose_lines(path) for target in LINK.findall(line)]


def anchors(path: Path) -> set[str]:
    """The #fragments GitHub gives the file's headings."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def test_readme_is_a_map_of_at_most_12_kb():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it a map, detail goes to docs/"


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_relative_links_resolve_inside_the_repository(doc):
    broken = []
    for target in links(doc):
        if EXTERNAL.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.is_relative_to(REPO_ROOT):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {relative(resolved)}")
    assert not broken, f"{relative(doc)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_nothing_refers_to_documents_outside_the_repository(doc):
    found = sorted({match.group(0) for match in OUTSIDE_REFERENCE.finditer(doc.read_text())})
    assert not found, f"{relative(doc)} refers to documents outside this repository: {found}"


def openapi_path(path: str) -> str:
    return PATH_PARAMETER.sub(r"{\1}", path)


def served_routes() -> set[str]:
    """"METHOD /path" of every `Route(method, path, ...)` call in app/, paths written as OpenAPI does."""
    routes = set()
    for source in (REPO_ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name != "Route":
                continue
            arguments = dict(zip(("method", "path"), node.args, strict=False))
            arguments.update({kw.arg: kw.value for kw in node.keywords if kw.arg in ("method", "path")})
            method, path = arguments.get("method"), arguments.get("path")
            if isinstance(method, ast.Constant) and isinstance(path, ast.Constant):
                routes.add(f"{method.value} {openapi_path(path.value)}")
    return routes


def test_the_route_tables_are_found():
    routes = served_routes()
    assert "GET /v1/feed" in routes and "GET /v1/media/{key}" in routes and len(routes) > 40


def test_api_doc_names_every_route():
    text = API_DOC.read_text()
    missing = sorted(route for route in served_routes() if f"`{route}`" not in text)
    assert not missing, f"docs/api.md does not describe: {', '.join(missing)}"


def test_api_doc_route_tables_name_only_served_routes():
    row = re.compile(r"^\|\s*`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`]*)`\s*\|")
    listed = {match.group(1) for line in prose_lines(API_DOC) if (match := row.match(line))}
    unknown = sorted(listed - served_routes())
    assert not unknown, f"docs/api.md lists routes that are not served: {', '.join(unknown)}"
