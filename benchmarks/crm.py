#!/usr/bin/env python
"""CRM benchmark: seeding rate, HCP search, HCP 360 timeline and call-report submission.

Runs against SQLite and/or PostgreSQL, at 100,000 HCPs and about 5,000,000 activities by
default, and prints one JSON document (also written to benchmarks/results/crm-<backend>.json).

For each backend:

1. seeding: `parcours.seed.run` on a freshly migrated database, in a child process (so its
   peak RSS is its own); activities per second.
2. in-process: the service functions (search_accounts, timeline, submit_activity) called
   directly, one session per call as a request would have, no HTTP: where the time goes.
   The SQL each one runs is captured and explained (EXPLAIN QUERY PLAN on SQLite,
   EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL); `--profile` adds cProfile listings.
3. HTTP: uvicorn serving the real application in a subprocess, driven from a second
   process (a load generator with --clients threads, keep-alive connections to 127.0.0.1)
   for --duration seconds per phase: search as rep, manager and admin, timeline, and
   create + submit of call reports; with 1 worker (latency), then 2 workers (throughput).

Usage:  .venv/bin/python benchmarks/crm.py [--backend sqlite|postgresql|both] [--hcps N]
        [--months M] [--reps R] [--duration S] [--clients C] [--reuse] [--profile]
   or:  .venv/bin/parcours bench crm [same options]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import platform
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"  # every request of the benchmark goes here and nowhere else
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/parcours_bench"
PROTECTED_PG_DATABASES = {"test", "postgres", "template0", "template1", "root"}
PASSWORD = "bench-password-123"
EMAILS = {
    "rep": "rep@parcours.demo",
    "manager": "manager@parcours.demo",
    "admin": "admin@parcours.demo",
}
TARGETS = {  # from the issue
    "seed_activities_per_s": 50_000,  # SQLite, at least
    "search_p99_ms": 50,
    "timeline_p99_ms": 30,
    "submit_p99_ms": 20,
}
HARD_MAX_REQUESTS = 1_000_000  # per phase, whatever the options say


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- small helpers


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """VmHWM of a process (peak resident set), in MiB; None when it can't be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("PPid:"):
                    if int(line.split()[1]) == pid:
                        out.append(int(entry.name))
                    break
        except OSError:
            continue
    return out


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarize(lat_ms: list[float], elapsed_s: float | None = None) -> dict:
    s = sorted(lat_ms)
    out = {"n": len(s)}
    if s:
        out.update(
            {
                "p50_ms": round(percentile(s, 50), 2),
                "p95_ms": round(percentile(s, 95), 2),
                "p99_ms": round(percentile(s, 99), 2),
                "max_ms": round(s[-1], 2),
                "mean_ms": round(sum(s) / len(s), 2),
            }
        )
    if elapsed_s:
        out["per_s"] = round(len(s) / elapsed_s, 1)
    return out


def machine_info() -> dict:
    info: dict = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    with contextlib.suppress(Exception):
        import sqlalchemy
        import uvicorn

        info["sqlalchemy"] = sqlalchemy.__version__
        info["uvicorn"] = uvicorn.__version__
    return info


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


