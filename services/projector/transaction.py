"""One batch of the read model's statements in one SQLite transaction, on a plain connection: run in
the projector's connection thread and in a rebuild's writer process (which imports nothing heavy)."""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Sequence


def transact(db: sqlite3.Connection, statements: Iterable[tuple[str, Sequence[Sequence[Any]]]]) -> None:
    """Each SQL with the parameters of its rows, committed together or not at all."""
    db.execute("BEGIN")
    try:
        for sql, params in statements:
            db.executemany(sql, params)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full or failing disk)
            db.execute("ROLLBACK")
        raise
