"""Who keeps a read model file: one projector writes it, marked by a lock the system drops when
its process ends however it ends, with who holds it written inside for the others to name."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class KeptElsewhere(Exception):
    """Another process keeps this read model."""


class Keeper:
    def __init__(self, read_model: Path) -> None:
        self.path = read_model.with_name(read_model.name + ".keeper")
        self._fd: int | None = None

    def take(self, who: str) -> bool:
        """Become the keeper (False: another process is); `who` is what the others are told."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{who} (pid {os.getpid()})\n".encode())
        self._fd = fd
        return True

    def kept(self) -> bool:
        """Whether a process keeps it now (without becoming its keeper)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None
