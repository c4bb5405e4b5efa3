import pytest

from app.settings import Settings


def test_defaults_point_at_the_local_stack():
    settings = Settings.from_env({})
    assert settings.cassandra_hosts == ("127.0.0.1",)
    assert settings.api_port == 8080


def test_environment_variables_override_with_their_types():
    settings = Settings.from_env(
        {"PHOTOS_API_PORT": "9000", "PHOTOS_CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2", "PHOTOS_REDIS_TIMEOUT_S": "1.5"}
    )
    assert settings.api_port == 9000
    assert settings.cassandra_hosts == ("10.0.0.1", "10.0.0.2")
    assert settings.redis_timeout_s == 1.5


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ValueError, match="PHOTOS_API_PORT"):
        Settings.from_env({"PHOTOS_API_PORT": "eighty"})


def test_the_commit_log_mode_is_one_cassandra_knows():
    assert Settings.from_env({}).cassandra_commitlog_sync == "batch"
    assert Settings.from_env({"PHOTOS_CASSANDRA_COMMITLOG_SYNC": "group"}).cassandra_commitlog_sync == "group"
    with pytest.raises(ValueError, match="PHOTOS_CASSANDRA_COMMITLOG_SYNC='sometimes'"):
        Settings.from_env({"PHOTOS_CASSANDRA_COMMITLOG_SYNC": "sometimes"})


def test_the_development_secret_is_refused_unless_a_development_setting_allows_it():
    for environ in ({}, {"PHOTOS_SECRET_KEY": "local-development-secret"}, {"PHOTOS_SECRET_KEY": ""},
                    {"PHOTOS_ALLOW_DEV_SECRET": "0"}):
        with pytest.raises(ValueError, match="PHOTOS_SECRET_KEY") as err:
            Settings.from_env(environ).require_own_secret()
        assert "PHOTOS_ALLOW_DEV_SECRET=1" in str(err.value)  # says what to set
    Settings.from_env({"PHOTOS_ALLOW_DEV_SECRET": "1"}).require_own_secret()
    Settings.from_env({"PHOTOS_SECRET_KEY": "a long random value"}).require_own_secret()


def test_each_agent_may_have_its_own_attempt_limit():
    settings = Settings.from_env({"PHOTOS_STREAMS_MAX_ATTEMPTS": "4",
                                  "PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT": "feed_fanout=10, trending=1"})
    assert [settings.streams_attempts(agent) for agent in ("feed_fanout", "trending", "like_counts")] == [10, 1, 4]
    for bad in ("feed_fanout", "feed_fanout=0", "=3", "trending=many"):
        with pytest.raises(ValueError, match="PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT"):
            Settings.from_env({"PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT": bad})
    with pytest.raises(ValueError, match="PHOTOS_STREAMS_MAX_ATTEMPTS must be at least 1"):
        Settings.from_env({"PHOTOS_STREAMS_MAX_ATTEMPTS": "0"})


def test_an_attempt_limit_for_an_agent_that_does_not_exist_stops_the_worker():
    from streams.app import create_app

    with pytest.raises(ValueError, match="names no agent: like_count"):
        create_app(Settings.from_env({"PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT": "like_count=3"}))
