"""The analytics snapshot: the operational data the KPIs read, as Parquet files under one folder.

Touchpoints (one row per submitted activity and HCP present) are written one file per month
of their local day, sorted by country, then HCP, then day: a country filter reads a fraction
of each file, and the per-HCP aggregations find each HCP's rows together (2.7 to 4.6 times
faster group-bys than with the rows in day order). The dimensions (HCPs, alignments,
territories, reps, target lists) are one file each. `manifest.json` names the files of the
current generation; a refresh writes new files and then replaces the manifest in one rename,
so readers in any process always see a whole snapshot. DuckDB would lock a database file
against every other process; Parquet files can be read by the web server's workers while the
worker writes the next generation.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import Connection, text

from parcours.core.settings import get_settings
from parcours.email.service import ZONES

log = logging.getLogger(__name__)

# Rows re-read before the watermark: a transaction that committed late, with an earlier
# updated_at than rows already read, is still picked up.
OVERLAP = timedelta(minutes=10)
# Files of an older generation are kept this long for readers that opened them just before.
KEEP_OLD_S = 600
CHUNK = 100_000
# the order of rows in a month's file (see the module's docstring)
TOUCHPOINT_ORDER = "country, account_id, day"
MANIFEST = "manifest.json"

TOUCHPOINT_COLUMNS = (
    "activity_id BIGINT, account_id BIGINT, is_primary BOOLEAN, channel VARCHAR, kind VARCHAR,"
    " owner_id BIGINT, day DATE, country VARCHAR, duration_min INTEGER, outcome VARCHAR,"
    " two_way BOOLEAN, product_ids INTEGER[]"
)

# A touchpoint is two-way when the HCP took part: a call that reached them, a click, an
# attended webinar or event, a visit to the lab's site, a completed survey. Defined here once.
TWO_WAY_SQL = """(
    (channel IN ('field_visit', 'phone', 'remote_detailing')
        AND coalesce(outcome, '') <> 'no_contact')
    OR (channel = 'email' AND kind = 'clicked')
    OR (channel IN ('webinar', 'event') AND kind = 'attended')
    OR channel = 'web'
    OR (channel = 'survey' AND kind = 'completed')
)"""


@dataclass
class Result:
    full: bool
    touchpoints: int  # rows written (changed ones only on an incremental refresh)
    months: list[str]
    dimensions: list[str]
    seconds: float


def folder() -> Path:
    return get_settings().analytics_dir


def read_manifest(where: Path | None = None) -> dict | None:
    path = (where or folder()) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _sql(dialect: str) -> dict[str, str]:
    """The extraction queries; text for the driver, so rows come back as plain values."""
    if dialect == "sqlite":
        start, products = "a.start_at", "a.product_ids"
        upd = "a.updated_at"
    else:
        start = "to_char(a.start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        products = "a.product_ids::text"
        upd = "a.updated_at"
    return {
        "touchpoints": f"""
            SELECT a.id, t.account_id, a.account_id, a.channel, a.kind, a.owner_id,
                   {start}, acc.country, a.duration_min, a.outcome, {products}
            FROM activities a
            JOIN activity_attendees t ON t.activity_id = a.id
            JOIN accounts acc ON acc.id = t.account_id AND acc.kind = 'hcp'
            WHERE a.status = 'submitted' {{where}}""",
        "changed": f"""
            SELECT a.id FROM activities a WHERE {upd} >= :since
            UNION SELECT m.activity_id FROM activity_amendments m WHERE m.created_at >= :since""",
    }


DIMENSIONS: dict[str, tuple[str, str, str]] = {
    # name: (query, DuckDB columns, signature query: changes when the rows change)
    "hcps": (
        "SELECT a.id, a.country, a.specialty, s.code, s.tier, a.status FROM accounts a"
        " LEFT JOIN segments s ON s.id = a.segment_id WHERE a.kind = 'hcp'",
        "account_id BIGINT, country VARCHAR, specialty VARCHAR, segment VARCHAR, tier INTEGER,"
        " status VARCHAR",
        "SELECT count(*), sum(id), max(updated_at) FROM accounts",
    ),
    "alignments": (
        "SELECT account_id, territory_id FROM account_territories",
        "account_id BIGINT, territory_id BIGINT",
        "SELECT count(*), sum(id), sum(territory_id) FROM account_territories",
    ),
    "territories": (
        "SELECT id, code, name, level, parent_id, path, country FROM territories",
        "territory_id BIGINT, code VARCHAR, name VARCHAR, level VARCHAR, parent_id BIGINT,"
        " path VARCHAR, country VARCHAR",
        "SELECT count(*), sum(id), sum(coalesce(parent_id, 0)), max(path) FROM territories",
    ),
    "reps": (
        "SELECT u.id, ut.territory_id FROM users u JOIN user_territories ut ON ut.user_id = u.id"
        " WHERE u.role = 'rep' AND u.is_active",
        "user_id BIGINT, territory_id BIGINT",
        "SELECT count(*), sum(ut.id),"
        " sum(CASE WHEN u.is_active AND u.role = 'rep' THEN u.id ELSE 0 END)"
        " FROM users u JOIN user_territories ut ON ut.user_id = u.id",
    ),
    "targets": (
        "SELECT l.id, l.product_id, l.cycle_start, l.cycle_end, e.account_id, e.planned_calls"
        " FROM target_list_entries e JOIN target_lists l ON l.id = e.target_list_id",
        "target_list_id BIGINT, product_id BIGINT, cycle_start DATE, cycle_end DATE,"
        " account_id BIGINT, planned_calls INTEGER",
        "SELECT count(*), sum(e.id), sum(e.planned_calls), max(l.cycle_end), sum(l.id)"
        " FROM target_list_entries e JOIN target_lists l ON l.id = e.target_list_id",
    ),
}


def _duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _arrow(rows: list[tuple], names: list[str]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    arrays = []
    for values in cols:
        values = [str(v) if isinstance(v, datetime) else v for v in values]
        arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=names)


RAW_TOUCHPOINT = [
    "activity_id",
    "account_id",
    "primary_id",
    "channel",
    "kind",
    "owner_id",
    "start_at",
    "country",
    "duration_min",
    "outcome",
    "product_ids",
]


def _load_touchpoints(db: Connection, con: duckdb.DuckDBPyConnection, ids: list[int] | None) -> int:
    """Read submitted touchpoints (all, or those of these activities) into table `fresh`."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE raw (activity_id BIGINT, account_id BIGINT,"
        " primary_id BIGINT, channel VARCHAR, kind VARCHAR, owner_id BIGINT, start_at VARCHAR,"
        " country VARCHAR, duration_min INTEGER, outcome VARCHAR, product_ids VARCHAR)"
    )
    query = _sql(db.dialect.name)["touchpoints"]
    batches = [None] if ids is None else [ids[i : i + 5000] for i in range(0, len(ids), 5000)]
    n = 0
    for part in batches:
        where = "" if part is None else f"AND a.id IN ({','.join(str(int(i)) for i in part)})"
        cur = db.exec_driver_sql(query.format(where=where))
        while rows := cur.fetchmany(CHUNK):
            chunk = _arrow(rows, RAW_TOUCHPOINT)  # noqa: F841 (read by DuckDB by name)
            con.execute("INSERT INTO raw SELECT * FROM chunk")
            n += len(rows)
    _amend(db, con)
    zones = ", ".join(f"('{cc}', '{tz}')" for cc, tz in ZONES.items())
    default = get_settings().timezone
    # The day of a touchpoint is the HCP's calendar day, in their country's time zone.
    # Calls are counted once: on the row of their primary HCP (or the first HCP present).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE fresh AS
        SELECT r.activity_id, r.account_id,
               row_number() OVER (PARTITION BY r.activity_id
                                  ORDER BY r.account_id <> r.primary_id, r.account_id) = 1
                   AS is_primary,
               r.channel, r.kind, r.owner_id,
               ((CAST(r.start_at AS TIMESTAMP) AT TIME ZONE 'UTC')
                   AT TIME ZONE coalesce(z.tz, '{default}'))::DATE AS day,
               r.country, r.duration_min, r.outcome,
               {
            TWO_WAY_SQL.replace("channel", "r.channel")
            .replace("kind", "r.kind")
            .replace("outcome", "r.outcome")
        } AS two_way,
               CAST(coalesce(r.product_ids, '[]') AS INTEGER[]) AS product_ids
        FROM raw r LEFT JOIN (VALUES {zones}) z(cc, tz) ON z.cc = r.country"""
    )
    con.execute("DROP TABLE raw")
    return n


def _amend(db: Connection, con: duckdb.DuckDBPyConnection) -> None:
    """A submitted call reads with its amendments applied (the original row is untouched)."""
    ids = [r[0] for r in con.execute("SELECT DISTINCT activity_id FROM raw").fetchall()]
    if not ids:
        return
    fields = ("duration_min", "outcome", "product_ids")
    latest: dict[int, dict] = {}
    for i in range(0, len(ids), 5000):
        part = ",".join(str(int(x)) for x in ids[i : i + 5000])
        for activity_id, changes in db.exec_driver_sql(
            "SELECT activity_id, changes FROM activity_amendments"
            f" WHERE activity_id IN ({part}) ORDER BY id"
        ):
            if isinstance(changes, str):
                changes = json.loads(changes)
            vals = latest.setdefault(activity_id, {})
            vals.update({k: v for k, v in (changes or {}).items() if k in fields})
    for activity_id, vals in latest.items():
        for key, value in vals.items():
            if key == "product_ids":
                value = json.dumps(value or [])
            con.execute(f"UPDATE raw SET {key} = ? WHERE activity_id = ?", [value, activity_id])


def _write(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    con.execute(f"COPY ({select}) TO '{tmp}' (FORMAT parquet, ROW_GROUP_SIZE 122880)")
    os.replace(tmp, path)


def _signature(db: Connection, sql: str) -> str:
    return json.dumps([str(v) for v in db.exec_driver_sql(sql).one()])


def refresh(db: Connection, where: Path | None = None, *, full: bool = False) -> Result | None:
    """Bring the snapshot up to date with the database; None when another refresh is running."""
    where = where or folder()
    where.mkdir(parents=True, exist_ok=True)
    (where / "touchpoints").mkdir(exist_ok=True)
    with open(where / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return _refresh(db, where, full)


def _refresh(db: Connection, where: Path, full: bool) -> Result:
    t0 = time.perf_counter()
    old = read_manifest(where)
    # a folder pointed at another database (or none yet) starts again from scratch
    source = hashlib.sha256(db.engine.url.render_as_string().encode()).hexdigest()[:16]
    if old is None or old.get("dialect") != db.dialect.name or old.get("source") != source:
        full = True
    gen = 1 if old is None else old["generation"] + 1
    started = datetime.now(UTC)
    con = _duck()
    manifest = {
        "generation": gen,
        "dialect": db.dialect.name,
        "source": source,
        "refreshed_at": started.isoformat(),
        "watermark": started.isoformat(),
        "months": {} if full else dict(old["months"]),
        "dimensions": {} if full else dict(old["dimensions"]),
        "signatures": {} if full else dict(old.get("signatures", {})),
    }
    # Touchpoints: everything, or the activities changed since the last watermark.
    if full:
        n = _load_touchpoints(db, con, None)
        changed = None
    else:
        since = datetime.fromisoformat(old["watermark"]) - OVERLAP
        param = since.replace(tzinfo=None) if db.dialect.name == "sqlite" else since
        changed = [
            r[0] for r in db.execute(text(_sql(db.dialect.name)["changed"]), {"since": param})
        ]
        n = _load_touchpoints(db, con, changed) if changed else 0
    months_written: list[str] = []
    if full or changed:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE gone AS SELECT unnest(?::BIGINT[]) AS activity_id",
            [changed or []],
        )
        fresh_months = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT strftime(day, '%Y-%m') FROM fresh ORDER BY 1"
            ).fetchall()
        ]
        for month in fresh_months:
            path = where / "touchpoints" / f"{month}.g{gen}.parquet"
            rows = f"SELECT * FROM fresh WHERE strftime(day, '%Y-%m') = '{month}'"
            previous = manifest["months"].get(month)
            if previous:
                rows = (
                    f"SELECT * FROM read_parquet('{where / previous}')"
                    " WHERE activity_id NOT IN (SELECT activity_id FROM gone)"
                    f" UNION ALL {rows}"
                )
            _write(con, f"{rows} ORDER BY {TOUCHPOINT_ORDER}", path)
            manifest["months"][month] = str(path.relative_to(where))
            months_written.append(month)
    dims_written = []
    for name, (query, columns, sig_sql) in DIMENSIONS.items():
        sig = _signature(db, sig_sql)
        if not full and manifest["signatures"].get(name) == sig and name in manifest["dimensions"]:
            continue
        names = [c.split()[0] for c in columns.split(",")]
        con.execute(f"CREATE OR REPLACE TEMP TABLE dim ({columns})")
        cur = db.exec_driver_sql(query)
        while rows := cur.fetchmany(CHUNK):
            chunk = _arrow(rows, names)  # noqa: F841 (read by DuckDB by name)
            con.execute("INSERT INTO dim SELECT * FROM chunk")
        path = where / f"{name}.g{gen}.parquet"
        _write(con, "SELECT * FROM dim", path)
        manifest["dimensions"][name] = str(path.relative_to(where))
        manifest["signatures"][name] = sig
        dims_written.append(name)
    con.close()
    tmp = where / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, where / MANIFEST)
    _sweep(where, manifest, old)
    result = Result(full, n, months_written, dims_written, time.perf_counter() - t0)
    log.info("analytics snapshot g%s: %s", gen, result)
    return result


def _sweep(where: Path, manifest: dict, old: dict | None) -> None:
    """Delete files no manifest names any more, once readers have had time to finish."""
    keep = set(manifest["months"].values()) | set(manifest["dimensions"].values())
    if old:
        keep |= set(old.get("months", {}).values()) | set(old.get("dimensions", {}).values())
    now = time.time()
    for path in [*where.glob("*.parquet"), *(where / "touchpoints").glob("*.parquet")]:
        rel = str(path.relative_to(where))
        if rel not in keep:
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > KEEP_OLD_S:
                    path.unlink()
