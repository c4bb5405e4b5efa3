"""The installed wheel runs: what the image build (infra/Dockerfile) does, on a machine without Docker.

The source tree is copied as the image's build context is (infra/Dockerfile.dockerignore), built into a
wheel, and the wheel installed with its dependencies into a fresh virtualenv. `photos-migrate` and
`photos-api` then run from that virtualenv, in a directory outside the repository, against the test
stack: the CQL migrations must come from the wheel, and an upload must land in PHOTOS_MEDIA_DIR, not
next to the installed code in site-packages (the default media directory resolves there).

Slow (a wheel build and a dependency install: about a minute with pip's cache warm, more on a cold
one); `pytest -m "not slow"` leaves it out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from app.settings import REPO_ROOT
from infra.procs import ManagedProcess, free_port, spawn, wait_http_ok
from tests.e2e.client.posts import publish
from tests.e2e.client.users import register

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.own_stack]

# the image's build context leaves these out (infra/Dockerfile.dockerignore), and so does this copy
CONTEXT_EXCLUDED = (
    ".git",
    ".stack",
    ".venv",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    ".env",
)
PIP_TIMEOUT_S = 150


class InstalledProcess(ManagedProcess):
    """A program of the fresh virtualenv (not `python` of this one), run in `cwd`, logging to `log_dir`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.proc = spawn(argv, self.log_path, cwd, env=env, append=False)


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = PIP_TIMEOUT_S) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{output}"
    return result.stdout


def clean_env(**settings: str) -> dict[str, str]:
    """This session's environment (TEST_ENV: the test keyspace, topics, ...) without anything that would let
    the virtualenv import from this repository or this virtualenv, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **settings}


@pytest.fixture(scope="module")
def installed(tmp_path_factory, migrated) -> Path:
    """A fresh virtualenv with the wheel of this tree and its dependencies installed; its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    source, wheels, venv = root / "src", root / "wheels", root / "venv"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*CONTEXT_EXCLUDED), symlinks=True)
    env = clean_env()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], root, env)
    (wheel,) = wheels.glob("photos-*.whl")
    run([sys.executable, "-m", "venv", str(venv)], root, env)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], root, env)
    return venv / "bin"


@pytest.fixture
def wheel_api(installed, tmp_path):
    """`photos-migrate`, then `photos-api` on a free port, both from the virtualenv and run outside the
    repository; yields the API's base URL, its PHOTOS_MEDIA_DIR and the virtualenv's site-packages."""
    work = tmp_path / "cwd"  # not the repository: nothing can be imported from its source
    media = tmp_path / "media"
    work.mkdir()
    found = run(
        [
            str(installed / "python"),
            "-c",
            "import app, cql, sysconfig; print(app.__file__, cql.__file__, sysconfig.get_paths()['purelib'])",
        ],
        work,
        clean_env(),
    ).split()
    site_packages = Path(found[2]).resolve()
    assert all(Path(p).resolve().is_relative_to(site_packages) for p in found[:2]), found
    assert list((site_packages / "cql" / "migrations").glob("*.cql")), "the migrations are not in the wheel"

    # reads the migrations from the wheel (this session applied them already: all found, none pending)
    run([str(installed / "photos-migrate")], work, clean_env())

    port = free_port()
    env = clean_env(
        PHOTOS_API_PORT=str(port),
        PHOTOS_OPS_PORT=str(free_port()),  # not 8081: a stack's API may hold it
        PHOTOS_API_WORKERS="1",
        PHOTOS_SECRET_KEY="wheel-test-secret",  # no PHOTOS_ALLOW_DEV_SECRET: as in production
        PHOTOS_MEDIA_DIR=str(media),
        PHOTOS_REGISTER_RATE_PER_ADDRESS="100000",
        PHOTOS_LOGIN_RATE_PER_ADDRESS="100000",
    )
    env.pop("PHOTOS_ALLOW_DEV_SECRET", None)
    api = InstalledProcess("api-wheel", [str(installed / "photos-api")], env, work, tmp_path / "logs")
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base_url}/readyz", api, timeout=90)
        yield base_url, media, site_packages
    finally:
        api.stop()


def assert_stored_in(media: Path, site_packages: Path, key: str, served: bytes) -> None:
    assert (media / key).read_bytes() == served, "the served media is not the file in PHOTOS_MEDIA_DIR"
    assert not (site_packages / ".stack").exists(), "media or state was written into site-packages"


async def test_the_installed_wheel_migrates_serves_and_stores_media_outside_site_packages(wheel_api):
    base_url, media, site_packages = wheel_api
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        account = await register(http, base_url)
        post = await publish(http, base_url, account, caption="from the wheel")
        url = post["media"]["medium"]["url"]
        assert url.startswith(f"{base_url}/v1/media/"), url
        async with http.get(url) as response:
            assert response.status == 200, await response.text()
            served = await response.read()
        async with http.get(f"{base_url}/v1/posts/{post['id']}", headers=account.auth) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["caption"] == "from the wheel"
    assert_stored_in(media, site_packages, url.removeprefix(f"{base_url}/v1/media/"), served)
    print(f"register, upload and read back from the installed wheel: {time.monotonic() - started:.1f} s")
