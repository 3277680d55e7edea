"""Image work for jobs: make_derivatives in the image processes, through the worker's gate, one run per
photo at a time."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..kernel.config import ProcessingConfig
from ..kernel.folders import derivative_paths
from ..kernel.pagecache import let_go
from ..kernel.photos import kind_of
from ..kernel.supervise import retrieved
from ..kernel.vocabulary import Lane
from .context import JobCanceledError
from .gate import ImageGate
from .imaging import Metadata, Spec, make_derivatives

# An upload's runs wait in the priority lane: the photographer is looking at the upload.
UPLOAD_LANE: Lane = "priority"


def outputs_of(source: Path) -> tuple[Path, Path]:
    return derivative_paths(source.parent, source.name.rpartition(".")[0])


def up_to_date(source: Path, outputs: tuple[Path, ...]) -> bool:
    try:
        made = min(p.stat().st_mtime_ns for p in outputs)
        return made >= source.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def spec_of(p: ProcessingConfig) -> Spec:
    return Spec(p.thumbnail.max_dim, p.thumbnail.quality, p.preview.max_dim, p.preview.quality, p.max_megapixels)


def signature(path: Path) -> tuple[int, int, int]:
    """Which file a path names now: a replaced or rewritten file has another."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class Run:
    source: Path
    signature: tuple[int, int, int]
    future: asyncio.Future[Metadata] = field(init=False)
    # Whether each job taking the run has been canceled: one no job wants any more never starts.
    canceled: list[Callable[[], bool]] = field(default_factory=list)

    def admit(self) -> None:
        if self.canceled and all(canceled() for canceled in self.canceled):
            raise JobCanceledError()


class Derivations:
    """make_derivatives in the image processes, one run per photo at a time. The upload starts a run
    as each file lands (when the worker shares its process), so image work overlaps the rest of the
    upload; the job then takes that run over instead of decoding the file again."""

    KEEP = 1024  # finished runs nobody took (their task was canceled) kept at most

    def __init__(self, gate: ImageGate, spec: Spec) -> None:
        self.gate = gate
        self.spec = spec
        self.runs: dict[Path, Run] = {}  # by the photo's thumbnail path

    def prefetch(self, source: Path) -> None:
        """Start on a JPG the upload just saved: a JPG is its photo's source (derivative_source), known
        without listing the folder on the upload's path. Other kinds wait for their job."""
        if kind_of(source.name) != "jpg":
            return
        try:
            self.start(source, UPLOAD_LANE)
        except FileNotFoundError:  # removed meanwhile: its job finds it gone
            pass

    def start(self, source: Path, lane: Lane, canceled: Callable[[], bool] | None = None) -> Run:
        """The run deriving `source` as it is now: the one already going, else a new one in `lane`,
        which waits for an older run of the same photo so that one cannot overwrite its files
        afterwards. `canceled`: the taking job's flag (a prefetch has none: it is always wanted)."""
        thumb, preview = outputs_of(source)
        now = signature(source)
        run = self.runs.pop(thumb, None)
        if run is None or run.source != source or run.signature != now:
            old, run = run, Run(source, now)
            run.future = asyncio.ensure_future(self._derive(old, run, thumb, preview, lane))
            run.future.add_done_callback(retrieved)
        if canceled is not None:
            run.canceled.append(canceled)
        self.runs[thumb] = run  # (re)inserted last: the oldest untaken runs go first
        for key in [k for k, r in self.runs.items() if r.future.done()][: max(0, len(self.runs) - self.KEEP)]:
            del self.runs[key]
        return run

    def pending(self, source: Path) -> bool:
        """A run of this photo nobody took yet: its files may look current, its events are still due."""
        return outputs_of(source)[0] in self.runs

    async def take(self, source: Path, lane: Lane, canceled: Callable[[], bool]) -> Metadata:
        """Derive `source` for a job of `lane`; a run that finished before is used only while its files
        are current. JobCanceledError: every job that wanted the run was canceled before it started."""
        outputs = outputs_of(source)
        run = self.start(source, lane, canceled)
        if run.future.done() and run.future.exception() is None and not up_to_date(source, outputs):
            del self.runs[outputs[0]]
            run = self.start(source, lane, canceled)
        try:
            return await run.future
        finally:
            if self.runs.get(outputs[0]) is run:
                del self.runs[outputs[0]]  # taken: a later job on this photo derives it afresh

    async def _derive(self, old: Run | None, run: Run, thumb: Path, preview: Path, lane: Lane) -> Metadata:
        if old is not None:
            await asyncio.wait([old.future])
        meta = await self.gate.run(
            lane, make_derivatives, str(run.source), str(thumb), str(preview), self.spec, admit=run.admit
        )
        # Off the photo's path to its thumbnail: a file copied in by hand is written to the disk first.
        asyncio.get_running_loop().run_in_executor(None, let_go, run.source).add_done_callback(retrieved)
        return meta
