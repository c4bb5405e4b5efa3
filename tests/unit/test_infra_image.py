"""The image and compose invariants nothing on this machine can build or run (there is no Docker here):
infra/Dockerfile runs as a non-root user with PHOTOS_MEDIA_DIR on a volume it owns, infra/docker-compose.yml
mounts one media volume on the API and the stream workers and gives the API a secret, and the packaging
puts every package in the wheel. tests/e2e/test_wheel_install.py runs the part of the build that can run."""

from __future__ import annotations

import configparser
import re
import shlex

import pytest
import yaml

from app.settings import REPO_ROOT

INFRA = REPO_ROOT / "infra"
PACKAGED = ("app", "streams", "loadtest", "infra", "cql")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of infra/Dockerfile's final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            instructions = []  # a new stage: only the last one is the image
        instructions.append((word.upper(), rest.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            env |= dict(part.split("=", 1) for part in shlex.split(rest))
    return env


def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def test_the_image_runs_as_a_non_root_user_with_its_media_on_a_volume_it_owns():
    instructions = dockerfile_instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    user = users[-1].split(":")[0]

    media_dir = dockerfile_env().get("PHOTOS_MEDIA_DIR", "")
    assert media_dir.startswith("/") and "site-packages" not in media_dir, media_dir
    volumes = [v for word, rest in instructions if word == "VOLUME" for v in yaml.safe_load(rest)]
    assert any(media_dir == v or media_dir.startswith(f"{v.rstrip('/')}/") for v in volumes), (media_dir, volumes)
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    owned = re.search(rf"chown -R {user}(:\w+)? (\S+)", runs)
    assert owned and media_dir.startswith(owned.group(2)), "the media directory is not given to the image's user"
    # the user is switched to after everything that needs root
    assert instructions.index(("USER", users[-1])) > max(i for i, (w, _) in enumerate(instructions) if w == "RUN")


def test_the_image_holds_no_secret():
    env = dockerfile_env()
    assert "PHOTOS_SECRET_KEY" not in env and "PHOTOS_ALLOW_DEV_SECRET" not in env
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert ".env" in ignored and "**/.env" in ignored  # infra/.env, compose's secrets, never enters the build


@pytest.mark.parametrize("service", ["api", "streams"])
def test_the_api_and_the_stream_workers_share_one_media_volume(service):
    spec = compose()
    media_dir = dockerfile_env()["PHOTOS_MEDIA_DIR"]
    mounts = [str(m).split(":") for m in spec["services"][service].get("volumes", [])]
    named = [source for source, target, *_ in mounts if target == media_dir]
    assert named == ["media"], mounts
    assert "media" in spec["volumes"]  # named, so both mount the same one
    assert spec["services"][service]["environment"]["PHOTOS_MEDIA_DIR"] == media_dir


def test_compose_gives_the_api_a_secret_from_the_environment_and_the_dev_flag_only_as_a_default():
    env = compose()["services"]["api"]["environment"]
    # a key from the shell or infra/.env wins; without one, the development key, allowed by a flag the same
    # file can turn off. Never an empty key (the API would refuse it, or sign with it if allowed)
    assert re.fullmatch(r"\$\{PHOTOS_SECRET_KEY:-[^}]+\}", env["PHOTOS_SECRET_KEY"]), env["PHOTOS_SECRET_KEY"]
    assert env["PHOTOS_ALLOW_DEV_SECRET"] == "${PHOTOS_ALLOW_DEV_SECRET:-1}"
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_every_python_directory_is_a_package_the_wheel_ships_with_the_migrations():
    """`packages = find:` skips a directory without __init__.py: the wheel would lack it (app/storage once)."""
    missing = [
        str(d.relative_to(REPO_ROOT))
        for top in PACKAGED
        for d in [REPO_ROOT / top, *(p for p in (REPO_ROOT / top).rglob("*") if p.is_dir())]
        if "__pycache__" not in d.parts and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert missing == []
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    assert "migrations/*.cql" in setup["options.package_data"]["cql"]
    assert setup["options"]["packages"].strip() == "find:"
