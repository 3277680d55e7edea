"""`POST /api/projects/{folder}/upload`: streamed to disk, checked per file, one task per upload."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, AsyncIterator, Callable, Literal

import msgspec
from aiohttp import hdrs, web
from aiohttp.helpers import parse_mimetype

from ..kernel.events import PhotoFileAdded, PhotoSidecarAdded
from ..kernel.folders import move_to_trash, projects_root, sha256_of, sync_folder
from ..kernel.ids import new_id
from ..kernel.photos import basename, content_mismatch, kind_of, printable, sidecar_photo, unsafe_name, upload_temp
from ..projector.views import ProjectRow
from .claims import Undecided, claim, lives_in
from .deps import Deps, caught_up, deps, project_of
from .errors import error, read_json, respond
from .multipart import MalformedBody, Part, Parts
from .params import query_of
from .routes import Routes
from .tasks import request_task

routes = Routes()

CHUNK = 1 << 20  # written and hashed at a time, off the event loop
HEAD = 16  # bytes enough to tell JPEG, PNG, TIFF and HEIC apart
FREE_MARGIN = 64 << 20  # never fill the disk to the last byte
SIDECAR = "sidecar"  # the kind an accepted sidecar is reported as
MOST_CHECKED = 5000  # files in one upload check: a JSON body well under the api's 1 MB limit
NOT_A_PHOTO = "not an accepted photo file (JPG, RAW, PNG, TIFF, HEIC, WebP) or sidecar (XMP)"


class Accepted(msgspec.Struct):
    name: str
    filename: str
    kind: str
    size: int


class Skipped(msgspec.Struct):
    name: str
    reason: str


class Refused(msgspec.Struct):
    name: str
    error: str


class UploadResult(msgspec.Struct):
    task_id: str | None
    files: list[Accepted]
    skipped: list[Skipped]
    errors: list[Refused]


class UploadOptions(msgspec.Struct, kw_only=True):
    overwrite: bool = False  # replace a different file of the same name; the old one goes to the trash


class Photos(msgspec.Struct):
    """The multipart form: the field `photos`, once per file."""

    photos: list[bytes]


class FileToCheck(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")] | None = None


class UploadCheck(msgspec.Struct, forbid_unknown_fields=True):
    files: Annotated[list[FileToCheck], msgspec.Meta(max_length=MOST_CHECKED)]


class Checked(msgspec.Struct):
    """What an upload of this file would do: `new` (stored), `identical` (skipped), `different`
    (refused unless overwrite=true), `exists` (same name and size, no sha256 given to compare),
    `elsewhere` (its photo lives in `project`), `refused` (`reason`)."""

    name: str
    status: Literal["new", "identical", "different", "exists", "elsewhere", "refused"]
    project: str | None = None
    reason: str | None = None


class DiskFull(Exception):
    pass


@dataclass
class Upload:
    folder: Path
    max_bytes: int
    overwrite: bool
    derive: Callable[[Path], None] | None
    files: list[Accepted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[Refused] = field(default_factory=list)
    announced: list[asyncio.Future] = field(default_factory=list)  # file_added acks, one per saved file
    claimed: set[str] = field(default_factory=set)  # basenames the project has or has claimed
    sidecars: list[Held] = field(default_factory=list)


@dataclass
class Held:
    """A sidecar received whole, under its temporary name until the upload ends."""

    name: str
    photo: str
    temp: Path
    size: int
    digest: str


# The one route a cookie may post a multipart body to (the origin check reads its form).
@routes.post("/api/projects/{folder}/upload", query=UploadOptions, form=Photos)
async def upload(request: web.Request) -> web.Response:
    """Upload photos (multipart field `photos`, repeatable); starts one upload_postprocess task."""
    project = await project_of(request)
    d = deps(request)
    folder = projects_root(d.data_dir) / project.folder
    if not folder.is_dir():
        raise error(409, f"project folder {project.folder!r} is missing on disk")
    if request.content_length and shutil.disk_usage(folder).free < request.content_length + FREE_MARGIN:
        raise error(507, "not enough free disk space for this upload")
    # The raw header: aiohttp's request.content_type parses it with the email package, dear on every request.
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    if parse_mimetype(content_type).type != "multipart":
        raise error(400, "upload must be multipart/form-data with files in the field `photos`")
    state = Upload(
        folder, int(d.config.api.max_upload_mb * (1 << 20)), query_of(request, UploadOptions).overwrite, d.derive
    )
    await caught_up(d)
    disk_full = False
    try:
        parts = Parts(request.content, content_type)
        while (part := await parts.next()) is not None:
            if part.name != "photos" or part.filename is None or part.content_type.startswith("multipart/"):
                continue
            try:
                await _receive(part, parts.content(), state, project.id, d)
            except DiskFull:
                disk_full = True
                state.errors.append(Refused(printable(part.filename), "the disk is full"))
                break
            except MalformedBody as exc:
                state.errors.append(Refused(printable(part.filename), f"the upload broke off inside this file: {exc}"))
                break
    except MalformedBody as exc:
        # What came whole before the body went wrong still counts, as with any per-file problem.
        state.errors.append(Refused("(request body)", f"not a well-formed multipart body: {exc}"))
    finally:
        # What was saved is announced and processed, even when the client went away half-way.
        seq, task_id = await _settle(d, state, project)
    result = UploadResult(task_id, state.files, state.skipped, state.errors)
    if disk_full:
        return respond({"error": "the disk is full", **msgspec.to_builtins(result)}, status=507, seq=seq or None)
    if not state.files and not state.skipped:
        reason = state.errors[0].error if state.errors else "no files in the field `photos`"
        return respond({"error": f"nothing was accepted: {reason}", **msgspec.to_builtins(result)}, status=400)
    return respond(result, status=201, seq=seq or None)


@routes.post("/api/projects/{folder}/upload/check", body=UploadCheck)
async def upload_check(request: web.Request) -> web.Response:
    """Before an upload: per file, whether it is new, identical or different to the one here, or in another project."""
    project = await project_of(request)
    d = deps(request)
    body = await read_json(request, UploadCheck)
    folder = projects_root(d.data_dir) / project.folder
    max_bytes = int(d.config.api.max_upload_mb * (1 << 20))
    await caught_up(d)
    owners = await owners_elsewhere(d, project.id, [f.name for f in body.files])
    checked = []
    for f in body.files:
        problem = name_problem(f.name) or size_problem(f.size, max_bytes)
        if problem:
            checked.append(Checked(f.name, "refused", reason=problem))
        elif (owner := owners.get(photo_of(f.name))) is not None and owner.deleted_at:
            # It comes back with its project: neither here nor movable.
            checked.append(Checked(f.name, "refused", reason=await lives_in(d, photo_of(f.name), owner.id)))
        elif owner is not None:
            checked.append(Checked(f.name, "elsewhere", project=owner.folder))
        else:
            checked.append(Checked(f.name, await _compare(folder / f.name, f)))
    return respond({"files": checked})


async def _compare(target: Path, f: FileToCheck) -> Literal["new", "identical", "different", "exists"]:
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return "new"
    if size != f.size:
        return "different"
    if f.sha256 is None:
        return "exists"
    return "identical" if await asyncio.to_thread(sha256_of, target) == f.sha256 else "different"


def photo_of(name: str) -> str:
    """The photo a file belongs to: its basename, or for a sidecar the photo it describes."""
    return sidecar_photo(name) or basename(name)


def name_problem(name: str) -> str | None:
    """Why the upload refuses a file by its name alone, or None."""
    problem = unsafe_name(name)
    if problem is None and kind_of(name) is None and sidecar_photo(name) is None:
        problem = NOT_A_PHOTO
    return problem


def size_problem(size: int, max_bytes: int) -> str | None:
    if size > max_bytes:
        return f"file is larger than {max_bytes >> 20} MB"
    return "file is empty" if size == 0 else None


async def owners_elsewhere(d: Deps, project_id: str, names: list[str]) -> dict[str, ProjectRow]:
    """Photo → the other project it lives in (a basename lives in one project only; a deleted one keeps
    its own until it is purged)."""
    owners: dict[str, ProjectRow] = {}
    for photo in await d.read.photos_named(list(dict.fromkeys(photo_of(n) for n in names))):
        if photo.project_id != project_id and photo.filename not in owners:
            owner = await d.read.project(photo.project_id)
            if owner is not None:
                owners[photo.filename] = owner
    return owners


async def _settle(d: Deps, state: Upload, project: ProjectRow) -> tuple[int, str | None]:
    """Place the sidecars whose photo is here, wait for every file_added, then start the task over
    the saved photos' basenames."""
    await _place_sidecars(d, state, project.id)
    seq = 0
    for future in state.announced:
        seq = await d.bus.confirm(future)
    basenames = list(dict.fromkeys(f.filename for f in state.files if f.kind != SIDECAR))
    if not basenames:
        return seq, None
    task, seq = await request_task(d, "upload_postprocess", project, basenames)
    return seq, task.id


