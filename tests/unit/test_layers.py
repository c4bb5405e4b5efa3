"""Who may import whom, read from the source: route modules share helpers through app/web.py, never through
each other; services, models and storage know nothing of HTTP (app/text.py holds what both layers need)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
ROUTE_MODULES = sorted([*APP.glob("*/routes.py"), APP / "health.py", APP / "openapi.py"])
# every module of a domain package but its routes, and the helpers both layers may use
BELOW_HTTP = sorted([
    *(path for path in APP.glob("*/*.py") if path.name != "routes.py" and path.parent.name != "web"),
    APP / "text.py",
])
HTTP_MODULES = ("aiohttp", "app.web", "app.context")


def is_http(name: str) -> bool:
    return any(name == module or name.startswith(f"{module}.") for module in HTTP_MODULES)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts)


def imported(path: Path) -> set[str]:
    """The modules the file imports; for `from a import b`, both `a` and `a.b` (b may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_scans_find_the_modules_they_are_about():
    assert APP / "posts" / "routes.py" in ROUTE_MODULES and APP / "posts" / "service.py" in BELOW_HTTP
    assert APP / "notifications" / "model.py" in BELOW_HTTP and APP / "web.py" not in BELOW_HTTP


@pytest.mark.parametrize("path", ROUTE_MODULES, ids=module_name)
def test_no_route_module_imports_another(path: Path):
    others = {module_name(other) for other in ROUTE_MODULES} - {module_name(path)}
    assert not imported(path) & others, "shared request helpers belong in app/web.py"


@pytest.mark.parametrize("path", BELOW_HTTP, ids=module_name)
def test_services_models_and_storage_do_not_import_http(path: Path):
    http = {name for name in imported(path) if is_http(name)}
    assert not http, "neutral helpers belong in app/text.py; HTTP stays in the routes"
