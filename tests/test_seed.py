"""The demo data generator: counts, determinism, integrity, demo logins, PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from parcours import seed
from parcours.core import audit
from parcours.core.db import make_engine
from parcours.core.security import verify_password

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2025, 6, 18)  # a Wednesday
SMALL = {"hcps": 200, "reps": 4, "months": 2, "seed": 7, "today": TODAY}
PASSWORD = "seed-test-password"
DATA_TABLES = (
    "users",
    "territories",
    "user_territories",
    "segments",
    "products",
    "accounts",
    "addresses",
    "account_identifiers",
    "affiliations",
    "account_territories",
    "target_lists",
    "target_list_entries",
    "activities",
    "activity_attendees",
    "tasks",
)


def _migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")


def _fresh_sqlite(directory: Path, name: str = "seed.db"):
    url = f"sqlite:///{directory / name}"
    _migrate(url)
    return make_engine(url)


def _scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _fingerprint(engine) -> dict[str, str]:
    """A digest of every row of every seeded table, in id order."""
    out = {}
    with engine.connect() as conn:
        for table in DATA_TABLES:
            h = hashlib.sha256()
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY id")):
                h.update(repr(tuple(row)).encode())
            out[table] = h.hexdigest()
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    engine = _fresh_sqlite(tmp_path_factory.mktemp("seed"))
    stages = []
    result = seed.run(engine, password=PASSWORD, progress=lambda *a: stages.append(a), **SMALL)
    yield engine, result, stages
    engine.dispose()


def test_counts(seeded):
    engine, result, stages = seeded
    assert result.hcps == 200
    assert _scalar(engine, "SELECT COUNT(*) FROM accounts WHERE kind = 'hcp'") == 200
    assert result.hcos == _scalar(engine, "SELECT COUNT(*) FROM accounts WHERE kind = 'hco'")
    assert 10 <= result.hcos <= 40
    assert result.users == _scalar(engine, "SELECT COUNT(*) FROM users")
    assert result.activities == _scalar(engine, "SELECT COUNT(*) FROM activities")
    assert result.tasks == _scalar(engine, "SELECT COUNT(*) FROM tasks") > 0
    # about 4 activities per HCP-month in the past, plus the planned ones
    past = _scalar(engine, "SELECT COUNT(*) FROM activities WHERE status = 'submitted'")
    assert 200 * 4 * 2 * 0.8 < past < 200 * 4 * 2 * 1.2
    assert _scalar(engine, "SELECT COUNT(*) FROM segments") == 4
    assert _scalar(engine, "SELECT COUNT(*) FROM products") >= 5
    assert {s[0] for s in stages} >= {"accounts", "activities", "done"}


def test_integrity(seeded):
    engine, _, _ = seeded
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        # the load restores the connection settings it changed
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # territory paths: the ancestors' ids plus its own
    for tid, level, parent, path in _rows(
        engine, "SELECT id, level, parent_id, path FROM territories"
    ):
        if level == "country":
            assert parent is None and path == f"/{tid}/"
        else:
            parent_path = _scalar(engine, "SELECT path FROM territories WHERE id = :p", p=parent)
            assert path == f"{parent_path}{tid}/"
    # every account aligned to a leaf territory of its own country
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM accounts a WHERE NOT EXISTS (
          SELECT 1 FROM account_territories at JOIN territories t ON t.id = at.territory_id
          WHERE at.account_id = a.id AND t.level = 'territory' AND t.country = a.country)""",
        )
        == 0
    )
    # one primary address each, in the account's city
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM accounts a WHERE (SELECT COUNT(*) FROM addresses d
          WHERE d.account_id = a.id AND d.is_primary = 1 AND d.city = a.city) <> 1""",
        )
        == 0
    )
    # search keys are consistent with the names
    from parcours.accounts.text import search_key

    for last, first, key, city, city_key in _rows(
        engine,
        "SELECT last_name, first_name, search_name, city, city_key FROM accounts "
        "WHERE kind = 'hcp'",
    ):
        assert key == search_key(last, first)
        assert city_key == search_key(city)
    # French HCPs carry an 11-digit RPPS
    rpps = _rows(
        engine,
        "SELECT i.value FROM account_identifiers i JOIN accounts a "
        "ON a.id = i.account_id WHERE a.country = 'FR' AND a.kind = 'hcp'",
    )
    assert rpps and all(len(v) == 11 and v.isdigit() for (v,) in rpps)
    # target lists: planned calls by segment
    bad = _scalar(
        engine,
        """
        SELECT COUNT(*) FROM target_list_entries e JOIN accounts a ON a.id = e.account_id
        JOIN segments s ON s.id = a.segment_id
        WHERE e.planned_calls <> CASE s.code WHEN 'A' THEN 8 WHEN 'B' THEN 6 WHEN 'C' THEN 3
                                            ELSE 1 END""",
    )
    assert bad == 0
    assert 0 < _scalar(engine, "SELECT COUNT(DISTINCT account_id) FROM target_list_entries") < 200


def test_activities_have_attendees(seeded):
    engine, _, _ = seeded
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM activities a WHERE NOT EXISTS (
          SELECT 1 FROM activity_attendees t WHERE t.activity_id = a.id
          AND t.account_id = a.account_id)""",
        )
        == 0
    )
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM activity_attendees t JOIN activities a ON a.id = t.activity_id
        WHERE t.start_at <> a.start_at OR t.channel <> a.channel""",
        )
        == 0
    )
    groups = _scalar(
        engine,
        "SELECT COUNT(*) FROM (SELECT activity_id FROM activity_attendees "
        "GROUP BY activity_id HAVING COUNT(*) > 1) g",
    )
    assert groups > 0
    # past activities are submitted, on weekdays, owned by the rep of the account's territory
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM activities WHERE status = 'submitted'
        AND (submitted_at IS NULL OR submitted_at < start_at OR start_at >= :today
             OR strftime('%w', start_at) IN ('0', '6'))""",
            today=TODAY.isoformat(),
        )
        == 0
    )
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM activities a WHERE NOT EXISTS (
          SELECT 1 FROM account_territories at JOIN user_territories ut
          ON ut.territory_id = at.territory_id
          WHERE at.account_id = a.account_id AND ut.user_id = a.owner_id)""",
        )
        == 0
    )
    channels = dict(_rows(engine, "SELECT channel, COUNT(*) FROM activities GROUP BY channel"))
    total = sum(channels.values())
    assert 0.35 < channels["field_visit"] / total < 0.55
    assert {"phone", "remote_detailing", "email"} <= set(channels)
    assert (
        _scalar(
            engine, "SELECT MAX(duration_min) FROM activities WHERE channel = 'remote_detailing'"
        )
        <= 30
    )


def test_each_rep_has_calls_today(seeded):
    engine, _, _ = seeded
    from parcours.activities.models import Activity
    from parcours.core.models import User

    with Session(engine) as s:
        reps = s.query(User).filter(User.role == "rep").all()
        assert len(reps) == 4
        for rep in reps:
            calls = (
                s.query(Activity)
                .filter(Activity.owner_id == rep.id, Activity.status == "planned")
                .all()
            )
            today = [a for a in calls if a.start_at.date() == TODAY]
            assert len(today) >= 3, rep.email
            assert all(7 <= a.start_at.hour <= 17 for a in today)
            assert any(a.start_at.date() > TODAY for a in calls)
        assert (
            s.query(Activity)
            .filter(Activity.status == "planned", Activity.submitted_at.is_not(None))
            .count()
            == 0
        )


def test_demo_users(seeded):
    engine, _, _ = seeded
    users = {
        email: (role, lang, manager)
        for email, role, lang, manager in _rows(
            engine, "SELECT email, role, language, manager_id FROM users"
        )
    }
    assert users["admin@parcours.demo"][0] == "admin"
    assert users["manager@parcours.demo"][0] == "manager"
    assert users["marketing@parcours.demo"][0] == "marketing"
    assert users["reviewer@parcours.demo"][0] == "reviewer"
    for email in (
        "rep@parcours.demo",
        "rep2@parcours.demo",
        "rep3@parcours.demo",
        "rep4@parcours.demo",
    ):
        assert users[email][0] == "rep"
        assert users[email][2] is not None
    assert users["rep@parcours.demo"][1] == "fr"
    assert {lang for _, lang, _ in users.values()} >= {"fr", "en"}
    # the manager of rep@ is manager@, aligned to the region above rep@'s territory
    mgr = _scalar(engine, "SELECT id FROM users WHERE email = 'manager@parcours.demo'")
    assert users["rep@parcours.demo"][2] == mgr
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM user_territories ut JOIN territories t ON t.id = ut.territory_id
        JOIN users u ON u.id = ut.user_id
        WHERE u.role = 'rep' AND t.level <> 'territory'""",
        )
        == 0
    )
    assert (
        _scalar(
            engine,
            """
        SELECT t.level FROM user_territories ut JOIN territories t ON t.id = ut.territory_id
        WHERE ut.user_id = :m""",
            m=mgr,
        )
        == "region"
    )
    # each rep sees some accounts and has open tasks
    assert (
        _scalar(
            engine,
            """
        SELECT COUNT(*) FROM users u WHERE u.role = 'rep' AND NOT EXISTS (
          SELECT 1 FROM tasks t WHERE t.owner_id = u.id AND t.status = 'open')""",
        )
        == 0
    )


