"""Child processes that end with the process that started them, even when it is killed with -9.

Linux's PR_SET_PDEATHSIG asks the kernel to signal a process when its parent dies, and it survives
exec: run as a script, this module sets it and then becomes the command, which is how a nats-server
(which cannot ask for it itself) dies with `darkroom up`:

    python -I -S tether.py PARENT_PID COMMAND [ARG...]

It imports only the standard library, so it starts in milliseconds without Darkroom's packages.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1
SCRIPT = os.path.abspath(__file__)


def die_with_parent(parent_pid: int | None, sig: int = signal.SIGTERM) -> bool:
    """Ask for `sig` when the parent dies; False if `parent_pid` is already gone (the child was
    orphaned before it could ask, and must end now). Elsewhere than Linux it cannot ask: True."""
    if sys.platform != "linux":
        return True
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return parent_pid is None or os.getppid() == parent_pid


def command(parent_pid: int, argv: list[str]) -> list[str]:
    """The command line that runs `argv` tethered to `parent_pid` (its pid is the command's own)."""
    if sys.platform != "linux":
        return argv
    return [sys.executable, "-I", "-S", SCRIPT, str(parent_pid), *argv]


def main(argv: list[str]) -> int:
    parent, program = int(argv[0]), argv[1:]
    if not die_with_parent(parent):
        return 1
    os.execv(program[0], program)
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
