"""The audit trail: every ORM create, update and delete becomes a hash-chained record.

A record's hash covers the digest of its payload (before, after, note) rather than the
payload itself, so that a GDPR erasure can blank the personal data of a record and the chain
still verifies. Records written before that change (no digest) are checked the old way.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import event, insert, inspect, select, text, update
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


def payload_digest(before, after, note) -> str:
    """sha256 of the canonical JSON of a record's payload."""
    body = json.dumps(
        {"before": before, "after": after, "note": note},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


# The fields a record's hash covers, in one place for writing and for verifying.
HASHED = ("seq", "at", "actor_id", "actor", "action", "entity", "entity_id", "payload_digest")
# ... and those of records written before payload digests (their raw payload is hashed).
HASHED_LEGACY = (
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
# The payload an erasure leaves on a record, and the action of the record that erasure writes.
REDACTED = {"redacted": True}
ERASE = "erase"


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
        row = {**row, "seq": seq, "at": now, "prev_hash": prev, "redacted": False}
        row["payload_digest"] = payload_digest(row["before"], row["after"], row["note"])
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


class Verification(tuple):
    """(count, problems), as before, with the number of redacted records as `.redacted`."""

    redacted: int

    def __new__(cls, count: int, problems: list[Problem], redacted: int = 0):
        obj = super().__new__(cls, (count, problems))
        obj.redacted = redacted
        return obj

    @property
    def count(self) -> int:
        return self[0]

    @property
    def problems(self) -> list[Problem]:
        return self[1]


def _content_ok(r: AuditRecord) -> bool:
    if r.payload_digest is None:
        if r.redacted:
            return True  # a legacy record's raw payload is gone: its erasure record vouches
        fields = {k: getattr(r, k) for k in HASHED_LEGACY}
    else:
        if not r.redacted and payload_digest(r.before, r.after, r.note) != r.payload_digest:
            return False
        fields = {k: getattr(r, k) for k in HASHED}
    fields["at"] = r.at.astimezone(UTC).isoformat()
    return record_hash(r.prev_hash, fields) == r.hash


def verify(session: Session, batch: int = 5000) -> Verification:
    """Walk the chain in order; return the count checked and every break found.

    A redacted record must be named by a later erasure record, itself in the chain.
    """
    problems: list[Problem] = []
    prev = GENESIS
    last_seq = 0
    count = 0
    redacted: list[int] = []
    vouched: set[int] = set()
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
            if not _content_ok(r):
                problems.append(Problem(r.seq, "content altered (hash mismatch)"))
            if r.redacted:
                redacted.append(r.seq)
            elif r.action == ERASE and isinstance(r.after, dict):
                vouched.update(int(s) for s in r.after.get("redacted_seqs") or ())
            prev = r.hash
            last_seq = r.seq
        session.expunge_all()
    for seq in redacted:
        if seq not in vouched:
            problems.append(Problem(seq, "redacted without an erasure record naming it"))
    return Verification(count, sorted(problems, key=lambda p: p.seq), len(redacted))


def redact(session: Session, where, fields: tuple[str, ...] | None = None) -> list[int]:
    """Blank the payload of the records matching `where`; return their seqs (for the erasure).

    With `fields`, only those keys of before/after are blanked (free text in an activity);
    otherwise before, after and note are replaced whole.
    """
    session.flush()
    seqs: list[int] = []
    rows = session.execute(
        select(AuditRecord.id, AuditRecord.seq, AuditRecord.before, AuditRecord.after).where(where)
    ).all()
    for id_, seq, before, after in rows:
        if fields is None:
            values = {"before": REDACTED, "after": REDACTED, "note": None}
        else:
            values = {}
            for name, payload in (("before", before), ("after", after)):
                if isinstance(payload, dict) and any(payload.get(f) for f in fields):
                    values[name] = {
                        **payload,
                        **{f: "[redacted]" for f in fields if payload.get(f)},
                    }
            if not values:
                continue
        session.execute(
            update(AuditRecord).where(AuditRecord.id == id_).values(redacted=True, **values)
        )
        seqs.append(seq)
    return sorted(seqs)


def head(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)
