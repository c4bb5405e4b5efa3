"""The cursor secret: the API refuses to start with the public development default unless a development
setting allows it, and a rotated-out key keeps verifying cursors while PHOTOS_SECRET_KEY_PREVIOUS names it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import wiring
from app.cursors import CursorCodec
from app.errors import BadRequest
from app.main import init_app
from app.settings import REPO_ROOT, Settings
from infra.procs import free_port
from infra.services import Api

DEAD_SERVERS = {  # never reached: the API must stop before connecting to anything
    "PHOTOS_CASSANDRA_PORT": "1", "PHOTOS_KAFKA_BOOTSTRAP": "127.0.0.1:1", "PHOTOS_REDIS_URL": "redis://127.0.0.1:1/0",
}


def api_environment(**settings: str) -> dict[str, str]:
    """This environment without the test session's secret, plus `settings`."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("PHOTOS_SECRET_KEY", "PHOTOS_ALLOW_DEV_SECRET")}
    return {**env, **DEAD_SERVERS, "PHOTOS_API_PORT": str(free_port()), **settings}


def test_photos_api_refuses_to_start_with_the_development_secret_and_says_what_to_set():
    api = subprocess.Popen([sys.executable, "-m", "app.main", "--workers", "1"], cwd=REPO_ROOT,
                           env=api_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = api.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        api.kill()
        output, _ = api.communicate()
        pytest.fail(f"photos-api started with the development secret:\n{output[-2000:]}")
    assert api.returncode == 2, output
    assert "PHOTOS_SECRET_KEY" in output and "PHOTOS_ALLOW_DEV_SECRET=1" in output


def test_the_app_is_not_built_with_the_development_secret():
    with pytest.raises(ValueError, match="PHOTOS_SECRET_KEY"):
        init_app(Settings.from_env({}))
    init_app(Settings.from_env({"PHOTOS_ALLOW_DEV_SECRET": "1"}))


def test_the_stack_launcher_lets_its_api_use_the_development_secret(tmp_path):
    api = Api(Settings.from_env({"PHOTOS_STACK_DIR": str(tmp_path)}))
    assert api.environment()["PHOTOS_ALLOW_DEV_SECRET"] == "1"


def test_the_previous_key_still_verifies_cursors_while_new_ones_are_signed_with_the_new_key():
    old = CursorCodec("old key")
    issued_before = old.encode("followers", {"b": 0, "a": 7})
    rotated = wiring.cursor_codec(
        Settings.from_env({"PHOTOS_SECRET_KEY": "new key", "PHOTOS_SECRET_KEY_PREVIOUS": "old key"}))
    assert rotated.decode("followers", issued_before) == {"b": 0, "a": 7}
    issued_after = rotated.encode("followers", {"b": 0, "a": 8})
    assert CursorCodec("new key").decode("followers", issued_after) == {"b": 0, "a": 8}
    with pytest.raises(BadRequest):
        old.decode("followers", issued_after)


def test_once_the_previous_key_is_dropped_its_cursors_are_invalid():
    issued_before = CursorCodec("old key").encode("followers", {"b": 0, "a": 7})
    for settings in ({"PHOTOS_SECRET_KEY": "new key"},
                     {"PHOTOS_SECRET_KEY": "new key", "PHOTOS_SECRET_KEY_PREVIOUS": "another key"}):
        with pytest.raises(BadRequest) as err:
            wiring.cursor_codec(Settings.from_env(settings)).decode("followers", issued_before)
        assert err.value.code == "invalid_cursor"