def test_password_works_and_is_shared(seeded):
    engine, result, _ = seeded
    assert result.password == PASSWORD
    hashes = {h for (h,) in _rows(engine, "SELECT password_hash FROM users")}
    assert len(hashes) == 1
    (only,) = hashes
    assert only.startswith("$argon2")
    assert verify_password(only, PASSWORD)
    assert not verify_password(only, "wrong")


def test_one_audit_record(seeded):
    engine, result, _ = seeded
    with Session(engine) as s:
        count, problems = audit.verify(s)
    assert count == 1 and problems == []
    entity, note = _rows(engine, "SELECT entity, note FROM audit_records")[0]
    assert (entity, note) == ("seed", "demo data loaded")


def test_rerun_raises(seeded):
    engine, _, _ = seeded
    before = _scalar(engine, "SELECT COUNT(*) FROM accounts")
    with pytest.raises(ValueError, match="users"):
        seed.run(engine, password=PASSWORD, **SMALL)
    assert _scalar(engine, "SELECT COUNT(*) FROM accounts") == before


def test_deterministic(seeded, tmp_path):
    engine, result, _ = seeded
    other = _fresh_sqlite(tmp_path)
    again = seed.run(other, password="another-password", **SMALL)
    assert again.activities == result.activities
    names = "SELECT search_name FROM accounts ORDER BY id"
    assert _rows(other, names) == _rows(engine, names)
    a, b = _fingerprint(engine), _fingerprint(other)
    a.pop("users"), b.pop("users")  # the password hash is salted
    assert a == b
    third = _fresh_sqlite(tmp_path, "other-seed.db")
    seed.run(third, password=PASSWORD, **{**SMALL, "seed": 8})
    assert _rows(third, names) != _rows(engine, names)
    for eng in (other, third):
        eng.dispose()


