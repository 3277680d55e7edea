"""Identifiers: time-sortable, subject-safe, no coordination needed."""

import hashlib
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 characters."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _ulid(ms, int.from_bytes(os.urandom(10), "big"))


def is_id(text: str) -> bool:
    """Whether `text` is an id Darkroom gives (a ULID): safe in a subject."""
    return len(text) == 26 and all(c in _ALPHABET for c in text)


def derived_id(ms: int, key: str) -> str:
    """A ULID whose 80 bits come from `key` instead of chance: whoever derives it from the same key
    names the same thing, with no coordination either."""
    return _ulid(ms, int.from_bytes(hashlib.blake2b(key.encode(), digest_size=10).digest(), "big"))


def _ulid(ms: int, rest: int) -> str:
    value = (ms << 80) | rest
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def job_id(task_id: str, step_index: int) -> str:
    """A step's job id is derived from its task, so a retried publish names the same job."""
    return f"{task_id}-{step_index}"
