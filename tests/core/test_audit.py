"""The audit trail records every write in a hash chain that `parcours audit verify` checks."""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from parcours.core import audit
from parcours.core.db import make_engine
from parcours.core.models import AuditRecord

from factories import ROOT, create_hcp, create_territory_tree, create_user, migrate


def test_create_update_delete_are_recorded_with_before_and_after(session):
    tree = create_territory_tree(session)
    with audit.acting_as(7, "someone@example.test"):
        hcp = create_hcp(session, tree["north1"], last_name="Durand")
        hcp.specialty = "Oncology"
        session.flush()
        session.delete(hcp)
        session.flush()
    recs = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity == "accounts", AuditRecord.entity_id == str(hcp.id))
        .order_by(AuditRecord.seq)
    ).all()
    assert [r.action for r in recs] == ["create", "update", "delete"]
    assert recs[0].before is None and recs[0].after["last_name"] == "Durand"
    assert recs[1].before["specialty"] == "Cardiology" and recs[1].after["specialty"] == "Oncology"
    assert recs[2].before["specialty"] == "Oncology" and recs[2].after is None
    assert {r.actor for r in recs} == {"someone@example.test"}
    assert {r.actor_id for r in recs} == {7}


def test_password_hashes_never_reach_the_trail(session):
    create_user(session, "rep")
    rec = session.scalars(select(AuditRecord).where(AuditRecord.entity == "users")).first()
    assert "password_hash" not in rec.after


def test_verify_finds_an_altered_record(session):
    tree = create_territory_tree(session)
    create_hcp(session, tree["north1"])
    count, problems = audit.verify(session)
    assert count > 5 and problems == []
    victim = session.scalars(select(AuditRecord).order_by(AuditRecord.seq).offset(2)).first()
    session.execute(
        text("UPDATE audit_records SET actor = 'nobody' WHERE id = :id"), {"id": victim.id}
    )
    session.expire_all()
    _, problems = audit.verify(session)
    assert [p.seq for p in problems] == [victim.seq]
    assert "altered" in problems[0].reason


def _chain_in_file(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)
    engine = make_engine(url)
    with Session(engine) as s:
        tree = create_territory_tree(s)
        for _ in range(3):
            create_hcp(s, tree["south1"])
        s.commit()
    engine.dispose()
    return url


def _verify_cli(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PARCOURS_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "parcours.cli", "audit", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tamper(url: str, sql: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_cli_verify_passes_then_catches_a_tampered_row(tmp_path):
    url = _chain_in_file(tmp_path)
    ok = _verify_cli(url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact" in ok.stdout
    engine = make_engine(url)
    with engine.connect() as conn:
        seq = conn.execute(
            text("SELECT min(seq) FROM audit_records WHERE entity = 'accounts'")
        ).scalar()
    engine.dispose()
    _tamper(
        url,
        "UPDATE audit_records SET after = replace(after, 'Cardiology', 'Dermatology') "
        f"WHERE seq = {seq}",
    )
    bad = _verify_cli(url)
    assert bad.returncode == 1
    assert f"record #{seq}: content altered" in bad.stdout


def test_cli_verify_catches_a_deleted_record(tmp_path):
    url = _chain_in_file(tmp_path)
    _tamper(url, "DELETE FROM audit_records WHERE seq = 5")
    bad = _verify_cli(url)
    assert bad.returncode == 1
    assert "missing" in bad.stdout


def test_cli_verify_catches_reordered_records(tmp_path):
    url = _chain_in_file(tmp_path)
    # Swap the positions of records 3 and 4 (their content moves, their hashes stay valid).
    _tamper(url, "UPDATE audit_records SET seq = -1 WHERE seq = 3")
    _tamper(url, "UPDATE audit_records SET seq = 3 WHERE seq = 4")
    _tamper(url, "UPDATE audit_records SET seq = 4 WHERE seq = -1")
    bad = _verify_cli(url)
    assert bad.returncode == 1
    assert "deleted or reordered" in bad.stdout or "altered" in bad.stdout
