"""Who has a basename. A basename lives in one project only (CONTRACT §2): before a file is saved
under a basename its project does not have yet, the project claims it, and JetStream stores the
claim only if the last claim on that basename's subject is the one the claimant saw. Two uploads
of one basename to two projects at the same moment: one claim is stored, the other is refused."""

from __future__ import annotations

import time

from ..kernel.clock import parse_iso
from ..kernel.events import BasenameClaimed
from ..kernel.messages import Conflict, Expect
from ..kernel.ownership import stored_claim
from ..kernel.subjects import photo_subject, subject_for
from .deps import Deps

SETTLE_S = 30.0  # a claim's file is announced moments after it: a younger claim may still be on its way
CATCH_UP_S = 2.0
ATTEMPTS = 4


class Undecided(Exception):
    """Who has the basename cannot be told right now; the file is refused, and a retry may succeed."""


def may_take(project_id: str, last: BasenameClaimed | None, settled: bool, others_having_it: bool) -> bool:
    """Whether a project may claim a basename over `last`, the newest claim on it (None: none readable).
    The read model says who has it now, once the last claim has `settled`: its photo has an event
    after it, or it is too old for its file still to come."""
    if others_having_it:
        return False
    return last is None or last.project_id == project_id or settled


async def claim(d: Deps, project_id: str, filename: str) -> str | None:
    """Claim `filename` for the project: None once it is the project's, else the id of the project
    that has it (or is saving it)."""
    expected = 0  # first, as if it was never claimed: one round trip for a new basename
    for _ in range(ATTEMPTS):
        event = BasenameClaimed(project_id=project_id, source="user", filename=filename)
        subject = subject_for(event)
        try:
            await d.bus.publish(event, expect=Expect(subject, expected))
            return None
        except Conflict:
            pass
        stored = await d.bus.last_on(subject)
        expected = stored.seq if stored is not None else 0
        last = stored_claim(d.bus, stored.data) if stored is not None else None
        settled = last is not None and await _settled(d, last, expected)
        if not await d.read.wait_for(await d.bus.last_seq(), CATCH_UP_S):
            raise Undecided(f"cannot tell who has {filename} while the read model is behind the log; try again")
        others = {p.project_id for p in await d.read.photos_named([filename])} - {project_id}
        if not may_take(project_id, last, settled, bool(others)):
            return next(iter(others)) if others or last is None else last.project_id
    raise Undecided(f"{filename} is being claimed by other uploads at this moment; try again")


async def _settled(d: Deps, last: BasenameClaimed, seq: int) -> bool:
    if time.time() - parse_iso(last.at).timestamp() >= SETTLE_S:
        return True
    latest = await d.bus.last_on(photo_subject(last.project_id or "", last.filename))
    return latest is not None and latest.seq > seq


async def lives_in(d: Deps, filename: str, project_id: str) -> str:
    """Why a file under this basename is refused: the folder of the project that has it."""
    project = await d.read.project(project_id)
    if project is not None and project.deleted_at:  # its basenames stay its own until it is purged
        return (
            f"{filename} belongs to the deleted project {project.folder!r} until it is purged; "
            "restore that project to move the photo"
        )
    return f"{filename} already lives in project {project.folder if project else project_id!r}"
