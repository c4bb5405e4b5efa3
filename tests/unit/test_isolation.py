"""The tests' own keyspace, topics and consumer group win over whatever the shell exports (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.settings import Settings
from tests.conftest import LANE, TEST_ENV

REPO = Path(__file__).resolve().parents[2]


def test_the_session_settings_are_the_test_ones(settings: Settings):
    """In the default lane, or in the one PHOTOS_TEST_LANE names (a second run beside this one: docs/testing.md)."""
    assert {name: os.environ[name] for name in TEST_ENV} == TEST_ENV
    own = f"_{LANE}" if LANE else ""
    assert settings.cassandra_keyspace == f"photos_test{own}"
    assert settings.kafka_topic_prefix == (f"photos-test-{LANE}." if LANE else "photos-test.")
    assert settings.streams_app_id == f"photos-test-streams{own.replace('_', '-')}"
    assert settings.media_dir == str(REPO / ".stack" / "test-media") + own.replace("_", "-")


def run_session_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{Path(__file__).relative_to(REPO)}::test_the_session_settings_are_the_test_ones"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )


def test_a_lane_gets_a_keyspace_topics_group_and_media_of_its_own_and_a_bad_name_is_refused():
    session = run_session_check({"PHOTOS_TEST_LANE": "zz9"})
    assert session.returncode == 0, session.stdout + session.stderr
    refused = run_session_check({"PHOTOS_TEST_LANE": "Bad-Lane"})
    assert refused.returncode != 0 and "PHOTOS_TEST_LANE='Bad-Lane'" in refused.stdout + refused.stderr


def test_a_dev_system_exported_in_the_shell_does_not_reach_the_tests():
    """A pytest session started from a shell that exports the dev system's values (the defaults) for
    every TEST_ENV entry: the fixtures still see the test settings."""
    dev = Settings.from_env({})
    shell = {name: str(getattr(dev, name.removeprefix("PHOTOS_").lower())) for name in TEST_ENV}
    assert shell["PHOTOS_CASSANDRA_KEYSPACE"] == "photos"  # the dev keyspace, as `photos-stack up` uses it
    session = run_session_check(shell)
    assert session.returncode == 0, session.stdout + session.stderr
    assert "1 passed" in session.stdout
