"""The audit trail: every ORM create, update and delete becomes a hash-chained record."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.orm import Session

from parcours.core.models import AuditRecord

GENESIS = "0" * 64
_actor: ContextVar[tuple[int | None, str]] = ContextVar("audit_actor", default=(None, "system"))


@contextmanager
def acting_as(user_id: int | None, label: str):
    """Attribute every write inside the block to this actor."""
    token = _actor.set((user_id, label))
    try:
        yield
    finally:
        _actor.reset(token)


def set_actor(user_id: int | None, label: str) -> None:
    _actor.set((user_id, label))


def bind_actor(session: Session, user_id: int | None, label: str) -> None:
    """Attribute every write of this session to this actor (requests, workers).

    Kept on the session rather than only in a context variable: FastAPI runs sync
    dependencies in worker threads whose context changes never reach the route.
    """
    session.info["audit_actor"] = (user_id, label)


def _current_actor(session: Session) -> tuple[int | None, str]:
    return session.info.get("audit_actor") or _actor.get()


def _plain(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return value


def _columns(obj) -> list[str]:
    exclude = set(getattr(obj, "__audit_exclude__", ()))
    return [c.key for c in inspect(obj).mapper.column_attrs if c.key not in exclude]


def _snapshot(obj) -> dict:
    return {k: _plain(getattr(obj, k)) for k in _columns(obj)}


def _before_values(obj) -> dict:
    state = inspect(obj)
    out = {}
    for key in _columns(obj):
        hist = state.attrs[key].history
        if hist.has_changes() and hist.deleted:
            out[key] = _plain(hist.deleted[0])
        else:
            out[key] = _plain(state.attrs[key].value)
    return out


def _entity_id(obj) -> str:
    ident = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(v) for v in ident if v is not None)


def record_hash(prev_hash: str, fields: dict) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


# The fields a record's hash covers, in one place for writing and for verifying.
HASHED = (
    "seq",
    "at",
    "actor_id",
    "actor",
    "action",
    "entity",
    "entity_id",
    "before",
    "after",
    "note",
)


@event.listens_for(Session, "before_flush")
def _collect(session: Session, _ctx, _instances) -> None:
    pending = session.info.setdefault("audit_pending", [])
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            pending.append(("create", obj, None))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False) and session.is_modified(
            obj, include_collections=False
        ):
            before = _before_values(obj)
            pending.append(("update", obj, before))
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            pending.append(("delete", obj, _snapshot(obj)))


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous) -> None:
    # A failed flush must not leave its objects to be recorded by the next one.
    session.info.pop("audit_pending", None)


@event.listens_for(Session, "after_flush")
def _write(session: Session, _ctx) -> None:
    pending = session.info.pop("audit_pending", [])
    if not pending:
        return
    actor_id, actor = _current_actor(session)
    rows = []
    for action, obj, before in pending:
        after = None if action == "delete" else _snapshot(obj)
        if action == "update" and before == after:
            continue
        rows.append(
            {
                "actor_id": actor_id,
                "actor": actor,
                "action": action,
                "entity": obj.__tablename__,
                "entity_id": _entity_id(obj),
                "before": before,
                "after": after,
                "note": None,
            }
        )
    append(session, rows)


def append(session: Session, rows: list[dict]) -> None:
    """Chain and insert audit rows (dicts without hashes) inside the session's transaction."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # Serialise writers on the chain head; released at commit or rollback.
        conn.execute(text("SELECT pg_advisory_xact_lock(7270001)"))
    last = conn.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    now = datetime.now(UTC)
    chained = []
    for row in rows:
        seq += 1
        row = {**row, "seq": seq, "at": now, "prev_hash": prev}
        row["hash"] = prev = record_hash(
            prev, {**{k: row[k] for k in HASHED}, "at": now.isoformat()}
        )
        chained.append(row)
    conn.execute(insert(AuditRecord.__table__), chained)


def notes(session: Session, items: list[tuple]) -> None:
    """Several audit records, (entity, entity_id, action, note[, after]) each, in one insert."""
    actor_id, actor = _current_actor(session)
    append(
        session,
        [
            {
                "actor_id": actor_id,
                "actor": actor,
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "before": None,
                "after": _plain(rest[0]) if rest else None,
                "note": text_,
            }
            for entity, entity_id, action, text_, *rest in items
        ],
    )


def note(
    session: Session, entity: str, entity_id: str, action: str, note: str, after: dict | None = None
) -> None:
    """An audit record for work done outside the ORM (bulk loads, logins, exports)."""
    notes(session, [(entity, entity_id, action, note, after)])


@dataclass
class Problem:
    seq: int
    reason: str


def verify(session: Session, batch: int = 5000) -> tuple[int, list[Problem]]:
    """Walk the chain in order; return the count checked and every break found."""
    problems: list[Problem] = []
    prev = GENESIS
    last_seq = 0
    count = 0
    while True:
        recs = (
            session.execute(
                select(AuditRecord)
                .where(AuditRecord.seq > last_seq)
                .order_by(AuditRecord.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not recs:
            break
        for r in recs:
            count += 1
            if r.seq != last_seq + 1:
                problems.append(Problem(r.seq, f"records {last_seq + 1}..{r.seq - 1} are missing"))
            if r.prev_hash != prev:
                problems.append(
                    Problem(r.seq, "does not follow the previous record (deleted or reordered)")
                )
            fields = {k: getattr(r, k) for k in HASHED}
            fields["at"] = r.at.astimezone(UTC).isoformat()
            if record_hash(r.prev_hash, fields) != r.hash:
                problems.append(Problem(r.seq, "content altered (hash mismatch)"))
            prev = r.hash
            last_seq = r.seq
        session.expunge_all()
    return count, problems


def head(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)
