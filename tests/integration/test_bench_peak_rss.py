"""The derivatives bench's peak RSS (bench/derivatives.py PeakRss): a phase counts only what its
processes held while it ran, and catches a peak that came and went between two looks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from derivatives import PeakRss  # noqa: E402

CHILD = """
import sys
def hold(mb):
    block = bytearray(mb << 20)
    block[::4096] = b"x" * len(block[::4096])  # touched: resident, not just reserved
    return block
hold(160)  # before the phase, and gone
print("ready", flush=True)
sys.stdin.readline()
hold(60)  # during the phase, and gone before it ends
print("done", flush=True)
sys.stdin.readline()
"""


def test_a_phase_counts_its_own_peak_only() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with PeakRss(child.pid) as rss:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
        assert 60 <= rss.peak.total_mb < 160, rss.peak
        assert rss.peak.single_mb == rss.peak.total_mb and rss.peak.single_is_main
    finally:
        child.stdin.close()
        child.wait(timeout=10)
