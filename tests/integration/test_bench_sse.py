"""bench/sse.py runs end to end on a few clients (so it does not rot between releases)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env


def test_the_sse_bench_runs_and_its_stalled_client_loses_nothing() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "sse.py"),
            *("--clients", "20", "--projects", "5", "--rate", "200", "--seconds", "1", "--drain-s", "20"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(0 short of what their project got, 0 resets)" in result.stdout, result.stdout
    assert "200 of 200 item messages, 0 resets, ids in order, none twice: lost nothing" in result.stdout, result.stdout