def test_password_is_never_fixed(tmp_path, monkeypatch):
    monkeypatch.delenv("PARCOURS_DEMO_PASSWORD", raising=False)
    small = {"hcps": 20, "reps": 1, "months": 1, "today": TODAY}
    first = seed.run(_fresh_sqlite(tmp_path, "a.db"), **small).password
    second = seed.run(_fresh_sqlite(tmp_path, "b.db"), **small).password
    assert first != second and len(first) >= 16
    monkeypatch.setenv("PARCOURS_DEMO_PASSWORD", "from-the-environment")
    engine = _fresh_sqlite(tmp_path, "c.db")
    assert seed.run(engine, **small).password == "from-the-environment"
    h = _scalar(engine, "SELECT password_hash FROM users WHERE email = 'rep@parcours.demo'")
    assert verify_password(h, "from-the-environment")
    engine.dispose()


def test_index_rebuild_path(tmp_path):
    """The large-load path (indexes dropped and rebuilt) gives the same data and indexes."""
    small = {"hcps": 60, "reps": 2, "months": 1, "today": TODAY, "password": PASSWORD}
    plain, rebuilt = _fresh_sqlite(tmp_path, "p.db"), _fresh_sqlite(tmp_path, "r.db")
    seed.run(plain, rebuild_indexes=False, **small)
    seed.run(rebuilt, rebuild_indexes=True, **small)
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    assert _rows(plain, indexes) == _rows(rebuilt, indexes)
    a, b = _fingerprint(plain), _fingerprint(rebuilt)
    a.pop("users"), b.pop("users")
    assert a == b
    for eng in (plain, rebuilt):
        eng.dispose()


