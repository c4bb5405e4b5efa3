"""The local servers' configuration files: the commit log keys of each mode, and when a restart is due."""

import pytest

from app.settings import Settings
from infra.configs import commitlog_lines
from infra.services import Cassandra, Redis


def test_each_commit_log_mode_writes_only_its_own_keys():
    assert commitlog_lines("batch", 10) == "commitlog_sync: batch"
    assert commitlog_lines("group", 15) == "commitlog_sync: group\ncommitlog_sync_group_window: 15ms"
    assert commitlog_lines("periodic", 10000) == "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms"
    with pytest.raises(ValueError):
        commitlog_lines("sometimes", 1)


def test_a_changed_setting_marks_the_running_servers_configuration_stale(tmp_path):
    base = {"PHOTOS_STACK_DIR": str(tmp_path)}
    node = Cassandra(Settings.from_env(base))
    assert node.config_changed()  # nothing written yet
    node.write_config_files()
    assert not node.config_changed()
    assert "commitlog_sync: batch\n" in node.config_file.read_text()
    assert "concurrent_writes: 64\n" in node.config_file.read_text()

    Redis(Settings.from_env(base)).write_config_files()
    changed = Settings.from_env({**base, "PHOTOS_CASSANDRA_COMMITLOG_SYNC": "periodic"})
    assert Cassandra(changed).config_changed()
    assert not Redis(changed).config_changed()  # a Cassandra setting restarts Cassandra only
