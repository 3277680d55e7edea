"""The embedded nats-server's user and password: made once per data folder, readable by its owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

CREDENTIALS_FILE = "nats-credentials.json"
USER = "darkroom"


class CredentialsError(Exception):
    """The data folder's credentials file cannot be read."""


class Credentials(msgspec.Struct, frozen=True):
    user: str
    password: str


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from the first byte: readers see the old file or the new."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover partial file may have been made with other modes
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def for_data_folder(data_dir: Path) -> Credentials:
    """The folder's credentials, made on first use; the server's store outlives any one run."""
    path = data_dir / CREDENTIALS_FILE
    if path.is_file():
        try:
            return msgspec.json.decode(path.read_bytes(), type=Credentials)
        except msgspec.DecodeError as exc:
            raise CredentialsError(
                f"{path} is unreadable ({exc}); remove it and start again to make new credentials"
            ) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    # URL-safe characters only: the password goes into nats:// URLs as it is.
    made = Credentials(user=USER, password=secrets.token_urlsafe(32))
    write_private(path, msgspec.json.encode(made).decode() + "\n")
    return made
