"""What a photographer does meanwhile: uploads real photos, unticks and reticks them, commits.
The ledger keeps what the server acknowledged, which is what must never be lost."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

REQUEST_TIMEOUT_S = 30.0
TRANSIENT = ("the disk is full",)  # a file refused for this is sent again later


@dataclass
class Ledger:
    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)  # (folder, name) -> sha256
    waiting: dict[tuple[str, str], bytes] = field(default_factory=dict)  # sent, not acknowledged yet
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # refused for good, with why
    statuses: Counter = field(default_factory=Counter)  # (method, status) of every answer
    unanswered: Counter = field(default_factory=Counter)  # requests without an answer, by method
    uploads: int = 0  # upload requests answered 201
    commits: int = 0  # commits that started a task
    unticked: set[tuple[str, str]] = field(default_factory=set)  # (folder, basename) we last unticked
    anomalies: Counter = field(default_factory=Counter)  # answers a user would not expect, by what they were

    def server_errors(self) -> Counter:
        return Counter({status: n for (_, status), n in self.statuses.items() if status >= 500})


def sample_photos(root: Path) -> list[tuple[str, bytes]]:
    """The repo's real photos: (file name, bytes)."""
    return sorted((p.name, p.read_bytes()) for p in root.rglob("*.jpg"))


class Load:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        rng: random.Random,
        photos: list[tuple[str, bytes]],
        ledger: Ledger,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.rng = rng
        self.photos = photos
        self.ledger = ledger
        self.folders: list[str] = []
        self._made = 0

    async def call(self, method: str, path: str, **kwargs) -> tuple[int, object] | None:
        """One request; (status, body) or None when no answer came (the api is down, killed mid-way)."""
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            async with self.http.request(method, self.base_url + path, timeout=timeout, **kwargs) as response:
                body = await response.json() if response.content_type == "application/json" else await response.text()
                self.ledger.statuses[(method, response.status)] += 1
                return response.status, body
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            self.ledger.unanswered[method] += 1
            return None

    async def create_project(self, name: str, deadline_s: float = 60.0) -> str:
        """POST it until it is there; a project the server made without saying which is looked up
        by name rather than made again (a second POST would make `name (2)`)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_s
        made = False
        while loop.time() < until:
            folder = await self._project_named(name)
            if folder is None and not made:
                answer = await self.call("POST", "/api/projects", json={"name": name})
                if answer and answer[0] == 201 and isinstance(answer[1], dict) and answer[1].get("project"):
                    folder = answer[1]["project"]["folder"]
                elif answer and answer[0] == 201:
                    made = True
                    self.ledger.anomalies[f"POST /api/projects answered 201 with {answer[1]!r:.60}"] += 1
            if folder is not None:
                self.folders.append(folder)
                return folder
            await asyncio.sleep(0.5)
        raise RuntimeError(f"could not create project {name!r} within {deadline_s:g}s")

    async def _project_named(self, name: str) -> str | None:
        answer = await self.call("GET", "/api/projects")
        if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
            return None
        return next((p["folder"] for p in answer[1]["projects"] if p["name"] == name), None)

    async def listed(self, folder: str) -> dict[str, list[str]] | None:
        """The project's photos as the API lists them: basename -> its files (None: no answer)."""
        photos: dict[str, list[str]] = {}
        cursor = ""
        while True:
            answer = await self.call("GET", f"/api/projects/{quote(folder)}/photos?limit=1000" + cursor)
            if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
                return None
            photos.update({p["filename"]: p["files"] for p in answer[1]["photos"]})
            if not answer[1].get("next_cursor"):
                return photos
            cursor = f"&cursor={quote(answer[1]['next_cursor'])}"

    def new_files(self, folder: str) -> list[tuple[str, bytes]]:
        """1-3 photos with names no project has (a basename lives in one project only)."""
        out = []
        for _ in range(self.rng.randint(1, 3)):
            name, data = self.rng.choice(self.photos)
            self._made += 1
            out.append((f"F{self._made:05d}_{name}", data))
        for name, data in out:
            self.ledger.waiting[(folder, name)] = data
        return out

    async def upload(self, folder: str, files: list[tuple[str, bytes]]) -> None:
        form = aiohttp.FormData()
        for name, data in files:
            form.add_field("photos", data, filename=name, content_type="image/jpeg")
        answer = await self.call("POST", f"/api/projects/{quote(folder)}/upload", data=form)
        if answer is None or not isinstance(answer[1], dict):
            return  # still waiting: sent again later
        status, body = answer
        if status == 201:
            self.ledger.uploads += 1
        for accepted in body.get("files", []):
            self._acknowledge(folder, accepted["name"])
        for skipped in body.get("skipped", []):
            self._acknowledge(folder, skipped["name"])
        for refused in body.get("errors", []):
            key = (folder, refused["name"])
            if key in self.ledger.waiting and not any(t in refused["error"] for t in TRANSIENT):
                self.ledger.refused[key] = refused["error"]
                del self.ledger.waiting[key]

    def _acknowledge(self, folder: str, name: str) -> None:
        data = self.ledger.waiting.pop((folder, name), None)
        if data is not None:
            self.ledger.acknowledged[(folder, name)] = hashlib.sha256(data).hexdigest()

    async def send_waiting(self, limit: int = 3) -> None:
        """Files sent before without an answer go again (identical ones are then skipped as such)."""
        by_folder: dict[str, list[tuple[str, bytes]]] = {}
        for (folder, name), data in list(self.ledger.waiting.items()):
            by_folder.setdefault(folder, []).append((name, data))
        for folder, files in by_folder.items():
            for start in range(0, len(files), limit):
                await self.upload(folder, files[start : start + limit])

    async def uploader(self, pause: tuple[float, float]) -> None:
        while True:
            if self.ledger.waiting:
                await self.send_waiting()
            folder = self.rng.choice(self.folders)
            await self.upload(folder, self.new_files(folder))
            await asyncio.sleep(self.rng.uniform(*pause))

    async def keeper(self, pause: tuple[float, float]) -> None:
        """Unticks the JPG of a photo or two, now and then ticks one again."""
        while True:
            await asyncio.sleep(self.rng.uniform(*pause))
            folder = self.rng.choice(self.folders)
            if self.ledger.unticked and self.rng.random() < 0.25:
                target = self.rng.choice(sorted(self.ledger.unticked))
                keep = True
            else:
                names = sorted(n for f, n in self.ledger.acknowledged if f == folder)
                if not names:
                    continue
                target = (folder, self.rng.choice(names).rsplit(".", 1)[0])
                keep = False
            answer = await self.call(
                "PUT",
                f"/api/projects/{quote(target[0])}/keep",
                json={"updates": [{"filename": target[1], "keep_jpg": keep}]},
            )
            if answer and answer[0] == 200:
                (self.ledger.unticked.discard if keep else self.ledger.unticked.add)(target)

    async def committer(self, pause: tuple[float, float]) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(*pause))
            folder = self.rng.choice(self.folders)
            answer = await self.call("POST", f"/api/projects/{quote(folder)}/commit-changes")
            if answer and answer[0] == 202:
                self.ledger.commits += 1
                self.ledger.unticked = {t for t in self.ledger.unticked if t[0] != folder}

    async def settle(self, deadline_s: float) -> None:
        """After the faults: what is still unacknowledged is sent until the server takes it."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_s
        while self.ledger.waiting and loop.time() < until:
            await self.send_waiting()
            if self.ledger.waiting:
                await asyncio.sleep(1.0)
