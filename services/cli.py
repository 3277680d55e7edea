"""`darkroom`: run the services, rebuild and verify read models, follow the log."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from .kernel import collector
from .kernel.config import Config, ConfigError, load_config
from .kernel.credentials import CredentialsError, for_data_folder, write_private
from .kernel.definitions import DefinitionError, load_definitions
from .kernel.logs import FORMATS, LEVELS
from .kernel.logs import configure as configure_logs
from .kernel.redact import redact
from .kernel.sdnotify import notifying
from .kernel.subjects import ALL

log = logging.getLogger("darkroom")

NATS_URL_FILE = "nats.url"
SERVER_STOP_S = 1.5  # the embedded server's share of the 10 s a stop may take; then it is killed


class UsageError(Exception):
    """A problem the operator can fix; printed without a traceback."""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=argparse.SUPPRESS, help="data folder (default ./darkroom-data)")
    common.add_argument("--nats", default=argparse.SUPPRESS, help="NATS URL (default: the embedded server's)")
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="config file (default DIR/darkroom.toml)"
    )
    common.add_argument(
        "--log-format",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="log lines on stderr: text, or one JSON object a line (default: text on a terminal, json otherwise)",
    )
    common.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        default=argparse.SUPPRESS,
        help="the least severe messages logged (default info)",
    )
    top = argparse.ArgumentParser(prog="darkroom", parents=[common], description=__doc__)
    sub = top.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    for name, help in (
        ("up", "everything, with an embedded nats-server (the worker in a second process: up.processes)"),
        ("api", "the HTTP API, SSE and web UI"),
    ):
        p = command(name, help)
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)
    services = [
        command("orchestrator", "the process manager that advances task steps"),
        command("worker", "pulls jobs from the priority and normal lanes and runs them"),
        command("projector", "folds the log into the SQLite read models"),
    ]
    services[0].add_argument(
        "--name", default="orchestrator", help="durable consumer name; give each orchestrator its own"
    )
    for p in services:
        p.add_argument(
            "--health-port",
            type=int,
            default=None,
            metavar="P",
            help="serve /healthz, /readyz and /metrics of this process on port P (0: any free port)",
        )
    p = command("replay", "rebuild the read models from the log")
    p.add_argument("--into", type=Path, default=None, help="target SQLite file (default: a new file under DIR)")
    p.add_argument("--verify", action="store_true", help="compare with the live read model; exit 1 on differences")
    p = command("audit", "the event history of a task, a photo or a project, oldest first")
    what = p.add_subparsers(dest="audit", required=True, metavar="what")
    for name, args, help in (
        ("task", ("ID",), "every event of one task and its jobs"),
        ("photo", ("FOLDER", "FILENAME"), "every event of one photo (FILENAME: its basename)"),
        ("project", ("FOLDER",), "the project's, its photos', tasks' and jobs' events"),
        ("lane", ("LANE",), "every pause and resume of a lane"),
        ("dead-letter", ("SEQ",), "a message set aside, and what became of it"),
    ):
        q = what.add_parser(name, parents=[common], help=help, description=help)
        for arg in args:
            q.add_argument(arg.lower(), metavar=arg, type=int if arg == "SEQ" else str)
        q.add_argument("--json", action="store_true", help="one JSON object a line: the event, its seq and subject")
    p = command("tail", "print live events as JSON lines")
    p.add_argument("subject", nargs="?", default=ALL)
    p = command("dead-letters", "messages set aside as unreadable, with why; discard one, or apply one readable now")
    actions = p.add_subparsers(dest="letter_action", metavar="action")
    for name, help in (
        ("discard", "let a dead letter go: no longer listed, never applied"),
        ("apply", "apply a dead letter this version reads now (an upcaster shipped)"),
    ):
        q = actions.add_parser(name, parents=[common], help=help, description=help)
        q.add_argument("seq", metavar="SEQ", type=int)
    p = command("retry", "run a failed or canceled task again, from the step it stopped at")
    p.add_argument("task_id", metavar="TASK_ID")
    p = command("lanes", "the lanes: paused or not, depth, jobs in flight, busy slots, job counts; pause or resume one")
    actions = p.add_subparsers(dest="lane_action", metavar="action")
    for name, help in (
        ("pause", "no worker takes a new job from LANE (running ones finish) until it is resumed"),
        ("resume", "workers take LANE's jobs again"),
    ):
        q = actions.add_parser(name, parents=[common], help=help, description=help)
        q.add_argument("lane", metavar="LANE")
    command(
        "backup", "a consistent copy of the log, the read model and the project folders, with a manifest"
    ).add_argument("dest", type=Path, metavar="DEST", help="a new or empty folder")
    command("restore", "a backup into an empty data folder (--data); `replay --verify` holds after it").add_argument(
        "src", type=Path, metavar="SRC", help="a folder `darkroom backup` made"
    )
    from .control.lifecycle import add_commands

    add_commands(command)
    # `up`'s second process (child.py): not a command of its own, so not listed.
    sub.add_parser("child", parents=[common]).add_argument("--roles", required=True)
    p = command("schemas", "regenerate schemas/events/ from the code")
    p.add_argument("--write", action="store_true", required=True)
    return top


def main(argv: list[str] | None = None) -> int:
    # The services are imported once a command runs, not with this module: the image processes
    # (spawned) re-run the `darkroom` script, which imports this module, and need none of them.
    from .backup import BackupError
    from .kernel.bus import Unreachable
    from .kernel.natsd import ServerError
    from .kernel.provision import ProvisionError
    from .kernel.snapshot import SnapshotError
    from .projector.keeper import KeptElsewhere
    from .runtime import ListenError
    from .worker.handlers import PluginError

    args = parser().parse_args(argv)
    # Resolved once: `up`'s second process logs as `up` does.
    args.log_format = getattr(args, "log_format", None) or ("text" if sys.stderr.isatty() else "json")
    args.log_level = getattr(args, "log_level", "info")
    configure_logs(args.log_format, args.log_level, sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(run(args))
    except (
        UsageError,
        ConfigError,
        DefinitionError,
        PluginError,
        ServerError,
        ProvisionError,
        CredentialsError,
        Unreachable,
        KeptElsewhere,
        BackupError,
        SnapshotError,
    ) as exc:
        print(f"darkroom: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"darkroom: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # logged like any message (one line, secrets hidden), not printed raw by Python
        log.exception("darkroom %s failed", args.command)
        return 1


def _loop_factory():
    """uvloop where it is installed: the services spend much of their time in the event loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run(args: argparse.Namespace) -> int:
    data_dir: Path = getattr(args, "data", None) or Path("darkroom-data")
    if args.command == "schemas":
        from .kernel import schemas

        try:
            root = schemas.checkout_dir()
        except schemas.NoCheckout as exc:
            raise UsageError(str(exc)) from None
        for path in schemas.write(root):
            print(f"wrote {path}")
        return 0
    if args.command == "child":
        return await child(data_dir, tuple(args.roles.split(",")))
    overrides = {
        "nats.url": getattr(args, "nats", None),
        "api.host": getattr(args, "host", None),
        "api.port": getattr(args, "port", None),
        "health.port": getattr(args, "health_port", None),
    }
    config = load_config(data_dir, getattr(args, "config", None), overrides=overrides)
    if args.command == "up":
        return await up(config, data_dir, args)
    if args.command in ("api", "orchestrator", "worker", "projector"):
        return await serve(config, data_dir, args)
    if args.command == "replay":
        return await replay(config, data_dir, args.into, args.verify)
    if args.command == "audit":
        return await audit(config, data_dir, args)
    if args.command == "tail":
        return await tail(config, data_dir, args.subject)
    if args.command == "dead-letters" and not args.letter_action:
        return await dead_letters(data_dir)
    if args.command in ("dead-letters", "retry", "lanes"):
        return await control(config, data_dir, args)
    if args.command == "backup":
        return await backup(config, data_dir, args.dest)
    if args.command == "restore":
        return await restore(config, data_dir, args.src)
    from .control.lifecycle import COMMANDS

    if args.command in COMMANDS:
        return await lifecycle(config, data_dir, args)
    raise UsageError(f"unknown command {args.command}")


