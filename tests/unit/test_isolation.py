"""The tests' own keyspace, topics and consumer group win over whatever the shell exports (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.settings import Settings
from tests.conftest import TEST_ENV

REPO = Path(__file__).resolve().parents[2]


def test_the_session_settings_are_the_test_ones(settings: Settings):
    assert {name: os.environ[name] for name in TEST_ENV} == TEST_ENV
    assert settings.cassandra_keyspace == "photos_test"
    assert settings.kafka_topic_prefix == "photos-test."
    assert settings.streams_app_id == "photos-test-streams"
    assert settings.media_dir == str(REPO / ".stack" / "test-media")


def test_a_dev_system_exported_in_the_shell_does_not_reach_the_tests():
    """A pytest session started from a shell that exports the dev system's values (the defaults) for
    every TEST_ENV entry: the fixtures still see the test settings."""
    dev = Settings.from_env({})
    shell = {name: str(getattr(dev, name.removeprefix("PHOTOS_").lower())) for name in TEST_ENV}
    assert shell["PHOTOS_CASSANDRA_KEYSPACE"] == "photos"  # the dev keyspace, as `photos-stack up` uses it
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{Path(__file__).relative_to(REPO)}::test_the_session_settings_are_the_test_ones"],
        cwd=REPO, env={**os.environ, **shell}, capture_output=True, text=True, timeout=120,
    )
    assert session.returncode == 0, session.stdout + session.stderr
    assert "1 passed" in session.stdout
