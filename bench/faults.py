#!/usr/bin/env python3
"""The fault suite: Darkroom as separate OS processes under faults, then checks that nothing broke.

    python bench/faults.py [--short] [--seed N] [--rounds N] [--keep DIR]

A real nats-server (with its user and password) and `darkroom api`, `projector`, `worker` and two
`orchestrator`s, each restarted as systemd restarts a unit. While a photographer's load runs (real
photos uploaded to three projects, JPGs unticked and ticked again, commits), a schedule drawn from
the seed applies, one at a time: kill -9 of each part, a nats-server restart, one orchestrator
stopped for longer than the duplicate window, and a disk that fills and frees. Then the load stops,
and the suite checks:

  no original lost       every file the server acknowledged is in its folder or, trashed, in its
                         trash; whatever is in a trash has its event (it is listed and restorable)
  no effect twice        no job with two outcomes, nothing of a job after its outcome, no task
                         ended twice, one maintenance per project per interval, nothing trashed but
                         by a commit of a variant the user unticked
  every task ended       within the deadline
  read model caught up   /readyz answers 200 (the read model within a second of the log)
  replay --verify        `darkroom replay --verify` finds the rebuilt read model equal
  SSE exact              a client connected throughout (reconnecting with Last-Event-ID after the
                         api was killed) saw every message of the outbox once, in order
  clean stops            every part ends on SIGTERM within 10 s, and leaves no process behind

It prints a table of figures (kills per part, lost, duplicated, seconds from a restarted
nats-server answering to the next job completing, tasks, time) and exits 1 when a check fails.
The seed fixes the schedule and the load's choices; the moments things happen vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import BenchError, bench_main, darkroom_command, wait_ready
from _faults import checks
from _faults.checks import Entry, Listing
from _faults.disk import Disk, FileSizeLimit, SmallFilesystem
from _faults.load import Ledger, Load, sample_photos
from _faults.parts import STOP_LIMIT_S, adopt_orphans, end_orphans, orphans
from _faults.schedule import Episode, plan
from _faults.sse import LiveClient
from _faults.system import Settings, System

from darkroom.kernel.bus import Bus
from darkroom.kernel.clock import parse_iso
from darkroom.kernel.photos import TRASH_DIR

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "tests" / "data" / "photos"
PROJECTS = ("Faults A", "Faults B", "Faults C")
TMPFS_MB = 512
RECOVERY_WAIT_S = 30.0  # after a nats-server restart, the next fault waits this long at most for work to resume
# Issue #6 asks for work within 3 s of a restarted server answering (measured: 0.1-2.1 s on a loaded
# 2-core machine, other faults interleaved); the check allows a busy CI machine a little more.
RECOVERY_LIMIT_S = 5.0


@dataclass(frozen=True)
class Profile:
    rounds: int
    gap_s: tuple[float, float]
    settings: Settings
    disk_full_s: float
    deadline_s: float  # after the faults: for the uploads to be taken, for every task to end, for the read model


PROFILES = {
    "short": Profile(9, (0.5, 2.0), Settings(duplicate_window_s=3, maintenance_interval_s=20), 5.0, 45.0),
    "full": Profile(24, (1.0, 4.0), Settings(duplicate_window_s=5, maintenance_interval_s=30), 10.0, 120.0),
}


@dataclass
class Happened:
    nats_answered: list[float] = field(default_factory=list)  # time.time() a restarted server listened again
    disk_full: list[tuple[float, float]] = field(default_factory=list)


class Run:
    def __init__(self, args: argparse.Namespace, root: Path, data: Path, disk: Disk) -> None:
        self.args = args
        self.profile = PROFILES["short" if args.short else "full"]
        self.rounds = args.rounds if args.rounds is not None else self.profile.rounds
        self.root = root
        self.data = data
        self.disk = disk
        self.system = System(root, data, self.profile.settings, disk.started)
        self.rng = random.Random(args.seed)
        self.ledger = Ledger()
        self.happened = Happened()
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        now = time.time()
        print(
            f"faults {time.strftime('%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 10)}Z "
            f"+{time.monotonic() - self.began:5.1f}s  {text}",
            flush=True,
        )

    async def start(self, http: aiohttp.ClientSession) -> None:
        parts = self.system.parts
        await parts["nats-server"].start()
        await parts["api"].start()  # the first to provision the stream; the others find it there

        def exited() -> str | None:
            return "the api keeps exiting" if len(parts["api"].exits) > 3 else None

        await wait_ready(http, self.system.base_url, exited, lambda: self.system.log_tail("api"), 60.0)
        await asyncio.gather(*(parts[name].start() for name in parts if name not in ("nats-server", "api")))

    async def warm_up(self, load: Load, bus: Bus) -> None:
        """A photo per project, each task ended: every part is up before the first fault."""
        for name in PROJECTS:
            await load.create_project(name)
        for folder in load.folders:
            await load.upload(folder, load.new_files(folder))
        deadline = time.monotonic() + 120
        while True:
            log = await read_log(bus, ["darkroom.task.>"])
            if log and not checks.unfinished_tasks(log) and not self.ledger.waiting:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    "the system did not complete its first uploads within 120 s:\n" + self.system.log_tail("worker")
                )
            if self.ledger.waiting:
                await load.send_waiting()
            await asyncio.sleep(0.5)

    async def episode(self, episode: Episode, bus: Bus) -> None:
        parts = self.system.parts
        self.say(str(episode))
        try:
            before = await bus.last_seq()
        except Exception:  # the suite's own connection is not back yet: read the log from its start
            before = 1
        if episode.kind == "kill":
            await parts[episode.part].kill()
        elif episode.kind == "nats-restart":
            await parts["nats-server"].restart()
        elif episode.kind == "orchestrator-away":
            # Past the duplicate window: a restarted orchestrator meets a backlog JetStream no longer dedupes.
            await parts[episode.part].restart(away_s=self.profile.settings.duplicate_window_s + 2)
        elif episode.kind == "disk-full":
            filled = time.time()
            self.disk.fill()
            await asyncio.sleep(self.profile.disk_full_s)
            await self.disk.free()
            self.happened.disk_full.append((filled, time.time()))
        if episode.part == "nats-server":
            self.happened.nats_answered.append(parts["nats-server"].starts[-1])
            await self.wait_work_flows(bus, before, parts["nats-server"].starts[-1])

    async def wait_all_ended(self, bus: Bus, deadline: float) -> int | None:
        """Until every task requested so far has ended; the log's last sequence then (or at the
        deadline), which the check judges the log by: maintenance goes on starting tasks meanwhile."""
        through = None
        while time.monotonic() < deadline:
            try:
                through = await bus.last_seq()
                if not checks.unfinished_tasks(await read_log(bus, ["darkroom.task.>"]), through):
                    return through
            except Exception:  # the log is not readable yet: the same as not ended
                pass
            await asyncio.sleep(2.0)
        return through

    async def wait_work_flows(self, bus: Bus, since_seq: int, answered: float) -> None:
        """Until a job taken after the restarted server answered has completed (at most a while): the
        figure itself is read from the log afterwards; this only keeps the next fault off it."""
        deadline = time.monotonic() + RECOVERY_WAIT_S
        while time.monotonic() < deadline:
            try:
                jobs = await read_log(bus, ["darkroom.job.>"], since_seq)
                if checks.recoveries([answered], jobs)[0] is not None:
                    return
            except Exception:  # the suite's own connection is still coming back
                pass
            await asyncio.sleep(0.5)
        self.say(f"no job taken after the restart completed within {RECOVERY_WAIT_S:g}s")

    async def ready(self, http: aiohttp.ClientSession, deadline: float) -> str | None:
        """None once /readyz answers 200, else its last answer."""
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                timeout = aiohttp.ClientTimeout(total=10)
                async with http.get(f"{self.system.base_url}/readyz", timeout=timeout) as response:
                    if response.status == 200:
                        return None
                    last = f"{response.status} {(await response.text())[:200]}"
            except aiohttp.ClientError as exc:
                last = f"no answer ({exc})"
            await asyncio.sleep(1.0)
        return last

    async def replay_verify(self) -> list[str]:
        child = await asyncio.create_subprocess_exec(
            darkroom_command(),
            "replay",
            "--verify",
            "--data",
            str(self.data),
            "--into",
            str(self.root / "replay.sqlite"),
            env=self.system.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.system.spawned.add(child.pid)
        try:
            out, _ = await asyncio.wait_for(child.communicate(), 180)
        except TimeoutError:
            child.kill()
            await child.wait()
            return ["darkroom replay --verify did not finish within 180 s"]
        if child.returncode == 0:
            return []
        tail = out.decode(errors="replace").splitlines()[-15:]
        return [f"darkroom replay --verify exited {child.returncode}:", *tail]

    async def stop_all(self) -> list[str]:
        """SIGTERM to every part, the server last; then nothing they started may be left."""
        parts = self.system.parts
        problems = []
        for name in ("api", "worker", "orchestrator-a", "orchestrator-b", "projector", "nats-server"):
            await parts[name].finish()
            took = parts[name].stopped_in_s
            if took is None or took > STOP_LIMIT_S:
                problems.append(f"{name} took {'over 30' if took is None else f'{took:.1f}'} s to end on SIGTERM")
        deadline = time.monotonic() + 5
        while (left := orphans(self.system.spawned)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        problems += [f"left behind: pid {pid} {command[:120]}" for pid, command in left]
        end_orphans(left)
        return problems


async def read_log(bus: Bus, filters: list[str] | None = None, start_seq: int = 1) -> list[Entry]:
    entries = []
    async for batch in bus.read(filters, start_seq):
        for stored in batch:
            try:
                event = json.loads(stored.data)
            except ValueError:
                continue
            entries.append(Entry(stored.seq, stored.subject, parse_iso(stored.at).timestamp(), event))
    return entries


def list_disk(data: Path, folders: list[str]) -> dict[str, Listing]:
    def digests(folder: Path) -> dict[str, str]:
        if not folder.is_dir():
            return {}
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
        }

    return {
        folder: Listing(digests(data / "projects" / folder), digests(data / "projects" / folder / TRASH_DIR))
        for folder in folders
    }


async def read_outbox(path: Path, after: str) -> list[tuple[str, str, str]]:
    """Every SSE message the projector stored after `after`, for every project, maintenance included."""
    from darkroom.projector.queries import ReadModel, parse_event_id
    from darkroom.projector.store import open_db

    read = ReadModel(await open_db(path, readonly=True))
    cursor = parse_event_id(after)
    rows = []
    try:
        while page := await read.outbox_after(cursor, project_id=None, show_maintenance=True, limit=5000):
            rows += [(r.id, r.event, r.data) for r in page]
            cursor = (page[-1].seq, page[-1].k)
    finally:
        await read.db.close()
    return rows


async def caught_up(sse: LiveClient, last_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(m[0] == last_id for m in sse.messages[-50:]):
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, root: Path, data: Path, disk: Disk) -> int:
    # SIGTERM unwinds like Ctrl-C: the finally blocks stop every part the suite started.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    if not adopt_orphans():
        print("faults: cannot become a subreaper: processes left behind will not be found", file=sys.stderr)
    faults = Run(args, root, data, disk)
    system = faults.system
    episodes = plan(args.seed, faults.rounds, faults.profile.gap_s)
    faults.say(f"seed {args.seed}, {len(episodes)} faults: {', '.join(map(str, episodes))}")
    faults.say(f"disk: {disk.how}; work folder {root}")
    report: dict = {}
    background: list[asyncio.Task] = []
    bus = None
    async with aiohttp.ClientSession() as http:
        try:
            await faults.start(http)
            bus = await Bus.connect(system.nats_url, "darkroom-faults")
            sse = LiveClient(http, f"{system.base_url}/api/events?show_maintenance=true")
            background.append(asyncio.create_task(sse.run(), name="sse"))
            await asyncio.wait_for(sse.connected.wait(), 30)
            load = Load(http, system.base_url, faults.rng, sample_photos(PHOTOS), faults.ledger)
            await faults.warm_up(load, bus)
            faults.say(f"up: {', '.join(system.parts)}; the load starts")
            background += [asyncio.create_task(load.uploader((0.3, 1.2))) for _ in range(2)]
            background += [
                asyncio.create_task(load.keeper((0.5, 1.5))),
                asyncio.create_task(load.committer((3.0, 6.0))),
            ]
            for episode in episodes:
                await asyncio.sleep(episode.gap_s)
                await faults.episode(episode, bus)
            await asyncio.sleep(max(faults.profile.gap_s))
            for task in background[1:]:
                task.cancel()
            await asyncio.gather(*background[1:], return_exceptions=True)
            faults.say("faults over; the load stops, waiting for what it started")
            deadline = time.monotonic() + faults.profile.deadline_s
            await load.settle(faults.profile.deadline_s)
            through = await faults.wait_all_ended(bus, deadline)
            not_ready = await faults.ready(http, max(deadline, time.monotonic() + 10))
            faults.say("gathering the log, the folders and the outbox")
            log = await read_log(bus)
            listing = list_disk(data, load.folders)
            listed = {folder: await load.listed(folder) for folder in load.folders}
            expected = await read_outbox(data / "read-model.sqlite", sse.first_id or "0")
            if expected:
                await caught_up(sse, expected[-1][0], 30)
            report = {
                "log": log,
                "through": through,
                "listing": listing,
                "listed": listed,
                "expected": expected,
                "sse": sse,
                "not_ready": not_ready,
                "replay": await faults.replay_verify(),
                "used_mb": disk.used_mb(),
            }
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if bus is not None:
                await bus.close()
            report["stops"] = await faults.stop_all()
    if "log" not in report:
        return 2
    return print_report(faults, report)


def judge(faults: Run, report: dict) -> dict[str, list[str]]:
    """Every check's problems, by check."""
    log: list[Entry] = report["log"]
    sse: LiveClient = report["sse"]
    listing = report["listing"]
    interval = faults.profile.settings.maintenance_interval_s
    recovered = checks.recoveries(faults.happened.nats_answered, log)
    return {
        "no original lost": checks.lost_originals(faults.ledger.acknowledged, listing)
        + checks.unrecorded_trash(log, listing),
        "the API lists every original": checks.unlisted_originals(listing, report["listed"]),
        "no effect twice": checks.jobs_twice(log)
        + checks.tasks_twice(log)
        + checks.maintenance_twice(log, interval)
        + checks.trashed_without_commit(log),
        "every task ended": checks.unfinished_tasks(log, report["through"]),
        "read model caught up": [f"/readyz: {report['not_ready']}"] if report["not_ready"] else [],
        "replay --verify equal": report["replay"],
        "SSE exact": checks.sse_problems(sse.messages, report["expected"], sse.resets, sse.stalls),
        "clean stops": report["stops"],
        f"work resumes within {RECOVERY_LIMIT_S:g} s of a nats-server restart": [
            f"restart {i}: " + ("no job taken after it completed" if r is None else f"{r:.1f} s")
            for i, r in enumerate(recovered, start=1)
            if r is None or r > RECOVERY_LIMIT_S
        ],
    }


