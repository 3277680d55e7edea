"""bench/metrics_scrape.py runs end to end on a small history (so it does not rot between releases)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env


def test_the_scrape_bench_runs_and_reports_both_costs() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "metrics_scrape.py"), "--jobs", "3000", "--runs", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GET /metrics of darkroom up: best" in result.stdout and "before (job durations" in result.stdout