def _jiffies(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def _machine_jiffies() -> tuple[int, int]:
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(vals), vals[3] + vals[4]  # total, idle + iowait


def db_backend_pids(dbname: str | None) -> list[int]:
    """PostgreSQL backends serving dbname (their process title names the database)."""
    if not dbname:
        return []
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if title.startswith("postgres: ") and f" {dbname} " in title:
                    out.append(int(entry.name))
    return out


class CpuMeter:
    """CPU used during a window, in cores: the machine, the server, the database, this
    process, and everybody else ("foreign": other users' work on a shared machine)."""

    def __init__(self, server_pids: list[int] | None = None, dbname: str | None = None):
        self.server_pids = list(server_pids or [])
        for pid in list(self.server_pids):
            self.server_pids += children_of(pid)
        self.db_pids = db_backend_pids(dbname)

    def __enter__(self):
        self.t0 = time.monotonic()
        self.machine0 = _machine_jiffies()
        self.server0 = {p: _jiffies(p) for p in self.server_pids}
        self.db0 = {p: _jiffies(p) for p in self.db_pids}
        self.self0 = time.process_time()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        total1, idle1 = _machine_jiffies()
        dt = max(1, total1 - self.machine0[0])
        busy = (dt - (idle1 - self.machine0[1])) / dt * (os.cpu_count() or 1)
        tck = os.sysconf("SC_CLK_TCK")

        def cores(before: dict) -> float:
            used = 0
            for pid, j0 in before.items():
                j1 = _jiffies(pid)
                if j0 is not None and j1 is not None:
                    used += j1 - j0
            return used / tck / max(wall, 1e-9)

        server, db = cores(self.server0), cores(self.db0)
        me = (time.process_time() - self.self0) / max(wall, 1e-9)
        self.result = {
            "machine_busy_cores": round(busy, 2),
            "server_cores": round(server, 2),
            "db_cores": round(db, 2),
            "bench_cores": round(me, 2),
            "foreign_cores": round(max(0.0, busy - server - db - me), 2),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }


def wait_idle(max_wait_s: float, threshold_cores: float = 0.3) -> dict | None:
    """Wait (bounded) until the machine is nearly idle: others may share it."""
    if max_wait_s <= 0:
        return None
    t0 = time.monotonic()
    while True:
        total0, idle0 = _machine_jiffies()
        time.sleep(2)
        total1, idle1 = _machine_jiffies()
        busy = (1 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or 1)
        waited = time.monotonic() - t0
        if busy < threshold_cores or waited >= max_wait_s:
            if waited > 3:
                log(f"  waited {waited:.0f} s for an idle machine (busy {busy:.2f} cores)")
            return {"waited_s": round(waited, 1), "busy_cores_before": round(busy, 2)}


# --------------------------------------------------------------------------- databases


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def pg_database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def libpq(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def ensure_pg_database(url: str) -> None:
    """Create the benchmark database when it is missing (what `createdb` would do)."""
    import psycopg

    name = pg_database_name(url)
    if name in PROTECTED_PG_DATABASES:
        raise SystemExit(f"refusing to use the PostgreSQL database {name!r}; pick another")
    with psycopg.connect(libpq(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def reset_database(backend: str, url: str, sqlite_path: Path) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(sqlite_path) + suffix).unlink(missing_ok=True)
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    ensure_pg_database(url)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")


def use_database(url: str):
    """Point parcours' settings and engine at url; returns the engine."""
    from parcours.core import db
    from parcours.core.settings import get_settings

    os.environ["PARCOURS_DATABASE_URL"] = url
    get_settings.cache_clear()
    db.reset()
    return db.get_engine()


def user_count(engine) -> int:
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one()
    except Exception:  # noqa: BLE001 - no table yet
        return 0


def dataset_figures(engine, backend: str, sqlite_path: Path) -> dict:
    from sqlalchemy import text

    out: dict = {}
    with engine.connect() as conn:
        for label, sql in (
            ("hcps", "SELECT COUNT(*) FROM accounts WHERE kind = 'hcp'"),
            ("hcos", "SELECT COUNT(*) FROM accounts WHERE kind = 'hco'"),
            ("activities", "SELECT COUNT(*) FROM activities"),
            ("attendees", "SELECT COUNT(*) FROM activity_attendees"),
            ("users", "SELECT COUNT(*) FROM users"),
            ("reps", "SELECT COUNT(*) FROM users WHERE role = 'rep'"),
            ("territories", "SELECT COUNT(*) FROM territories"),
            ("audit_records", "SELECT COUNT(*) FROM audit_records"),
        ):
            out[label] = conn.execute(text(sql)).scalar_one()
        if backend == "postgresql":
            out["db_size_mib"] = round(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                / 2**20,
                1,
            )
            out["server_version"] = conn.execute(text("SHOW server_version")).scalar_one()
            out["shared_buffers"] = conn.execute(text("SHOW shared_buffers")).scalar_one()
            out["work_mem"] = conn.execute(text("SHOW work_mem")).scalar_one()
        else:
            size = sum(
                Path(str(sqlite_path) + s).stat().st_size
                for s in ("", "-wal")
                if Path(str(sqlite_path) + s).exists()
            )
            out["db_size_mib"] = round(size / 2**20, 1)
    return out


# --------------------------------------------------------------------------- seeding (child)


def seed_child(argv: list[str]) -> None:
    """`crm.py _seed URL HCPS REPS MONTHS SEED PASSWORD`: seed, print one JSON line."""
    url, hcps, reps, months, seed, password = argv
    from parcours import seed as seeding
    from parcours.core.db import make_engine

    engine = make_engine(url)
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 10 or done == total:
            last[0] = now
            log(f"  seed {stage:<11} {done:>11,}/{total:,}")

    t0 = time.perf_counter()
    result = seeding.run(
        engine,
        hcps=int(hcps),
        reps=int(reps),
        months=int(months),
        seed=int(seed),
        password=password,
        progress=progress,
    )
    wall = time.perf_counter() - t0
    engine.dispose()
    out = {k: v for k, v in result.__dict__.items() if k != "password"}
    out["wall_s"] = round(wall, 2)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out), flush=True)


def run_seed(url: str, hcps: int, reps: int, months: int, seed: int, password: str) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_seed",
        url,
        str(hcps),
        str(reps),
        str(months),
        str(seed),
        password,
    ]
    log(f"seeding {hcps:,} HCPs, {reps} reps, {months} months")
    t0, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    total0, idle0 = _machine_jiffies()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=6 * 3600, check=False)
    total1, idle1 = _machine_jiffies()
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - t0
    busy = (1 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or 1)
    child = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
    if proc.returncode != 0:
        raise SystemExit(f"seeding failed (exit {proc.returncode})")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["activities_per_s"] = round(res["activities"] / res["seconds"]) if res["seconds"] else None
    res["target_activities_per_s"] = TARGETS["seed_activities_per_s"]
    res["reps"] = reps
    res["months"] = months
    res["cpu"] = {
        "machine_busy_cores": round(busy, 2),
        "seed_process_cores": round(child, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    log(
        f"seeded {res['activities']:,} activities in {res['seconds']:.1f} s "
        f"({res['activities_per_s']:,}/s), peak RSS {res['peak_rss_mib']} MiB"
    )
    return res


# --------------------------------------------------------------------------- workload samples


def sample_workload(engine, seed: int) -> dict:
    """Users, search queries, timeline accounts and call-report targets drawn from the data."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from parcours.accounts.models import Account, AccountTerritory, Product
    from parcours.accounts.service import territory_scope
    from parcours.activities.models import Attendee
    from parcours.core.models import User

    rng = random.Random(seed)
    out: dict = {"users": {}, "search": {}, "scope_accounts": {}}
    with Session(engine) as session:
        for role, email in EMAILS.items():
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                raise SystemExit(f"{email} is missing: seed the database first")
            scope = territory_scope(session, user)
            out["users"][role] = {"id": user.id, "email": email, "role": user.role}
            if scope is None:
                ids = list(session.scalars(select(Account.id).where(Account.kind == "hcp")))
            else:
                ids = sorted(
                    set(
                        session.scalars(
                            select(AccountTerritory.account_id)
                            .join(Account, Account.id == AccountTerritory.account_id)
                            .where(
                                AccountTerritory.territory_id.in_(scope or [-1]),
                                Account.kind == "hcp",
                            )
                        )
                    )
                )
            out["scope_accounts"][role] = len(ids)
            if not ids:
                raise SystemExit(f"{email} sees no HCP; cannot benchmark")
            picked = rng.sample(ids, min(400, len(ids)))
            rows = session.execute(
                select(Account.last_name, Account.specialty, Account.city).where(
                    Account.id.in_(picked)
                )
            ).all()
            queries = []
            for last, specialty, city in rows:
                params = {"q": (last or "")[: rng.choice((2, 3, 3, 4))]}
                if specialty:
                    params["specialty"] = specialty
                if city:
                    params["city"] = city
                queries.append(params)
            rng.shuffle(queries)
            out["search"][role] = queries
            if role == "rep":
                rep_ids = ids
        # timeline: the rep's accounts that have activities
        picked = rng.sample(rep_ids, min(1500, len(rep_ids)))
        with_acts = sorted(
            set(
                session.scalars(
                    select(Attendee.account_id).where(Attendee.account_id.in_(picked)).distinct()
                )
            )
        )
        rng.shuffle(with_acts)
        out["timeline_accounts"] = with_acts[:400]
        out["rep_accounts"] = rng.sample(rep_ids, min(1000, len(rep_ids)))
        out["product_ids"] = list(session.scalars(select(Product.id).where(Product.is_active)))
        out["max_activity_id"] = session.scalar(select(func.max(Attendee.activity_id)))
    if not out["timeline_accounts"]:
        raise SystemExit("the rep's accounts have no activities; seed with --months >= 1")
    return out


def activity_body(rng: random.Random, work: dict) -> dict:
    start = datetime.now(UTC) - timedelta(minutes=30 + rng.randrange(72 * 60))
    return {
        "account_ids": [rng.choice(work["rep_accounts"])],
        "channel": "field_visit",
        "status": "saved",
        "start_at": start.isoformat(),
        "duration_min": rng.choice((10, 15, 20, 30)),
        "outcome": "positive",
        "subject": "Benchmark visit",
        "product_ids": [rng.choice(work["product_ids"])],
        "key_messages": ["Benchmark key message"],
    }


# --------------------------------------------------------------------------- in-process


class SqlCapture:
    """Collects the statements an engine runs while active."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[tuple[str, object]] = []
        self.active = False

    def __enter__(self):
        from sqlalchemy import event

        self.active = True
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._hook)
        self.active = False

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        if not executemany:
            self.statements.append((statement, parameters))


def explain(engine, statements: list[tuple[str, object]]) -> list[dict]:
    """The plan of each SELECT among statements (re-run for EXPLAIN ANALYZE on PostgreSQL)."""
    out = []
    pg = engine.dialect.name == "postgresql"
    seen = set()
    for sql, params in statements:
        head = sql.lstrip().upper()
        if not head.startswith("SELECT") or sql in seen:
            continue
        if "pg_advisory" in sql or "FROM api_tokens" in sql:
            continue
        seen.add(sql)
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if pg:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = [r[0] for r in cur.fetchall()]
            else:
                cur.execute("EXPLAIN QUERY PLAN " + sql, params)
                rows = cur.fetchall()
                depth: dict[int, int] = {0: 0}
                plan = []
                for node, parent, _unused, detail in rows:
                    depth[node] = depth.get(parent, 0) + 1
                    plan.append("  " * (depth[node] - 1) + detail)
            cur.close()
            raw.rollback()
        finally:
            raw.close()
        out.append({"sql": " ".join(sql.split()), "params": repr(params)[:300], "plan": plan})
    return out


def inprocess(
    engine,
    work: dict,
    iterations: int,
    max_s: float,
    profile_dir: Path | None,
    backend: str,
    wait_idle_s: float = 0,
) -> tuple[dict, dict]:
    """Service-level latency: new session, load user, call the service, commit, close."""
    import cProfile
    import io
    import pstats

    from parcours.accounts import service as accounts
    from parcours.activities import service as activities
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.models import User

    rng = random.Random(7)
    rep = work["users"]["rep"]

    def one_search(role: str) -> None:
        params = rng.choice(work["search"][role])
        filters = accounts.SearchFilters(
            q=params.get("q"), specialty=params.get("specialty"), city=params.get("city")
        )
        s = new_session(write=False)
        try:
            user = s.get(User, work["users"][role]["id"])
            accounts.search_accounts(s, user, filters, limit=25)
            s.commit()
        finally:
            s.close()

    def one_timeline() -> None:
        s = new_session(write=False)
        try:
            user = s.get(User, rep["id"])
            activities.timeline(s, user, rng.choice(work["timeline_accounts"]), limit=20)
            s.commit()
        finally:
            s.close()

    def one_create() -> int:
        body = activity_body(rng, work)
        body["start_at"] = datetime.fromisoformat(body["start_at"])
        s = new_session(write=True)
        try:
            user = s.get(User, rep["id"])
            with audit.acting_as(user.id, user.email):
                act = activities.create_activity(s, user, **body)
                s.commit()
            return act.id
        finally:
            s.close()

    def one_submit(activity_id: int) -> None:
        s = new_session(write=True)
        try:
            user = s.get(User, rep["id"])
            with audit.acting_as(user.id, user.email):
                activities.submit_activity(s, user, activity_id)
                s.commit()
        finally:
            s.close()

    def timed(fn, n: int) -> list[float]:
        lat = []
        stop = time.perf_counter() + max_s
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            lat.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > stop:
                break
        return lat

    def submit_pair_lat(n: int) -> tuple[list[float], list[float]]:
        created, submitted = [], []
        stop = time.perf_counter() + max_s
        for _ in range(n):
            t0 = time.perf_counter()
            aid = one_create()
            t1 = time.perf_counter()
            one_submit(aid)
            t2 = time.perf_counter()
            created.append((t1 - t0) * 1000)
            submitted.append((t2 - t1) * 1000)
            if t2 > stop:
                break
        return created, submitted

    ops = {
        "search_rep": lambda: one_search("rep"),
        "search_manager": lambda: one_search("manager"),
        "search_admin": lambda: one_search("admin"),
        "timeline_rep": one_timeline,
    }
    # warm-up: caches, compiled statements, connection pool
    for fn in ops.values():
        for _ in range(20):
            fn()
    submit_pair_lat(10)

    dbname = pg_database_name(str(engine.url)) if backend == "postgresql" else None
    results: dict = {}
    for name, fn in ops.items():
        wait_idle(wait_idle_s)
        with CpuMeter(dbname=dbname) as meter:
            lat = timed(fn, iterations)
        results[name] = {**summarize(lat), "cpu": meter.result}
        log(f"  in-process {name:<15} {fmt(results[name])} | {fmt_cpu(meter.result)}")
    wait_idle(wait_idle_s)
    with CpuMeter(dbname=dbname) as meter:
        created, submitted = submit_pair_lat(iterations)
    results["create_rep"] = {**summarize(created), "cpu": meter.result}
    results["submit_rep"] = {**summarize(submitted), "cpu": meter.result}
    log(f"  in-process {'create_rep':<15} {fmt(results['create_rep'])}")
    log(f"  in-process {'submit_rep':<15} {fmt(results['submit_rep'])} | {fmt_cpu(meter.result)}")

    # the SQL behind one call of each, with its plan
    plans: dict = {}
    for name, fn in (
        ("search_rep", ops["search_rep"]),
        ("search_admin", ops["search_admin"]),
        ("timeline_rep", one_timeline),
    ):
        with SqlCapture(engine) as cap:
            fn()
        plans[name] = explain(engine, cap.statements)
    aid = one_create()
    with SqlCapture(engine) as cap:
        one_submit(aid)
    plans["submit_rep"] = explain(engine, cap.statements)
    plans["submit_rep_statements"] = [" ".join(s.split())[:300] for s, _ in cap.statements]

    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        for name, fn in (*ops.items(), ("submit_rep", None)):
            prof = cProfile.Profile()
            if fn is None:
                ids = [one_create() for _ in range(min(iterations, 200))]
                prof.enable()
                for i in ids:
                    one_submit(i)
                prof.disable()
            else:
                prof.enable()
                for _ in range(min(iterations, 200)):
                    fn()
                prof.disable()
            buf = io.StringIO()
            stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative")
            stats.print_stats(40)
            buf.write("\n--- by own time ---\n")
            stats.sort_stats("tottime").print_stats(25)
            path = profile_dir / f"crm-{backend}-profile-{name}.txt"
            path.write_text(buf.getvalue())
            log(f"  profile written to {path.relative_to(ROOT)}")
    return results, plans


def fmt_cpu(c: dict) -> str:
    return (
        f"cores: server {c['server_cores']:.2f} db {c['db_cores']:.2f} "
        f"bench {c['bench_cores']:.2f} foreign {c['foreign_cores']:.2f}"
    )


def fmt(s: dict) -> str:
    if not s.get("n"):
        return "no samples"
    extra = f" {s['per_s']:>8.1f}/s" if "per_s" in s else ""
    return (
        f"n={s['n']:<6} p50={s['p50_ms']:>7.2f} p95={s['p95_ms']:>7.2f} "
        f"p99={s['p99_ms']:>7.2f} max={s['max_ms']:>8.2f} ms{extra}"
    )


# --------------------------------------------------------------------------- HTTP server


class Server:
    """uvicorn serving parcours.app:create_app, each process in its own process group.

    processes > 1 starts that many single-worker uvicorn processes on consecutive ports
    (the load generator spreads its clients over them); workers > 1 uses uvicorn's own
    multi-worker supervisor on one port, which loses TCP_NODELAY on Linux (uvicorn #3149):
    each keep-alive request then waits ~40 ms for the client's delayed ACK.
    """

    def __init__(self, url: str, port: int, *, processes: int = 1, workers: int = 1):
        self.url, self.workers = url, workers
        self.ports = [port + i for i in range(processes)]
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        for port in self.ports:
            if not port_free(port):
                raise SystemExit(f"port {port} on {HOST} is taken; pass --port")
        uvicorn = Path(sys.executable).parent / "uvicorn"
        env = {**os.environ, "PARCOURS_DATABASE_URL": self.url}
        for port in self.ports:
            cmd = ([str(uvicorn)] if uvicorn.exists() else [sys.executable, "-m", "uvicorn"]) + [
                "parcours.app:create_app",
                "--factory",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            self.procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True))
        deadline = time.monotonic() + 90
        for proc, port in zip(self.procs, self.ports, strict=True):
            while True:
                if proc.poll() is not None:
                    self.stop()
                    raise SystemExit(f"uvicorn exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("uvicorn did not become healthy in 90 s")
                try:
                    if request("GET", port, "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
        if self.workers > 1:  # every worker must be up before measuring
            time.sleep(3)
        return self

    def memory(self) -> dict:
        """Peak RSS (VmHWM) of every server process: uvicorn processes and their workers."""
        peaks = []
        for proc in self.procs:
            peaks.append(peak_rss_mib(proc.pid))
            for child in children_of(proc.pid):
                with contextlib.suppress(OSError):
                    if b"resource_tracker" in Path(f"/proc/{child}/cmdline").read_bytes():
                        continue
                peaks.append(peak_rss_mib(child))
        peaks = [p for p in peaks if p is not None]
        return {
            "processes": len(self.procs),
            "uvicorn_workers_each": self.workers,
            "peak_rss_mib_each": peaks,
            "peak_rss_mib_total": round(sum(peaks), 1),
        }

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def __exit__(self, *exc):
        self.stop()


def request(
    method: str, port: int, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def login(port: int, email: str, password: str) -> str:
    status, data = request(
        "POST", port, "/api/v1/auth/token", {"email": email, "password": password}
    )
    if status != 200:
        raise SystemExit(
            f"login as {email} failed ({status}): {data[:200]!r}; "
            "seeded with another password? pass --password"
        )
    return json.loads(data)["access_token"]


# --------------------------------------------------------------------------- load generator


def load_child(argv: list[str]) -> None:
    """`crm.py _load SPEC.json`: drive the server from this process, print JSON results."""
    spec = json.loads(Path(argv[0]).read_text())
    ports, clients = spec["ports"], spec["clients"]
    headers = {"Authorization": f"Bearer {spec['token']}", "Accept": "application/json"}
    post_headers = {**headers, "Content-Type": "application/json"}
    mode = spec["mode"]
    names = ("create", "submit") if mode == "submit" else ("get",)
    max_requests = min(spec["max_requests"], HARD_MAX_REQUESTS)

    def run_phase(seconds: float, record: bool) -> dict:
        counter = itertools.count()
        deadline = time.perf_counter() + seconds
        results = [{n: [] for n in names} for _ in range(clients)]
        errors = [{"count": 0, "sample": None, "statuses": {}} for _ in range(clients)]

        def call(conn_box, method, path, body, port):
            t0 = time.perf_counter()
            try:
                conn_box[0].request(
                    method, path, body=body, headers=post_headers if body is not None else headers
                )
                resp = conn_box[0].getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn_box[0].close()
                conn_box[0] = http.client.HTTPConnection(HOST, port, timeout=30)
                return None, repr(exc).encode(), (time.perf_counter() - t0) * 1000
            dt = (time.perf_counter() - t0) * 1000
            return resp.status, data, dt

        def fail(i, status, data):
            e = errors[i]
            e["count"] += 1
            e["statuses"][str(status)] = e["statuses"].get(str(status), 0) + 1
            if e["sample"] is None:
                e["sample"] = data[:300].decode("utf-8", "replace")

        def worker(i: int) -> None:
            rng = random.Random(spec["seed"] * 1000 + i + (0 if record else 500))
            port = ports[i % len(ports)]
            box = [http.client.HTTPConnection(HOST, port, timeout=30)]
            mine = results[i]
            while time.perf_counter() < deadline and next(counter) < max_requests:
                if mode == "get":
                    path = spec["paths"][rng.randrange(len(spec["paths"]))]
                    status, data, dt = call(box, "GET", path, None, port)
                    if status == 200:
                        mine["get"].append(dt)
                    else:
                        fail(i, status, data)
                    continue
                body = activity_body(rng, spec["work"])
                status, data, dt = call(
                    box, "POST", "/api/v1/activities", json.dumps(body).encode(), port
                )
                if status != 201:
                    fail(i, status, data)
                    continue
                mine["create"].append(dt)
                aid = json.loads(data)["id"]
                status, data, dt = call(box, "POST", f"/api/v1/activities/{aid}/submit", b"", port)
                if status == 200:
                    mine["submit"].append(dt)
                else:
                    fail(i, status, data)
            box[0].close()

        meter = CpuMeter(spec["server_pids"], spec["dbname"])
        with meter:
            t0 = time.perf_counter()
            threads = [
                threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 120)
            elapsed = time.perf_counter() - t0
        if not record:
            return {}
        merged = {n: [x for r in results for x in r[n]] for n in names}
        statuses: dict = {}
        for e in errors:
            for k, v in e["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        return {
            "elapsed_s": elapsed,
            "cpu": meter.result,
            "lat_ms": merged,
            "errors": sum(e["count"] for e in errors),
            "error_statuses": statuses,
            "error_sample": next((e["sample"] for e in errors if e["sample"]), None),
        }

    run_phase(spec["warmup_s"], record=False)
    print(json.dumps(run_phase(spec["duration_s"], record=True)), flush=True)


def drive(
    ports: list[int],
    token: str,
    mode: str,
    *,
    paths: list[str] | None = None,
    work: dict | None = None,
    clients: int,
    duration: float,
    max_requests: int,
    seed: int,
    server_pids: list[int],
    dbname: str | None,
    wait_idle_s: float,
) -> dict:
    """Run the load generator in a second process and summarise what it measured."""
    idle = wait_idle(wait_idle_s)
    spec = {
        "ports": ports,
        "token": token,
        "mode": mode,
        "paths": paths or [],
        "work": {k: work[k] for k in ("rep_accounts", "product_ids")} if work else None,
        "clients": clients,
        "duration_s": duration,
        "warmup_s": min(3.0, duration / 4),
        "max_requests": max_requests,
        "seed": seed,
        "server_pids": server_pids,
        "dbname": dbname,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
        spec_path = f.name
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "_load", spec_path],
            stdout=subprocess.PIPE,
            text=True,
            timeout=duration + 300,
            check=False,
        )
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise SystemExit(f"load generator failed (exit {proc.returncode})")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    elapsed = raw["elapsed_s"]
    out: dict = {
        "clients": clients,
        "elapsed_s": round(elapsed, 2),
        "errors": raw["errors"],
        "cpu": raw["cpu"],
    }
    if idle:
        out["idle_wait"] = idle
    if raw["errors"]:
        out["error_statuses"] = raw["error_statuses"]
        out["error_sample"] = raw["error_sample"]
    for name, lat in raw["lat_ms"].items():
        out[name] = summarize(lat, elapsed)
    if mode == "submit":
        out["http_requests_per_s"] = round(
            (len(raw["lat_ms"]["create"]) + len(raw["lat_ms"]["submit"])) / elapsed, 1
        )
    return out


def http_phases(
    url: str,
    work: dict,
    args,
    phases: list[tuple[str, int]],
    tokens: dict,
    *,
    processes: int = 1,
    workers: int = 1,
) -> tuple[dict, dict]:
    """Start the server, run each (phase, clients) from a second process, stop the server."""
    label = (
        f"{processes} uvicorn processes x 1 worker"
        if processes > 1
        else f"uvicorn --workers {workers}"
    )
    log(f"HTTP, {label}, {args.duration:g} s/phase")
    out: dict = {"server": label}
    with Server(url, args.port, processes=processes, workers=workers) as server:
        if not tokens:
            for role in ("rep", "manager", "admin"):
                tokens[role] = login(args.port, EMAILS[role], args.password)
        for phase, clients in phases:
            kind, role = phase.split("_")
            common = {
                "clients": clients,
                "max_requests": args.max_requests,
                "seed": args.seed,
                "duration": args.duration if clients > 1 else max(2.0, args.duration / 3),
                "server_pids": [proc.pid for proc in server.procs],
                "dbname": pg_database_name(url) if url.startswith("postgresql") else None,
                "wait_idle_s": args.wait_idle,
            }
            if kind == "search":
                paths = [
                    "/api/v1/accounts?" + urlencode(q, quote_via=quote)
                    for q in work["search"][role]
                ]
                res = drive(server.ports, tokens[role], "get", paths=paths, **common)
            elif kind == "timeline":
                paths = [f"/api/v1/accounts/{a}/timeline" for a in work["timeline_accounts"]]
                res = drive(server.ports, tokens[role], "get", paths=paths, **common)
            else:
                res = drive(server.ports, tokens[role], "submit", work=work, **common)
            if "get" in res:
                res[kind] = res.pop("get")
            key = phase if clients > 1 else f"{phase}_1client"
            out[key] = res
            for name in ("search", "timeline", "create", "submit"):
                if name in res:
                    shown = key if name == kind else f"{key}:{name}"
                    log(
                        f"  http {shown:<26} {fmt(res[name])}"
                        + (f" errors={res['errors']}" if res["errors"] else "")
                        + f" | {fmt_cpu(res['cpu'])}"
                    )
        memory = server.memory()
    return out, memory


def profile_http(work: dict, backend: str, n: int, password: str) -> None:
    """cProfile of whole API requests, with the threadpool hop made inline so that one
    profiler sees the ASGI stack, auth, the service, and response validation together."""
    import asyncio
    import cProfile
    import io
    import pstats

    import anyio.to_thread
    import httpx

    from parcours.app import create_app

    async def inline(func, *args, abandon_on_cancel=False, cancellable=None, limiter=None):
        return func(*args)

    original = anyio.to_thread.run_sync
    anyio.to_thread.run_sync = inline
    rng = random.Random(11)
    try:
        app = create_app()

        async def go() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                r = await c.post(
                    "/api/v1/auth/token", json={"email": EMAILS["rep"], "password": password}
                )
                headers = {"Authorization": "Bearer " + r.json()["access_token"]}

                async def search():
                    q = rng.choice(work["search"]["rep"])
                    r = await c.get("/api/v1/accounts", params=q, headers=headers)
                    assert r.status_code == 200, r.text

                async def timeline():
                    a = rng.choice(work["timeline_accounts"])
                    r = await c.get(f"/api/v1/accounts/{a}/timeline", headers=headers)
                    assert r.status_code == 200, r.text

                async def submit():
                    body = activity_body(rng, work)
                    r = await c.post("/api/v1/activities", json=body, headers=headers)
                    assert r.status_code == 201, r.text
                    r = await c.post(f"/api/v1/activities/{r.json()['id']}/submit", headers=headers)
                    assert r.status_code == 200, r.text

                for name, fn in (
                    ("search", search),
                    ("timeline", timeline),
                    ("create+submit", submit),
                ):
                    for _ in range(20):
                        await fn()
                    prof = cProfile.Profile()
                    t0 = time.perf_counter()
                    prof.enable()
                    for _ in range(n):
                        await fn()
                    prof.disable()
                    per = (time.perf_counter() - t0) / n * 1000
                    buf = io.StringIO()
                    buf.write(f"{n} requests, {per:.2f} ms each under the profiler\n")
                    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative")
                    stats.print_stats(60)
                    buf.write("\n--- by own time ---\n")
                    stats.sort_stats("tottime").print_stats(30)
                    path = RESULTS / f"crm-{backend}-profile-http-{name.replace('+', '-')}.txt"
                    path.write_text(buf.getvalue())
                    log(f"  profile written to {path.relative_to(ROOT)}")

        asyncio.run(go())
    finally:
        anyio.to_thread.run_sync = original


# --------------------------------------------------------------------------- per backend


def bench_backend(backend: str, args) -> dict:
    started = datetime.now(UTC)
    if backend == "sqlite":
        sqlite_path = Path(args.sqlite_path)
        if not sqlite_path.is_absolute():
            sqlite_path = ROOT / sqlite_path
        url = sqlite_url(sqlite_path)
    else:
        sqlite_path = Path("/nonexistent")
        url = args.pg_url
        ensure_pg_database(url)
    log(f"=== {backend}: {url}")

    from parcours.core.db import make_engine

    probe = make_engine(url)
    has_data = user_count(probe) > 0
    probe.dispose()
    seeding: dict
    result_path = RESULTS / f"crm-{backend}.json"
    if args.reuse and has_data:
        log("--reuse: the database holds data; seeding skipped")
        migrate(url)
        previous = None
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(result_path.read_text()).get("seeding")
        seeding = {"skipped": True, "previous_run": previous}
    else:
        reset_database(backend, url, sqlite_path)
        migrate(url)
        wait_idle(args.wait_idle)
        seeding = run_seed(url, args.hcps, args.reps, args.months, args.seed, args.password)

    engine = use_database(url)
    dataset = dataset_figures(engine, backend, sqlite_path)
    log(f"dataset: {dataset}")
    work = sample_workload(engine, args.seed)
    dataset["scope_hcps"] = work["scope_accounts"]

    log("in-process service latency (one session per call, no HTTP)")
    profile_dir = RESULTS if args.profile else None
    inproc, plans = inprocess(
        engine,
        work,
        args.inproc_iterations,
        args.duration * 2,
        profile_dir,
        backend,
        args.wait_idle,
    )
    engine.dispose()

    if args.profile:
        engine = use_database(url)
        profile_http(work, backend, min(args.inproc_iterations, 200), args.password)
        engine.dispose()

    tokens: dict = {}
    c = args.clients
    http1, mem1 = http_phases(
        url,
        work,
        args,
        [
            ("search_rep", 1),
            ("timeline_rep", 1),
            ("submit_rep", 1),
            ("search_rep", c),
            ("search_manager", c),
            ("search_admin", c),
            ("timeline_rep", c),
            ("submit_rep", c),
        ],
        tokens,
    )
    if args.two_workers == "processes":
        http2, mem2 = http_phases(
            url,
            work,
            args,
            [("search_rep", c), ("timeline_rep", c), ("submit_rep", c)],
            tokens,
            processes=2,
        )
    else:
        http2, mem2 = http_phases(
            url,
            work,
            args,
            [("search_rep", c), ("timeline_rep", c), ("submit_rep", c)],
            tokens,
            workers=2,
        )

    checks = [
        (
            "seed activities/s",
            seeding.get("activities_per_s"),
            TARGETS["seed_activities_per_s"],
            ">=",
        ),
        (
            "search p99 ms (rep, HTTP, 1 worker, under load)",
            http1["search_rep"]["search"].get("p99_ms"),
            TARGETS["search_p99_ms"],
            "<",
        ),
        (
            "timeline p99 ms (rep, HTTP, 1 worker, under load)",
            http1["timeline_rep"]["timeline"].get("p99_ms"),
            TARGETS["timeline_p99_ms"],
            "<",
        ),
        (
            "submit p99 ms (rep, HTTP, 1 worker, under load)",
            http1["submit_rep"]["submit"].get("p99_ms"),
            TARGETS["submit_p99_ms"],
            "<",
        ),
    ]
    targets = []
    for label, value, target, op in checks:
        ok = None if value is None else (value >= target if op == ">=" else value < target)
        targets.append({"figure": label, "measured": value, "target": f"{op} {target}", "met": ok})

    return {
        "benchmark": "crm",
        "backend": backend,
        "started_at": started.isoformat(),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "cores": os.cpu_count(),
        "machine": machine_info(),
        "config": {
            "hcps": args.hcps,
            "reps": args.reps,
            "months": args.months,
            "seed": args.seed,
            "duration_s": args.duration,
            "clients": args.clients,
            "inproc_iterations": args.inproc_iterations,
            "max_requests": args.max_requests,
            "reuse": args.reuse,
            "two_workers": args.two_workers,
            "wait_idle_s": args.wait_idle,
            "database": url if backend == "sqlite" else libpq(url),
        },
        "targets": targets,
        "dataset": dataset,
        "seeding": seeding,
        "inprocess": inproc,
        "http": {"workers_1": http1, "workers_2": http2},
        "server_memory": {"workers_1": mem1, "workers_2": mem2},
        "bench_process_peak_rss_mib": peak_rss_mib(),
        "plans": plans,
    }


# --------------------------------------------------------------------------- summary table


def table_main(argv: list[str]) -> None:
    """`crm.py table`: the figures of benchmarks/results/crm-*.json as a Markdown table."""
    runs = {}
    for backend in ("sqlite", "postgresql"):
        path = RESULTS / f"crm-{backend}.json"
        if path.exists():
            runs[backend] = json.loads(path.read_text())
    if not runs:
        raise SystemExit("no results in benchmarks/results yet")

    def get(d: dict, *keys):
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def lat(d: dict | None, rate: bool = False) -> str:
        if not d or not d.get("n"):
            return "n/a"
        out = f"{d['p50_ms']:.1f} / {d['p95_ms']:.1f} / {d['p99_ms']:.1f} / {d['max_ms']:.0f}"
        if rate and "per_s" in d:
            out += f" @ {d['per_s']:.0f}/s"
        return out

    def seeding(r: dict) -> str:
        sd = r["seeding"]
        if sd.get("skipped"):
            sd = sd.get("previous_run") or {}
        if not sd.get("activities"):
            return "n/a"
        return (
            f"{sd['activities_per_s']:,}/s ({sd['activities']:,} in {sd['seconds']:.0f} s, "
            f"peak RSS {sd.get('peak_rss_mib')} MiB)"
        )

    w1, w2 = ("http", "workers_1"), ("http", "workers_2")
    rows = [
        ("Seeding rate, activities/s", ">= 50,000 (SQLite)", seeding),
        (
            "Search, rep, HTTP, 1 worker, 4 clients",
            "p99 < 50",
            lambda r: lat(get(r, *w1, "search_rep", "search"), True),
        ),
        ("Search, manager, same", "", lambda r: lat(get(r, *w1, "search_manager", "search"), True)),
        ("Search, admin, same", "", lambda r: lat(get(r, *w1, "search_admin", "search"), True)),
        (
            "Search, rep, HTTP, 1 client",
            "",
            lambda r: lat(get(r, *w1, "search_rep_1client", "search"), True),
        ),
        ("Search, rep, in-process", "", lambda r: lat(get(r, "inprocess", "search_rep"))),
        (
            "Timeline page 1, rep, HTTP, 1 worker, 4 clients",
            "p99 < 30",
            lambda r: lat(get(r, *w1, "timeline_rep", "timeline"), True),
        ),
        (
            "Timeline, HTTP, 1 client",
            "",
            lambda r: lat(get(r, *w1, "timeline_rep_1client", "timeline"), True),
        ),
        ("Timeline, in-process", "", lambda r: lat(get(r, "inprocess", "timeline_rep"))),
        (
            "Submit, rep, HTTP, 1 worker, 4 clients",
            "p99 < 20",
            lambda r: lat(get(r, *w1, "submit_rep", "submit"), True),
        ),
        ("Create (saved) before it, same", "", lambda r: lat(get(r, *w1, "submit_rep", "create"))),
        (
            "Submit, HTTP, 1 client",
            "",
            lambda r: lat(get(r, *w1, "submit_rep_1client", "submit"), True),
        ),
        ("Submit, in-process", "", lambda r: lat(get(r, "inprocess", "submit_rep"))),
        (
            "Search, 2 processes, 4 clients",
            "throughput",
            lambda r: lat(get(r, *w2, "search_rep", "search"), True),
        ),
        (
            "Timeline, 2 processes, 4 clients",
            "throughput",
            lambda r: lat(get(r, *w2, "timeline_rep", "timeline"), True),
        ),
        (
            "Submit, 2 processes, 4 clients (call reports/s)",
            "throughput",
            lambda r: lat(get(r, *w2, "submit_rep", "submit"), True),
        ),
        (
            "Server peak RSS, 1 worker / 2 processes (MiB)",
            "",
            lambda r: (
                f"{get(r, 'server_memory', 'workers_1', 'peak_rss_mib_total')} / "
                f"{get(r, 'server_memory', 'workers_2', 'peak_rss_mib_each')}"
            ),
        ),
    ]
    names = list(runs)
    print("| Figure (ms: p50 / p95 / p99 / max) | Target | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for label, target, fn in rows:
        print(f"| {label} | {target} | " + " | ".join(fn(runs[n]) for n in names) + " |")
    first = next(iter(runs.values()))
    print(
        f"\ncores: {first['cores']}; cpu: {first['machine'].get('cpu')}; "
        + "; ".join(f"{n} run {r['started_at'][:16]}" for n, r in runs.items())
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="crm.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--hcps", type=int, default=100_000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument(
        "--reps", type=int, default=None, help="default: one rep per 2,000 HCPs (at least 2)"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--sqlite-path", default="var/bench/crm.db")
    p.add_argument(
        "--reuse", action="store_true", help="skip seeding when the database already holds data"
    )
    p.add_argument("--duration", type=float, default=15.0, help="seconds per load phase")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument(
        "--max-requests", type=int, default=100_000, help="upper bound on requests per load phase"
    )
    p.add_argument(
        "--inproc-iterations",
        type=int,
        default=500,
        help="calls per in-process measurement (also bounded by 2 x --duration)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8021,
        help="first port; the two-process phase also uses the next one",
    )
    p.add_argument(
        "--two-workers",
        choices=("processes", "uvicorn"),
        default="processes",
        help="throughput phase: two single-worker uvicorn processes on two ports, "
        "or one `uvicorn --workers 2` (slowed ~40 ms/request by uvicorn #3149)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="before each measurement, wait up to this many seconds for the machine to be "
        "nearly idle (< 0.3 cores busy): for machines others use at the same time",
    )
    p.add_argument("--password", default=PASSWORD, help="demo password given to the seed")
    p.add_argument(
        "--profile",
        action="store_true",
        help="write cProfile listings of the in-process calls to benchmarks/results",
    )
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = max(2, round(args.hcps / 2000))
    if args.hcps < 1 or args.months < 1 or args.duration <= 0 or args.clients < 1:
        p.error("--hcps, --months, --duration and --clients must be positive")
    args.duration = min(args.duration, 600.0)
    args.clients = min(args.clients, 64)
    return args


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_seed":
        return seed_child(argv[1:])
    if argv and argv[0] == "_load":
        return load_child(argv[1:])
    if argv and argv[0] == "table":
        return table_main(argv[1:])
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {}
    for backend in backends:
        res = bench_backend(backend, args)
        path = RESULTS / f"crm-{backend}.json"
        path.write_text(json.dumps(res, indent=2) + "\n")
        log(f"results written to {path.relative_to(ROOT)}")
        out[backend] = res
    print(json.dumps(out[backends[0]] if len(backends) == 1 else out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
