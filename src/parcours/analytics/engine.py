"""DuckDB over the snapshot: one in-memory database per process whose views name the files
of the current generation, re-pointed when the worker writes a new one."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb

from parcours.analytics import snapshot

EMPTY = {
    "touchpoints": snapshot.TOUCHPOINT_COLUMNS,
    **{name: cols for name, (_q, cols, _s) in snapshot.DIMENSIONS.items()},
}


class Engine:
    """Views over one snapshot folder; cursor() gives a connection for one thread."""

    def __init__(self, where: Path, memory_limit: str | None = None):
        self.where = where
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {os.cpu_count() or 1}")
        self.con.execute("SET TimeZone = 'UTC'")
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.generation: int | None = None
        self.manifest: dict | None = None
        self._mtime = None
        self._lock = threading.Lock()

    def _point(self) -> None:
        path = self.where / snapshot.MANIFEST
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime and self.manifest is not None:
            return
        with self._lock:
            manifest = snapshot.read_manifest(self.where) or {
                "generation": 0,
                "months": {},
                "dimensions": {},
            }
            months = [str(self.where / p) for _m, p in sorted(manifest["months"].items())]
            views = {"touchpoints": months} | {
                name: [str(self.where / p)] if p else []
                for name, p in ((n, manifest["dimensions"].get(n)) for n in snapshot.DIMENSIONS)
            }
            # one transaction: a query running on another thread sees the old views or the
            # new ones, never a missing one
            self.con.execute("BEGIN TRANSACTION")
            try:
                for name, files in views.items():
                    kind = self.con.execute(
                        "SELECT table_type FROM information_schema.tables WHERE table_name = ?",
                        [name],
                    ).fetchone()
                    if kind and (kind[0] != "VIEW" or not files):
                        self.con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} {name}")
                    if files:
                        listing = ", ".join(f"'{f}'" for f in files)
                        self.con.execute(
                            f"CREATE OR REPLACE VIEW {name} AS"
                            f" SELECT * FROM read_parquet([{listing}])"
                        )
                    else:  # nothing written yet: an empty table of the right shape
                        self.con.execute(f"CREATE TABLE {name} ({EMPTY[name]})")
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.manifest = manifest
            self.generation = manifest["generation"]
            self._mtime = mtime

    def cursor(self) -> duckdb.DuckDBPyConnection:
        self._point()
        return self.con.cursor()


_ENGINES: dict[Path, Engine] = {}
_LOCK = threading.Lock()


def engine(where: Path | None = None) -> Engine:
    where = where or snapshot.folder()
    with _LOCK:
        if where not in _ENGINES:
            _ENGINES[where] = Engine(where)
        return _ENGINES[where]
