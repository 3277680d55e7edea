"""services/kernel/config.py: defaults < darkroom.toml < environment < flags (CONTRACT §1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from darkroom.kernel.config import Config, ConfigError, load_config

NO_ENV: dict[str, str] = {}


def write_toml(directory: Path, text: str, name: str = "darkroom.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_defaults_match_the_contract(tmp_path):
    c = load_config(tmp_path, environ=NO_ENV)
    assert c.nats.url is None and c.nats.sync_interval == "always" and c.nats.replicas == 1
    p = c.pipeline
    assert (p.max_parallel_jobs, p.priority_only_slots, p.priority_threshold, p.max_attempts, p.job_timeout_s) == (
        64,
        63,
        90,
        3,
        600,
    )
    assert (c.processing.thumbnail.max_dim, c.processing.thumbnail.quality) == (800, 70)
    assert (c.processing.preview.max_dim, c.processing.preview.quality) == (2048, 80)
    assert c.processing.workers == (os.cpu_count() or 1)
    assert c.processing.max_megapixels == 250
    assert (c.maintenance.interval_s, c.maintenance.trash_ttl_s) == (3600, 86400)
    assert c.ui.include_maintenance_jobs is False
    assert (c.api.host, c.api.port, c.api.token, c.api.max_upload_mb) == ("127.0.0.1", 8080, None, 200)
    assert c.up.processes == min(2, os.cpu_count() or 1)  # a second process only where a second core is


def test_up_runs_in_one_or_two_processes(tmp_path):
    assert load_config(tmp_path, environ={"DARKROOM_UP__PROCESSES": "1"}).up.processes == 1
    with pytest.raises(ConfigError, match=r"^up\.processes must be 1 or 2$"):
        load_config(tmp_path, environ={"DARKROOM_UP__PROCESSES": "3"})


def test_missing_data_dir_is_just_defaults(tmp_path):
    assert load_config(tmp_path / "not-yet-created", environ=NO_ENV) == load_config(tmp_path, environ=NO_ENV)


def test_toml_in_data_dir_overrides_defaults_and_keeps_siblings(tmp_path):
    write_toml(tmp_path, "[pipeline]\nmax_parallel_jobs = 6\n[processing.thumbnail]\nquality = 50\n")
    c = load_config(tmp_path, environ=NO_ENV)
    assert c.pipeline.max_parallel_jobs == 6
    assert c.pipeline.priority_only_slots == 5  # sibling default intact: all slots but one
    assert (c.processing.thumbnail.max_dim, c.processing.thumbnail.quality) == (800, 50)
    assert c.processing.preview.max_dim == 2048


def test_environment_overrides_toml(tmp_path):
    write_toml(tmp_path, "[pipeline]\nmax_parallel_jobs = 6\npriority_threshold = 50\n")
    c = load_config(tmp_path, environ={"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": "4"})
    assert c.pipeline.max_parallel_jobs == 4
    assert c.pipeline.priority_threshold == 50  # from the file, not touched by the environment


def test_flags_override_environment_and_toml(tmp_path):
    write_toml(tmp_path, "[api]\nport = 9000\nhost = '0.0.0.0'\n")
    c = load_config(tmp_path, environ={"DARKROOM_API__PORT": "9100"}, overrides={"api.port": 9200, "api.host": None})
    assert c.api.port == 9200
    assert c.api.host == "0.0.0.0"  # an unset flag (None) leaves the lower layers alone


def test_nested_environment_name_leaves_sibling_defaults(tmp_path):
    c = load_config(tmp_path, environ={"DARKROOM_PROCESSING__THUMBNAIL__MAX_DIM": "640"})
    assert c.processing.thumbnail.max_dim == 640
    assert c.processing.thumbnail.quality == 70
    assert c.processing.preview == Config().processing.preview


@pytest.mark.parametrize(
    "name, value, get, expected",
    [
        ("DARKROOM_NATS__URL", "nats://10.0.0.1:4222", lambda c: c.nats.url, "nats://10.0.0.1:4222"),
        ("DARKROOM_NATS__SYNC_INTERVAL", "2m", lambda c: c.nats.sync_interval, "2m"),
        ("DARKROOM_NATS__REPLICAS", "3", lambda c: c.nats.replicas, 3),
        ("DARKROOM_UI__INCLUDE_MAINTENANCE_JOBS", "true", lambda c: c.ui.include_maintenance_jobs, True),
        ("DARKROOM_MAINTENANCE__INTERVAL_S", "0", lambda c: c.maintenance.interval_s, 0),
        ("DARKROOM_PROCESSING__MAX_MEGAPIXELS", "12.5", lambda c: c.processing.max_megapixels, 12.5),
        ("DARKROOM_API__TOKEN", "s3cret", lambda c: c.api.token, "s3cret"),
    ],
)
def test_environment_values_are_converted_to_the_key_type(tmp_path, name, value, get, expected):
    assert get(load_config(tmp_path, environ={name: value})) == expected


def test_unrelated_environment_is_ignored(tmp_path):
    env = {"PATH": "/bin", "HOME": "/root", "DARKROOMX": "1", "darkroom_pipeline__max_parallel_jobs": "9"}
    assert load_config(tmp_path, environ=env) == load_config(tmp_path, environ=NO_ENV)


def test_explicit_config_path_replaces_the_data_dir_file(tmp_path):
    write_toml(tmp_path / "data", "[pipeline]\nmax_attempts = 7\n")
    other = write_toml(tmp_path / "etc", "[pipeline]\nmax_attempts = 9\n", "custom.toml")
    assert load_config(tmp_path / "data", config_path=other, environ=NO_ENV).pipeline.max_attempts == 9
    assert load_config(tmp_path / "data", environ=NO_ENV).pipeline.max_attempts == 7


def test_missing_config_path_stops_start_up(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml does not exist"):
        load_config(tmp_path, config_path=missing, environ=NO_ENV)


def test_invalid_toml_names_the_file(tmp_path):
    path = write_toml(tmp_path, "[pipeline\nmax_parallel_jobs = \n")
    with pytest.raises(ConfigError, match=str(path).replace(".", r"\.")):
        load_config(tmp_path, environ=NO_ENV)


# -- errors name the dotted key -------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, key",
    [
        ({"DARKROOM_PIPELINE__MAX_PARALLEL_JOB": "3"}, "pipeline.max_parallel_job"),
        ({"DARKROOM_PROCESSING__THUMBNAIL__SIZE": "3"}, "processing.thumbnail.size"),
        ({"DARKROOM_COLOURS": "3"}, "colours"),
    ],
)
def test_unknown_environment_key_is_named(tmp_path, environ, key):
    with pytest.raises(ConfigError, match=rf"unknown configuration key {key}$"):
        load_config(tmp_path, environ=environ)


def test_unknown_toml_key_is_named(tmp_path):
    write_toml(tmp_path, "[processing.preview]\nmax_dim = 100\nformat = 'png'\n")
    with pytest.raises(ConfigError, match=r"unknown configuration key processing\.preview\.format"):
        load_config(tmp_path, environ=NO_ENV)


@pytest.mark.parametrize(
    "environ, key",
    [
        ({"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": "four"}, "pipeline.max_parallel_jobs"),
        ({"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": "4.5"}, "pipeline.max_parallel_jobs"),
        ({"DARKROOM_PROCESSING__PREVIEW__QUALITY": "high"}, "processing.preview.quality"),
        ({"DARKROOM_UI__INCLUDE_MAINTENANCE_JOBS": "maybe"}, "ui.include_maintenance_jobs"),
    ],
)
def test_wrong_type_in_environment_names_the_key(tmp_path, environ, key):
    with pytest.raises(ConfigError, match=rf"configuration key {key}\b"):
        load_config(tmp_path, environ=environ)


def test_wrong_type_in_toml_names_the_key(tmp_path):
    write_toml(tmp_path, "[api]\nport = 'eighty'\n")
    with pytest.raises(ConfigError, match=r"configuration key api\.port"):
        load_config(tmp_path, environ=NO_ENV)


def test_a_value_where_a_section_belongs_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"pipeline\.max_parallel_jobs\.x"):
        load_config(tmp_path, environ={"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS__X": "1"})
    write_toml(tmp_path, "pipeline = 3\n")
    with pytest.raises(ConfigError, match=r"configuration key pipeline\b"):
        load_config(tmp_path, environ=NO_ENV)


@pytest.mark.parametrize(
    "environ, words",
    [
        (  # one more than the default slots
            {"DARKROOM_PIPELINE__PRIORITY_LANE_SLOTS": str(Config().pipeline.max_parallel_jobs + 1)},
            "pipeline.priority_lane_slots",
        ),
        (
            {"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": "0", "DARKROOM_PIPELINE__PRIORITY_LANE_SLOTS": "0"},
            "pipeline.max_parallel_jobs",
        ),
        ({"DARKROOM_PIPELINE__PRIORITY_LANE_SLOTS": "-1"}, "pipeline.priority_lane_slots"),
        ({"DARKROOM_PIPELINE__MAX_ATTEMPTS": "0"}, "pipeline.max_attempts"),
        ({"DARKROOM_PIPELINE__JOB_TIMEOUT_S": "0"}, "pipeline.job_timeout_s"),
        ({"DARKROOM_NATS__SYNC_INTERVAL": "sometimes"}, "nats.sync_interval"),
        ({"DARKROOM_NATS__REPLICAS": "2"}, "nats.replicas"),
        ({"DARKROOM_PROCESSING__WORKERS": "0"}, "processing.workers"),
        ({"DARKROOM_API__PORT": "70000"}, "api.port"),
        ({"DARKROOM_MAINTENANCE__INTERVAL_S": "-5"}, "maintenance.interval_s"),
    ],
)
def test_semantic_checks_name_the_key(tmp_path, environ, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(tmp_path, environ=environ)


def test_slots_are_all_priority_only_but_one_unless_said(tmp_path):
    for jobs, priority_only in (("1", 0), ("2", 1), ("12", 11)):
        c = load_config(tmp_path, environ={"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": jobs})
        assert c.pipeline.priority_only_slots == priority_only and c.pipeline.priority_lane_slots is None


def test_priority_lane_slots_may_equal_max_parallel_jobs(tmp_path):
    c = load_config(
        tmp_path, environ={"DARKROOM_PIPELINE__MAX_PARALLEL_JOBS": "3", "DARKROOM_PIPELINE__PRIORITY_LANE_SLOTS": "3"}
    )
    assert (c.pipeline.max_parallel_jobs, c.pipeline.priority_lane_slots, c.pipeline.priority_only_slots) == (3, 3, 3)


def test_a_later_layer_can_fix_an_earlier_one(tmp_path):
    # The check runs once on the merged result: slots=3 in the file is fine with jobs=4 from a flag.
    write_toml(tmp_path, "[pipeline]\npriority_lane_slots = 3\n")
    c = load_config(tmp_path, environ=NO_ENV, overrides={"pipeline.max_parallel_jobs": 4})
    assert c.pipeline.priority_lane_slots == 3


def test_process_environment_is_the_default_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DARKROOM_PIPELINE__MAX_ATTEMPTS", "5")
    assert load_config(tmp_path).pipeline.max_attempts == 5