def nats_url(config: Config, data_dir: Path) -> str:
    if config.nats.url:
        return config.nats.url
    url_file = data_dir / NATS_URL_FILE
    if url_file.is_file():
        return url_file.read_text().strip()
    raise UsageError(f"no NATS URL: give --nats, set DARKROOM_NATS__URL, or start `darkroom up` (it writes {url_file})")


def _stop_signals() -> asyncio.Event:
    """Set by SIGINT or SIGTERM, from now on: also while a service is still starting."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _runtime(config: Config, data_dir: Path, url: str, roles: tuple[str, ...], orchestrator_name: str = "orchestrator"):
    from .runtime import Runtime
    from .worker.handlers import load_job_types

    definitions = load_definitions(Path(config.tasks.definitions) if config.tasks.definitions else None)
    job_types = load_job_types(config.pipeline.plugins)
    return Runtime(
        config=config,
        data_dir=data_dir,
        nats_url=url,
        definitions=definitions,
        job_types=job_types,
        roles=roles,
        orchestrator_name=orchestrator_name,
    )


async def _run_until_stopped(
    runtime, start: Callable[[], Awaitable[None]], what: str, grace_s: float | None = None
) -> int:
    """Start (`start` starts the runtime), run until SIGINT/SIGTERM or until a loop fails for good,
    stop. A signal while starting stops at once. Exit 0, or 1 when a loop failed."""
    stop = _stop_signals()
    starting = asyncio.ensure_future(start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stopping while %s starts", what)
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await runtime.stop(grace_s=0)
            return 0
        starting.result()
        # What start-up made lives as long as the process: full collections, which every request and
        # SSE client waits out, walk only what came after (half the objects with 1,000 SSE clients).
        collector.settle()
        failed = asyncio.ensure_future(runtime.loops.failed.wait())
        # systemd hears READY once started, the watchdog while no loop has failed for good.
        async with notifying(f"darkroom {what}", healthy=lambda: not runtime.loops.failed.is_set()):
            await asyncio.wait([failed, stopping], return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        log.info("stopping")
        await (runtime.stop() if grace_s is None else runtime.stop(grace_s))
    finally:
        stopping.cancel()
    if runtime.loops.fatal is not None:
        name, exc = runtime.loops.fatal
        log.error("darkroom %s: exiting, %s cannot go on: %s", what, name, exc)
        return 1
    return 0


async def up(config: Config, data_dir: Path, args: argparse.Namespace) -> int:
    from .child import CHILD_ROLES, Child
    from .kernel.natsd import NatsServer
    from .runtime import ROLES

    # Everything that can be wrong with the configuration is found before anything starts.
    two = config.up.processes == 2
    roles = tuple(role for role in ROLES if not (two and role in CHILD_ROLES))
    runtime = _runtime(config, data_dir, config.nats.url or "", roles)
    if two:
        runtime.child = Child(data_dir, CHILD_ROLES, args.log_format, args.log_level)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = None
    url_file = data_dir / NATS_URL_FILE

    async def start() -> None:
        nonlocal server
        if not config.nats.url:
            server = NatsServer(data_dir / "nats", config.nats.sync_interval, credentials=for_data_folder(data_dir))
            await server.start()
            runtime.nats_url = server.url
            write_private(url_file, server.url + "\n")
        await runtime.start()
        if server is not None:  # nothing else would start it again: `up` ends (exit 1) when it dies
            runtime.loops.spawn("embedded nats-server", server.watch)
        log.info("darkroom up: %s (NATS %s, data %s)", runtime.base_url, redact(runtime.nats_url), data_dir.resolve())

    try:
        return await _run_until_stopped(runtime, start, "up")
    finally:
        if server is not None:
            await server.stop(SERVER_STOP_S)
            url_file.unlink(missing_ok=True)


async def child(data_dir: Path, roles: tuple[str, ...]) -> int:
    """`up`'s second process (the worker): the configuration `up` resolved comes first on stdin, then
    what `up` tells it (child.py)."""
    from .child import CHILD_GRACE_S, follow_up, read_config, stdin_lines
    from .projector.queries import NOTIFIED_POLL_S

    if sys.stdin.isatty():
        raise UsageError("`darkroom child` is started by `darkroom up`, which gives it its configuration")
    if "worker" not in roles:
        raise UsageError("`darkroom child` runs `up`'s worker: --roles must name it")
    lines = await stdin_lines()
    first = await lines.readline()
    if not first:
        raise UsageError("`darkroom child` is started by `darkroom up`, which gives it its configuration")
    config = read_config(first)
    runtime = _runtime(config, data_dir, config.nats.url or "", roles)

    async def start() -> None:
        await runtime.start()
        read, derivations = runtime.worker_read, runtime.derivations
        assert read is not None and derivations is not None  # the worker's
        read.poll_s = NOTIFIED_POLL_S  # up tells of each commit
        runtime.loops.spawn("following up", lambda: follow_up(lines, read.applied, derivations.prefetch))
        log.info("darkroom up: the %s process running", "+".join(roles))

    # Its stop ends within `up`'s own bound, so `up` never cuts it (a process killed leaks its image
    # pool's semaphores, and its resource tracker says so on `up`'s stderr).
    return await _run_until_stopped(runtime, start, "+".join(roles), grace_s=CHILD_GRACE_S)


async def serve(config: Config, data_dir: Path, args: argparse.Namespace) -> int:
    runtime = _runtime(
        config,
        data_dir,
        nats_url(config, data_dir),
        (args.command,),
        orchestrator_name=getattr(args, "name", "orchestrator"),
    )

    async def start() -> None:
        await runtime.start()
        where = (f" on {runtime.base_url}" if args.command == "api" else "") + (
            f", health on http://{config.health.host}:{runtime.health_port}" if runtime.health_port else ""
        )
        log.info("darkroom %s running%s", args.command, where)

    return await _run_until_stopped(runtime, start, args.command)


async def replay(config: Config, data_dir: Path, into: Path | None, verify: bool) -> int:
    from .projector.store import read_model_path
    from .replay.rebuild import replay as run_replay

    if into is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        into = next(
            p
            for n in range(1, 10_000)
            if not (p := data_dir / (f"replay-{stamp}.sqlite" if n == 1 else f"replay-{stamp}-{n}.sqlite")).exists()
        )
    elif into.exists():
        raise UsageError(f"{into} already exists: replay builds a new file")
    live = read_model_path(data_dir)
    if verify and not live.is_file():
        raise UsageError(f"no live read model at {live} to verify against")
    async with _log_server(config, data_dir) as url, _connected(config, url, "darkroom-replay") as bus:
        bar = _ProgressBar() if sys.stderr.isatty() else None
        result = await run_replay(bus, into, live, verify, bar.update if bar else None)
        if bar:
            bar.done()
    print(
        f"replayed {result.events} events to sequence {result.checkpoint} in {result.seconds:.2f}s "
        f"({result.rate:,.0f} events/s) into {into}"
    )
    if verify:
        if result.differences:
            print(f"verify: {len(result.differences)} rows differ from the live read model:")
            for line in result.differences:
                print(f"  {line}")
            return 1
        print(f"verify: the rebuilt read model equals the live one at sequence {result.checkpoint}")
    return 0


class _ProgressBar:
    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.first: int | None = None

    def update(self, at: int, until: int) -> None:
        if self.first is None:
            self.first = at
        share = at / until if until else 1.0
        rate = (at - self.first) / max(1e-6, time.perf_counter() - self.began)
        filled = int(share * 30)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%} {at}/{until}  {rate:,.0f} events/s")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


async def audit(config: Config, data_dir: Path, args: argparse.Namespace) -> int:
    from . import audit as history

    async with _connected(config, nats_url(config, data_dir), "darkroom-audit") as bus:
        try:
            if args.audit == "task":
                entries = await history.task_history(bus, args.id)
            elif args.audit == "photo":
                entries = await history.photo_history(bus, args.folder, args.filename)
            elif args.audit == "lane":
                entries = await history.lane_history(bus, args.lane)
            elif args.audit == "dead-letter":
                entries = await history.dead_letter_history(bus, args.seq)
            else:
                entries = await history.project_history(bus, args.folder)
        except history.NotFound as exc:
            raise UsageError(str(exc)) from None
    sys.stdout.write(history.json_lines(entries) if args.json else history.table(entries))
    return 0


async def tail(config: Config, data_dir: Path, subject: str) -> int:
    out = sys.stdout

    async def show(msg) -> None:
        out.write(msg.data.decode(errors="replace") + "\n")
        out.flush()

    stop = _stop_signals()
    async with _connected(config, nats_url(config, data_dir), "darkroom-tail") as bus:
        await bus.nc.subscribe(subject, cb=show)
        await stop.wait()
    return 0


@asynccontextmanager
async def _connected(config: Config, url: str, name: str):
    """A one-shot command's connection: Unreachable (one line naming the URL, exit 2) when NATS does
    not answer within CONNECT_TIMEOUT_S, or stops answering on the way."""
    import nats.errors

    from .kernel.bus import Bus, Unreachable
    from .kernel.supervise import describe

    bus = await Bus.connect(url, name, security=config.nats)
    try:
        yield bus
    except (nats.errors.Error, TimeoutError) as exc:
        raise Unreachable(f"NATS at {redact(url)} stopped answering: {describe(exc)}") from None
    finally:
        await bus.close()


async def lifecycle(config: Config, data_dir: Path, args: argparse.Namespace) -> int:
    from .control import lifecycle
    from .control.refused import Refused

    definitions = load_definitions(Path(config.tasks.definitions) if config.tasks.definitions else None)
    async with (
        _connected(config, nats_url(config, data_dir), f"darkroom-{args.command}") as bus,
        _read_model(data_dir) as read,
    ):
        try:
            return await lifecycle.run(lifecycle.Control(bus, read, definitions, config), args)
        except Refused as exc:
            raise UsageError(exc.message) from None


@asynccontextmanager
async def _read_model(data_dir: Path):
    """The read model a command reads (and waits on), in the data folder."""
    from .projector.queries import ReadModel
    from .projector.store import read_model_path

    path = read_model_path(data_dir)
    if not path.is_file():
        raise UsageError(f"no read model at {path}")
    read = await ReadModel.open(path)
    try:
        yield read
    finally:
        await read.close()


async def control(config: Config, data_dir: Path, args: argparse.Namespace) -> int:
    """`retry`, `lanes` (`pause`, `resume`), `dead-letters discard|apply`: what the API's controls do."""
    from .control import commands
    from .control.refused import Refused

    url = nats_url(config, data_dir)
    async with _connected(config, url, "darkroom-control") as bus, _read_model(data_dir) as read:
        try:
            if args.command == "retry":
                out = await commands.retry_task(bus, read, args.task_id)
            elif args.command == "lanes":
                out = await commands.lane_command(bus, read, args.lane_action, getattr(args, "lane", None))
            else:
                out = await commands.dead_letter_command(bus, read, args.letter_action, args.seq)
        except Refused as exc:
            print(f"darkroom: {exc.message}", file=sys.stderr)
            return 1
    sys.stdout.write(out)
    return 0


