"""A thin DB-API shell shared by the controller's databases, with the SQL dialect isolated.

Queries are written once in portable SQL (types, ``ON CONFLICT ... DO UPDATE``, ``TRUE``/
``FALSE``, no AUTOINCREMENT, no ``INSERT OR REPLACE``, no ``PRAGMA`` outside :func:`open_sqlite`)
with ``:name`` placeholders; :func:`to_paramstyle` rewrites them for drivers that use another
style (psycopg: ``%(name)s``). Only the SQLite driver ships (the default: a file in the state
directory); a PostgreSQL connection can be wrapped the same way.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sdn_controller.errors import DatabaseError

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_paramstyle(sql: str, paramstyle: str) -> str:
    """Rewrite ``:name`` placeholders for a DB-API ``paramstyle`` (named or pyformat).

    >>> to_paramstyle("SELECT * FROM users WHERE name = :name", "pyformat")
    'SELECT * FROM users WHERE name = %(name)s'
    """
    if paramstyle == "named":
        return sql
    if paramstyle == "pyformat":
        return _NAMED.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


class SqlDatabase:
    """A connection, a lock (the controller's threads share it) and a transaction helper."""

    def __init__(self, connection: Any, *, paramstyle: str = "named") -> None:
        self._connection = connection
        self._paramstyle = paramstyle
        self._lock = threading.RLock()
        self._depth = 0

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement; return the number of rows it changed."""
        with self._lock:
            try:
                cursor = self._connection.cursor()
                cursor.execute(to_paramstyle(sql, self._paramstyle), dict(params or {}))
                count = cursor.rowcount
                cursor.close()
            except Exception as exc:  # the driver's own error classes differ per driver
                if self._depth == 0:
                    self._connection.rollback()
                raise DatabaseError(f"database error: {exc}") from exc
            if self._depth == 0:
                self._connection.commit()
            return count

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cursor = self._connection.cursor()
                cursor.execute(to_paramstyle(sql, self._paramstyle), dict(params or {}))
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, r)) for r in cursor.fetchall()]
                cursor.close()
            except Exception as exc:
                raise DatabaseError(f"database error: {exc}") from exc
            return rows

    def query_one(self, sql: str, params: Mapping[str, Any] | None = None
                  ) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def run_script(self, statements: Sequence[str]) -> None:
        """Run schema statements one by one (portable: no driver ``executescript``)."""
        with self.transaction():
            for statement in statements:
                self.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all (nests)."""
        with self._lock:
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._connection.rollback()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._connection.commit()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sqlite(path: str | Path = ":memory:") -> SqlDatabase:
    """A SQLite database (file created with its folder; ``:memory:`` for tests)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {path}: {exc}") from exc
    return SqlDatabase(connection, paramstyle="named")
