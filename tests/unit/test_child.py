"""`darkroom up`'s second process, the pure parts: when it is started again, what it is handed."""

from __future__ import annotations

from pathlib import Path

from darkroom.child import RESTART_WINDOW_S, RESTARTS, child_config, keeps_dying, lines_to_write, read_config
from darkroom.kernel.config import load_config


def test_a_child_is_started_again_until_it_exits_often_within_the_window():
    assert not keeps_dying([100.0], 100.0)
    assert not keeps_dying([100.0, 101.0], 101.0)
    assert keeps_dying([100.0, 101.0, 102.0][:RESTARTS], 100.0 + RESTARTS - 1)
    # Exits long ago do not count: a child that dies once a day is started again every time.
    spread = [n * (RESTART_WINDOW_S + 1) for n in range(RESTARTS * 3)]
    assert not any(keeps_dying(spread[: i + 1], at) for i, at in enumerate(spread))


def test_the_child_gets_ups_configuration_with_the_nats_it_found_and_a_loopback_health_port(tmp_path: Path):
    (tmp_path / "darkroom.toml").write_text('[pipeline]\nmax_parallel_jobs = 3\nplugins = ["a.b"]\n')
    config = load_config(tmp_path, environ={"DARKROOM_PROCESSING__WORKERS": "5"})
    line = child_config(config, "nats://u:p@127.0.0.1:4999", 4321)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line: the photos come after it
    got = read_config(line)
    assert got.nats.url == "nats://u:p@127.0.0.1:4999"
    assert (got.health.host, got.health.port) == ("127.0.0.1", 4321)
    assert (got.pipeline.max_parallel_jobs, got.pipeline.plugins, got.processing.workers) == (3, ["a.b"], 5)
    assert got.api == config.api and got.maintenance == config.maintenance and got.up == config.up


def test_what_up_writes_of_its_childs_stderr_is_one_json_object_a_line():
    own = '{"time":"2026-12-05T00:25:18.834Z","level":"INFO","logger":"darkroom","message":"running"}'
    tracker = [
        "/usr/lib/python3.11/multiprocessing/resource_tracker.py:254: UserWarning: resource_tracker: leaked",
        "  warnings.warn('resource_tracker: There appear to be %d '",
    ]
    assert lines_to_write([own, *tracker, "", own, "{not json}"], "json") == [
        (own, True),
        ("\n".join(tracker), False),
        (own, True),
        ("{not json}", False),
    ]
    # A person reading text reads the child's lines as it wrote them.
    assert lines_to_write(["2026-12-05T00:25:18Z INFO darkroom: running", *tracker], "text") == [
        ("2026-12-05T00:25:18Z INFO darkroom: running", True),
        (tracker[0], True),
        (tracker[1], True),
    ]