async def _receive(part: Part, content: AsyncIterator[memoryview], state: Upload, project_id: str, d: Deps) -> None:
    name = part.filename or ""
    sidecar = sidecar_photo(name)  # the photo a sidecar belongs to; None for a photo file
    photo = photo_of(name)
    problem = name_problem(name)
    if problem is None and photo not in state.claimed:
        holders = {p.project_id for p in await d.read.photos_named([photo])}
        if project_id in holders:
            state.claimed.add(photo)  # the project has it: no other project can take it
        elif holders:
            problem = await lives_in(d, photo, next(iter(holders)))
    if problem:
        state.errors.append(Refused(printable(name), problem))
        return
    temp = state.folder / upload_temp(new_id())
    handed_on = False  # a sidecar's file waits under its temporary name for the end of the upload
    try:
        size, digest, problem = await write_part(content, temp, name, state.max_bytes)
        problem = problem or size_problem(size, state.max_bytes)
        if problem:
            state.errors.append(Refused(name, problem))
            return
        if sidecar is not None:
            # A sidecar waits for the end of the upload: its photo may come after it.
            state.sidecars.append(Held(name, photo, temp, size, digest))
            handed_on = True
            return
        if (refusal := await _claim(d, state, project_id, photo)) is not None:
            state.errors.append(Refused(name, refusal))
            return
        placed, replaced = await _place(state, temp, name, digest)
    finally:
        if not handed_on:
            temp.unlink(missing_ok=True)
    if not placed:
        return
    kind = kind_of(name) or "other"
    state.files.append(Accepted(name, photo, kind, size))
    # Announced as it lands, not at the end: a folder_check meanwhile must not take it for a stray file.
    state.announced.append(
        await d.bus.post(
            PhotoFileAdded(
                source="user",
                project_id=project_id,
                filename=photo,
                name=name,
                kind=kind,
                size=size,
                sha256=digest,
                replaced=replaced,
            )
        )
    )
    if state.derive is not None:
        state.derive(state.folder / name)