async def dead_letters(data_dir: Path) -> int:
    async with _read_model(data_dir) as read:
        letters = await read.dead_letters()
    if not letters:
        print("no dead letters")
    for letter in letters:
        print(f"{letter.seq}\t{letter.at}\t{letter.subject}\t{letter.reason}")
    return 0


@asynccontextmanager
async def _log_server(config: Config, data_dir: Path, make: bool = False) -> AsyncIterator[str]:
    """The URL of the NATS that holds the data folder's log: the configured one, the running `up`'s,
    or, for a folder whose `up` is stopped (or one being restored, `make`), its embedded server
    started for the while."""
    if config.nats.url or (data_dir / NATS_URL_FILE).is_file() or not (make or (data_dir / "nats").is_dir()):
        yield nats_url(config, data_dir)
        return
    from .kernel.natsd import NatsServer

    server = await NatsServer(
        data_dir / "nats", config.nats.sync_interval, credentials=for_data_folder(data_dir)
    ).start()
    try:
        yield server.url
    finally:
        await server.stop()


async def backup(config: Config, data_dir: Path, dest: Path) -> int:
    from . import backup as copy
    from .kernel.lease import Leases

    async with _log_server(config, data_dir) as url, _connected(config, url, "darkroom-backup") as bus:
        leases = Leases(bus, f"backup {socket.gethostname()}:{os.getpid()}", config.nats.replicas)
        made = await copy.backup(bus, data_dir, dest, leases.hold)
    stream, size = made.stream, sum(entry.size for entry in made.files)
    held = f"the read model at sequence {made.read_model.checkpoint}, " if made.read_model else ""
    print(
        f"backed up events {stream.first_seq}..{stream.last_seq} ({stream.messages} events), {held}"
        f"{len(made.files)} files ({size:,} bytes) into {dest}"
    )
    return 0


async def restore(config: Config, data_dir: Path, src: Path) -> int:
    from . import backup as copy

    made = copy.verify(src)
    copy.check_empty(data_dir)
    async with _log_server(config, data_dir, make=True) as url, _connected(config, url, "darkroom-restore") as bus:
        await copy.restore(made, src, data_dir, bus, config.nats.replicas)
    print(
        f"restored events {made.stream.first_seq}..{made.stream.last_seq}, {len(made.files) - 1} files into "
        f"{data_dir}; start Darkroom on it, then `darkroom replay --verify --data {data_dir}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
