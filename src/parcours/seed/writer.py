"""The batching writer: DBAPI executemany (SQLite) or COPY (PostgreSQL), pragmas, index rebuild."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

Progress = Callable[[str, int, int], None]

BATCH = 20_000
COMMIT_EVERY = 200_000

# columns written for each table, in FK-safe flush order
COLUMNS: dict[str, tuple[str, ...]] = {
    "segments": ("id", "code", "name", "tier"),
    "products": ("id", "code", "name", "therapeutic_area", "is_active"),
    "territories": ("id", "code", "name", "level", "parent_id", "path", "country"),
    "users": (
        "id",
        "email",
        "full_name",
        "role",
        "language",
        "country",
        "manager_id",
        "password_hash",
        "is_active",
        "failed_logins",
        "created_at",
    ),
    "user_territories": ("id", "user_id", "territory_id"),
    "target_lists": ("id", "name", "product_id", "cycle_start", "cycle_end"),
    "accounts": (
        "id",
        "kind",
        "title",
        "first_name",
        "last_name",
        "specialty",
        "profession",
        "name",
        "hco_type",
        "emails",
        "phones",
        "preferred_language",
        "preferred_channel",
        "segment_id",
        "country",
        "search_name",
        "city",
        "city_key",
        "status",
        "created_at",
        "updated_at",
    ),
    "account_identifiers": ("id", "account_id", "system", "value"),
    "addresses": (
        "id",
        "account_id",
        "line1",
        "line2",
        "postal_code",
        "city",
        "country",
        "is_primary",
    ),
    "affiliations": ("id", "hcp_id", "hco_id", "role", "is_primary"),
    "account_territories": ("id", "account_id", "territory_id"),
    "target_list_entries": ("id", "target_list_id", "account_id", "planned_calls"),
    "activities": (
        "id",
        "channel",
        "kind",
        "status",
        "owner_id",
        "account_id",
        "start_at",
        "duration_min",
        "subject",
        "outcome",
        "notes",
        "product_ids",
        "key_messages",
        "submitted_at",
        "created_at",
        "updated_at",
    ),
    "activity_attendees": ("id", "activity_id", "account_id", "start_at", "channel"),
    "tasks": (
        "id",
        "owner_id",
        "account_id",
        "activity_id",
        "title",
        "due_date",
        "status",
        "created_at",
        "done_at",
    ),
}
ORDER = tuple(COLUMNS)
# big tables: on large loads their secondary indexes (and, on PostgreSQL, their foreign keys)
# are dropped during the load and created again at the end, which is much faster
BULK_TABLES = (
    "accounts",
    "account_identifiers",
    "addresses",
    "affiliations",
    "account_territories",
    "target_list_entries",
    "activities",
    "activity_attendees",
)


# SQLite settings for the load (restored afterwards): no per-row foreign key checks (ids are
# assigned here, consistently), no fsync, a 256 MiB page cache (also the sorter's memory)
SQLITE_PRAGMAS = {"foreign_keys": "OFF", "synchronous": "OFF", "cache_size": "-262144"}


class _Writer:
    """Buffers rows per table and writes them in batches, parents before children."""

    def __init__(self, engine: Engine, batch: int, drop_indexes: bool) -> None:
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"seeding supports SQLite and PostgreSQL, not {self.dialect}")
        self.raw = engine.raw_connection()
        self.dbapi = self.raw.driver_connection
        self.batch = batch
        self.buffers: dict[str, list[tuple]] = {t: [] for t in ORDER}
        self.written: dict[str, int] = dict.fromkeys(ORDER, 0)
        self.pending = 0
        self.dropped: list[str] = []
        self.drop_indexes = drop_indexes
        self.pg = self.dialect == "postgresql"
        # text for timestamps: SQLite stores naive UTC, PostgreSQL parses the offset
        self.ts_suffix = "+00" if self.pg else ".000000"
        self._pragmas: dict[str, object] = {}
        self._sql = {
            t: "INSERT INTO {} ({}) VALUES ({})".format(t, ", ".join(c), ", ".join("?" * len(c)))
            for t, c in COLUMNS.items()
        }

    # -- session setup
    def begin(self) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            cur.execute("SET synchronous_commit = off")
        else:
            if self.dbapi.in_transaction:
                self.dbapi.commit()
            self._pragmas = {p: cur.execute(f"PRAGMA {p}").fetchone()[0] for p in SQLITE_PRAGMAS}
            for name, value in SQLITE_PRAGMAS.items():
                cur.execute(f"PRAGMA {name}={value}")
            cur.execute("BEGIN")
        cur.close()
        if self.drop_indexes:
            self._drop_bulk_indexes()

    def _drop_bulk_indexes(self) -> None:
        cur = self.dbapi.cursor()
        for table in BULK_TABLES:
            if self.pg:
                cur.execute(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                    "WHERE i.schemaname = current_schema() AND i.tablename = %s AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conindid = "
                    "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
                    (table,),
                )
            else:
                cur.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = ? AND sql IS NOT NULL",
                    (table,),
                )
            for name, ddl in cur.fetchall():
                cur.execute(f'DROP INDEX "{name}"')
                self.dropped.append(ddl)
            if self.pg:  # foreign keys are checked row by row by triggers: check once at the end
                cur.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f'",
                    (table,),
                )
                for name, ddl in cur.fetchall():
                    cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                    self.dropped.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
        cur.close()
        self.commit()

    def restore_indexes(self, progress: Progress | None) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            cur.execute("SET maintenance_work_mem = '512MB'")
        for i, ddl in enumerate(self.dropped):
            if progress:
                progress("indexes", i, len(self.dropped))
            cur.execute(ddl)
        if progress:
            progress("indexes", len(self.dropped), len(self.dropped))
        self.dropped = []
        cur.close()
        self.commit(reopen=False)

    # -- rows
    def add(self, table: str, row: tuple) -> None:
        buf = self.buffers[table]
        buf.append(row)
        if len(buf) >= self.batch:
            self.flush(table)

    def flush(self, upto: str | None = None) -> None:
        """Write every buffer up to and including table `upto` (all when None)."""
        for table in ORDER:
            if self.buffers[table]:
                self._write(table, self.buffers[table])
                self.buffers[table] = []
            if table == upto:
                break
        if self.pending >= COMMIT_EVERY:
            self.commit()

    def _write(self, table: str, rows: list[tuple]) -> None:
        cur = self.dbapi.cursor()
        if self.pg:
            with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        else:
            cur.executemany(self._sql[table], rows)
        cur.close()
        self.written[table] += len(rows)
        self.pending += len(rows)

    def commit(self, reopen: bool = True) -> None:
        self.dbapi.commit()
        self.pending = 0
        if reopen and not self.pg:
            self.dbapi.execute("BEGIN")

    def finish(self, progress: Progress | None) -> None:
        """Write what is left, rebuild dropped indexes, move sequences, refresh statistics."""
        self.flush()
        self.commit()
        if self.dropped:
            self.restore_indexes(progress)
        if progress:
            progress("analyze", 0, 1)
        cur = self.dbapi.cursor()
        if self.pg:
            for table in ORDER:
                if self.written[table]:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                    )
            self.commit(reopen=False)
            # VACUUM too, not only ANALYZE: it sets the visibility map, without which
            # index-only scans still read the table (autovacuum may be off or late).
            self.dbapi.autocommit = True
            try:
                for table in ORDER:
                    if self.written[table]:
                        cur.execute(f"VACUUM (ANALYZE) {table}")
            finally:
                self.dbapi.autocommit = False
        else:
            self.commit(reopen=False)
            cur.execute("PRAGMA analysis_limit=1000")
            cur.execute("ANALYZE")
        self.commit(reopen=False)
        cur.close()
        if progress:
            progress("analyze", 1, 1)

    def close(self) -> None:
        """Roll back what is unfinished, put indexes back and restore the connection."""
        try:
            self.dbapi.rollback()
            if self.dropped:  # failed half-way: the tables must keep their indexes
                self.restore_indexes(None)
                self.dbapi.commit()
            cur = self.dbapi.cursor()
            if self.pg:
                cur.execute("RESET synchronous_commit")
                cur.execute("RESET maintenance_work_mem")
                self.dbapi.commit()
            else:
                for name, value in self._pragmas.items():
                    cur.execute(f"PRAGMA {name}={value}")
            cur.close()
        finally:
            self.raw.close()
