"""The fault suite's short version (bench/faults.py --short) as part of the test suite: Darkroom as
separate processes through a kill -9 of every part, a nats-server restart, an orchestrator away past
the duplicate window and a full disk, then every check of the suite. About a minute; `-m "not
faults"` leaves it out. The seed is fixed so a failure can be run again (FAULTS_SEED picks another)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

FAULTS = Path(__file__).resolve().parents[2] / "bench" / "faults.py"
SEED = os.environ.get("FAULTS_SEED", "1")

pytestmark = pytest.mark.faults


async def test_darkroom_keeps_every_promise_through_the_short_fault_schedule(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FAULTS),
        "--short",
        "--seed",
        SEED,
        "--keep",
        str(tmp_path / "run"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(child.communicate(), 600)
    except TimeoutError:
        child.terminate()
        out, _ = await child.communicate()
        pytest.fail("the fault suite did not finish within 10 minutes:\n" + out.decode(errors="replace"))
    report = out.decode(errors="replace")
    assert child.returncode == 0, report
    assert "; lost 0; duplicated 0;" in report, report
