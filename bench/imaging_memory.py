#!/usr/bin/env python3
"""Peak RSS of one image process deriving one large PNG or TIFF, by bands (as the worker does) and
decoded whole (as it did before, for comparison).

Each source is derived once per mode in a fresh spawned process set up like the worker's pool
(init_worker); the process reports its own peak (VmHWM) and what it held before starting. Sources,
generated first into a temp dir: --size x --size RGB (a gradient under noise, so it compresses like a
photo), as PNG, uncompressed TIFF (one strip, as Pillow writes it), LZW and deflate TIFF, and a 16-bit
grey TIFF.

    python bench/imaging_memory.py [--size 9400] [--runs 1]

Prints a table: source, file size, then per mode the peak RSS (MB) and CPU seconds, median over --runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from darkroom.kernel.config import ProcessingConfig
from darkroom.worker import imaging
from darkroom.worker.derivations import spec_of
from darkroom.worker.imaging import init_worker, make_derivatives


def generate(folder: Path, size: int) -> list[Path]:
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[..., 0] = (ramp[None, :] + ramp[:, None]) / 2
    rgb[..., 1] = ramp[None, :]
    rgb[..., 2] = ramp[:, None]
    rgb += rng.integers(0, 32, rgb.shape, dtype=np.uint8)
    image = Image.fromarray(rgb)
    sources = [
        folder / "rgb.png",
        folder / "rgb.tif",
        folder / "rgb-lzw.tif",
        folder / "rgb-deflate.tif",
        folder / "grey16-deflate.tif",
    ]
    image.save(sources[0], compress_level=6)
    image.save(sources[1])
    image.save(sources[2], compression="tiff_lzw")
    image.save(sources[3], compression="tiff_adobe_deflate")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(sources[4], compression="tiff_adobe_deflate")
    return sources


def _peak_mb() -> float:
    """VmHWM: this process's own peak (ru_maxrss would carry the parent's over the spawn's exec)."""
    line = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def derive(source: str, out: str, whole: bool) -> tuple[float, float, float]:
    """In the image process: (MB held before, peak MB, CPU seconds: wall time on a shared machine says little)."""
    if whole:
        imaging.reduced = lambda *args: None  # every source decoded whole, as before bands
    before = _peak_mb()
    began = time.process_time()
    make_derivatives(source, f"{out}.webp", f"{out}.jpg", spec_of(ProcessingConfig()))
    return before, _peak_mb(), time.process_time() - began


def measure(source: Path, out: Path, whole: bool) -> tuple[float, float, float]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init_worker) as pool:
        return pool.submit(derive, str(source), str(out), whole).result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=9400)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="darkroom-imaging-") as temp:
        folder = Path(temp)
        sources = generate(folder, args.size)
        print(
            f"{args.size}x{args.size} sources; peak RSS of one image process (MB) and CPU seconds, "
            f"median of {args.runs}"
        )
        print(
            f"{'source':22} {'file MB':>8} {'bands MB':>9} {'cpu s':>6} {'whole MB':>9} {'cpu s':>6}  (held at start)"
        )
        for source in sources:
            row = []
            for whole in (False, True):
                runs = [measure(source, folder / "out", whole) for _ in range(args.runs)]
                row.append((statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs), runs[0][0]))
            (peak, seconds, held), (whole_peak, whole_seconds, _) = row
            print(
                f"{source.name:22} {source.stat().st_size / 1e6:8.0f} {peak:9.0f} {seconds:6.2f} "
                f"{whole_peak:9.0f} {whole_seconds:6.2f}  ({held:.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