def print_report(faults: Run, report: dict) -> int:
    log: list[Entry] = report["log"]
    sse: LiveClient = report["sse"]
    ledger = faults.ledger
    found = judge(faults, report)
    parts = faults.system.parts
    outcomes = checks.task_outcomes(log)
    recovered = (
        ", ".join("never" if r is None else f"{r:.1f} s" for r in checks.recoveries(faults.happened.nats_answered, log))
        or "no restart"
    )
    took = time.monotonic() - faults.began
    print()
    print(
        f"== Darkroom fault suite: seed {faults.args.seed}, {faults.rounds} faults "
        f"({'short' if faults.args.short else 'full'}), {took:.0f} s =="
    )
    print(f"disk: {faults.disk.how}" + (f"; {report['used_mb']:.0f} MB used at the end" if report["used_mb"] else ""))
    print(f"{'part':<16}{'kills':>6}{'restarts':>10}  {'SIGTERM':>8}  exits on its own")
    for name, part in parts.items():
        stop = "-" if part.stopped_in_s is None else f"{part.stopped_in_s:.1f} s"
        own = "; ".join(map(str, part.exits)) or "-"
        print(f"{name:<16}{part.kills:>6}{len(part.starts) - 1:>10}  {stop:>8}  {own}")
    server_errors = ", ".join(f"{s} x{n}" for s, n in sorted(ledger.server_errors().items())) or "none"
    on_disk = sum(name in report["listing"].get(folder, Listing()).files for folder, name in ledger.acknowledged)
    print(
        f"load: {len(ledger.acknowledged)} files acknowledged ({on_disk} in their folders, the rest trashed "
        f"by commits), {len(ledger.waiting)} never, {len(ledger.refused)} refused; {ledger.uploads} uploads, "
        f"{ledger.commits} commits; 5xx answers: {server_errors}; {sum(ledger.unanswered.values())} requests "
        f"unanswered" + "".join(f"\n  {what} x{n}" for what, n in ledger.anomalies.items())
    )
    failures = Counter(e.event.get("error", "?")[:80] for e in log if e.event.get("type") == "task.failed")
    print(
        f"tasks: {outcomes['completed']} completed, {outcomes['failed']} failed, {outcomes['canceled']} canceled, "
        f"{len(found['every task ended'])} not ended by the deadline"
        + "".join(f"\n  failed x{n}: {error}" for error, n in failures.most_common(3))
    )
    print(f"recovery after a nats-server restart (server answering -> a job taken after it completed): {recovered}")
    for filled, freed in faults.happened.disk_full:
        print(f"disk full for {freed - filled:.1f} s")
    print(
        f"SSE: {len(sse.messages)} messages over {sse.connects} connections, {sse.resets} resets; "
        f"outbox after its first id: {len(report['expected'])}"
    )
    kills = ", ".join(f"{name} {part.kills}" for name, part in parts.items())
    print(
        f"figures: kills {kills}; lost {len(found['no original lost'])}; duplicated {len(found['no effect twice'])}; "
        f"recovery {recovered}; tasks completed {outcomes['completed']}; {took:.0f} s"
    )
    print("checks:")
    for name, problems in found.items():
        print(f"  {'ok  ' if not problems else 'FAIL'}  {name}" + (f" ({len(problems)})" if problems else ""))
        for line in problems[:12]:
            print(f"          {line}")
        if len(problems) > 12:
            print(f"          ... and {len(problems) - 12} more")
    if not any(found.values()):
        return 0
    with (faults.root / "events.jsonl").open("w") as out:
        for e in log:
            out.write(json.dumps({"seq": e.seq, "subject": e.subject, "at": e.at, "event": e.event}) + "\n")
    print(f"the parts' logs, the event log (events.jsonl) and the nats store are kept in {faults.root}")
    return 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="the CI version: every kind of fault once, shorter timings")
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: drawn, and printed)")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"faults to apply (default {PROFILES['short'].rounds} short, {PROFILES['full'].rounds} full; "
        "from 9 on, every kind is among them)",
    )
    p.add_argument(
        "--disk",
        choices=("auto", "rlimit"),
        default="auto",
        help="how the disk fills: auto = a small tmpfs for the data folder where the suite may mount "
        "(root), else RLIMIT_FSIZE on the projector; rlimit = the latter anyway",
    )
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="work in DIR and keep it (default: a temporary folder, kept only when a check fails)",
    )
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 16)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("darkroom").setLevel(logging.ERROR)  # the suite's own connection drops with the server
    root = args.keep or Path(tempfile.mkdtemp(prefix="darkroom-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    # Before any thread exists: the mount namespace is the process's own only then.
    disk: Disk = (args.disk == "auto" and SmallFilesystem.mount(data, TMPFS_MB)) or FileSizeLimit()
    code = 2
    try:
        code = bench_main(lambda a: run(a, root, data, disk), args)
    finally:
        disk.release(root / "data-at-end" if args.keep or code != 0 else None)
    if code == 0 and args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    elif code != 0 and isinstance(disk, SmallFilesystem):
        print(f"faults: the data folder lived on a tmpfs of the suite's own; see {root / 'data-at-end'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