async def _claim(d: Deps, state: Upload, project_id: str, photo: str) -> str | None:
    """None once the project has the photo's basename, else why the file is refused. Decided when
    the file is whole, just before it is placed: a claim is followed at once by its file_added."""
    if photo in state.claimed:
        return None
    try:
        holder = await claim(d, project_id, photo)
    except Undecided as exc:
        return str(exc)
    if holder is not None:
        return await lives_in(d, photo, holder)
    state.claimed.add(photo)
    return None


async def _place(state: Upload, temp: Path, name: str, digest: str) -> tuple[bool, str | None]:
    """Move a received file to its name, its folder synced after (the name survives a power cut before
    its event says it is there): skipped when identical to the one there, refused when different unless
    overwriting (the old one then goes to the trash, whose name is returned)."""
    target = state.folder / name
    replaced = None
    if target.exists():
        if await asyncio.to_thread(sha256_of, target) == digest:
            state.skipped.append(Skipped(name, "identical to the file already there"))
            return False, None
        if not state.overwrite:
            state.errors.append(
                Refused(name, "a different file with this name exists; upload with overwrite=true to replace it")
            )
            return False, None
        replaced = move_to_trash(state.folder, name)
    os.replace(temp, target)
    await asyncio.to_thread(sync_folder, state.folder)
    return True, replaced


async def _place_sidecars(d: Deps, state: Upload, project_id: str) -> None:
    """Each sidecar goes beside its photo, uploaded before or in this upload; without one it is refused,
    as a sidecar is never a photo of its own."""
    here = {f.filename for f in state.files}
    for held in state.sidecars:
        try:
            if held.photo not in here and await d.read.photo(project_id, held.photo) is None:
                state.errors.append(
                    Refused(
                        held.name, f"no photo {held.photo!r} in this project: upload a sidecar with or after its photo"
                    )
                )
                continue
            placed, replaced = await _place(state, held.temp, held.name, held.digest)
            if placed:
                state.files.append(Accepted(held.name, held.photo, SIDECAR, held.size))
                state.announced.append(
                    await d.bus.post(
                        PhotoSidecarAdded(
                            source="user",
                            project_id=project_id,
                            filename=held.photo,
                            name=held.name,
                            size=held.size,
                            sha256=held.digest,
                            replaced=replaced,
                        )
                    )
                )
        finally:
            held.temp.unlink(missing_ok=True)


def _store(digest, out, pieces: list[memoryview], last: bool = False) -> None:
    for piece in pieces:
        digest.update(piece)
        out.write(piece)
    if last:
        out.flush()
        os.fdatasync(out.fileno())  # an upload answers once its files are on the disk, not in the cache


async def write_part(
    content: AsyncIterator[memoryview], temp: Path, name: str, max_bytes: int
) -> tuple[int, str, str | None]:
    """Stream one part to `temp`; never the whole file in memory. Returns size, sha256, problem."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    pieces: list[memoryview] = []
    held = 0
    try:
        with temp.open("wb") as out:
            async for piece in content:
                if len(head) < HEAD:
                    head += piece[: HEAD - len(head)]
                    if len(head) == HEAD and (mismatch := content_mismatch(name, head)):
                        return size, "", mismatch
                size += len(piece)
                if size > max_bytes:
                    return size, "", size_problem(size, max_bytes)
                pieces.append(piece)
                held += len(piece)
                if held >= CHUNK:
                    await asyncio.to_thread(_store, digest, out, pieces)  # both release the GIL
                    pieces, held = [], 0
            if len(head) < HEAD and head and (mismatch := content_mismatch(name, head)):
                return size, "", mismatch
            await asyncio.to_thread(_store, digest, out, pieces, True)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull() from None
        raise
    return size, digest.hexdigest(), None