PG_URL = os.environ.get("PARCOURS_TEST_DATABASE_URL")


@pytest.fixture
def pg_engine():
    """A scratch database beside the test one, so the shared schema is left alone."""
    if not PG_URL:
        pytest.skip("PARCOURS_TEST_DATABASE_URL is not set")
    base = make_url(PG_URL)
    name = f"{base.database}_seed_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        scratch = True
    except Exception:  # no right to create databases: use the given one, emptied
        url = PG_URL
        scratch = False
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.downgrade(cfg, "base")
    _migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if scratch:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.downgrade(cfg, "base")
        command.upgrade(cfg, "head")
    admin.dispose()


@pytest.mark.pg
def test_postgresql(pg_engine, tmp_path):
    result = seed.run(pg_engine, password=PASSWORD, rebuild_indexes=True, **SMALL)
    assert result.hcps == 200
    assert result.activities == _scalar(pg_engine, "SELECT COUNT(*) FROM activities")
    # same rows as on SQLite
    lite = _fresh_sqlite(tmp_path)
    seed.run(lite, password=PASSWORD, **SMALL)
    names = "SELECT search_name FROM accounts ORDER BY id"
    assert _rows(pg_engine, names) == _rows(lite, names)
    from parcours.activities.models import Activity

    def starts(engine):
        with Session(engine) as s:
            return (
                s.query(Activity.id, Activity.start_at, Activity.channel, Activity.submitted_at)
                .order_by(Activity.id)
                .all()
            )

    assert starts(pg_engine) == starts(lite)
    lite.dispose()
    assert (
        _scalar(
            pg_engine,
            """
        SELECT COUNT(*) FROM activities a WHERE NOT EXISTS (
          SELECT 1 FROM activity_attendees t WHERE t.activity_id = a.id
          AND t.start_at = a.start_at)""",
        )
        == 0
    )
    assert (
        _scalar(
            pg_engine,
            "SELECT COUNT(*) FROM activities WHERE status = 'planned' AND start_at::date = :d",
            d=TODAY,
        )
        >= 4 * 3
    )
    # foreign keys and indexes are back, sequences moved past the loaded ids
    fks = _scalar(
        pg_engine,
        "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid = 'activities'::regclass",
    )
    assert fks == 2
    idx = _scalar(pg_engine, "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'activities'")
    assert idx == 5  # primary key and four secondary indexes
    with Session(pg_engine) as s:
        from parcours.core.models import User

        u = User(email="new@example.test", full_name="New", role="rep", password_hash="x")
        s.add(u)
        s.commit()
        assert u.id > result.users
        count, problems = audit.verify(s)
        assert problems == []
    with pytest.raises(ValueError):
        seed.run(pg_engine, password=PASSWORD, **SMALL)
