"""Insight documents: who may read them, adding and removing them, indexing their passages."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath

import numpy as np
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from parcours.ai import embed, extract, text
from parcours.ai.index import Entry, Scope, acl_hash, store
from parcours.ai.models import CATEGORIES, SOURCES, InsightChunk, InsightDocument, UserGroup
from parcours.core import jobs
from parcours.core.db import utcnow
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings

log = logging.getLogger(__name__)
INDEX_JOB = "insight.index"
# who adds documents to the library (reps and reviewers ask, they do not add)
CURATORS = (Role.admin, Role.marketing, Role.manager)
GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")


# --- access ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acl:
    """Who may read a document. Empty roles, groups and users: every user (of the countries).
    Otherwise a user of one of the roles or groups (in one of the countries when countries
    are given), or a user named in users (wherever they are)."""

    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    users: tuple[int, ...] = ()
    countries: tuple[str, ...] = ()

    @classmethod
    def of(cls, roles=(), groups=(), users=(), countries=()) -> Acl:
        return cls(
            tuple(sorted({r.strip() for r in roles if r.strip()})),
            tuple(sorted({g.strip().lower() for g in groups if g.strip()})),
            tuple(sorted({int(u) for u in users})),
            tuple(sorted({c.strip().upper() for c in countries if c.strip()})),
        )

    @classmethod
    def parse(cls, key: str) -> Acl:
        parts = dict(p.split("=", 1) for p in key.split(";"))

        def items(name):
            return [v for v in parts.get(name, "").split(",") if v]

        return cls.of(items("r"), items("g"), [int(u) for u in items("u")], items("c"))

    @property
    def key(self) -> str:
        return ";".join(
            [
                "r=" + ",".join(self.roles),
                "g=" + ",".join(self.groups),
                "u=" + ",".join(str(u) for u in self.users),
                "c=" + ",".join(self.countries),
            ]
        )

    def allows(self, user: User, groups: frozenset[str]) -> bool:
        if user.role == Role.admin or user.id in self.users:
            return True
        if self.countries and (user.country or "").upper() not in self.countries:
            return False
        if not (self.roles or self.groups or self.users):
            return True
        return user.role in self.roles or bool(groups & set(self.groups))


def of_document(doc: InsightDocument) -> Acl:
    return Acl.of(doc.acl_roles, doc.acl_groups, doc.acl_users, doc.acl_countries)


def group_names(session: Session, user_id: int) -> list[str]:
    return sorted(session.scalars(select(UserGroup.name).where(UserGroup.user_id == user_id)).all())


def groups_of(session: Session, user: User) -> frozenset[str]:
    return frozenset(group_names(session, user.id))


def may_read(session: Session, user: User, doc: InsightDocument, groups=None) -> bool:
    groups = groups_of(session, user) if groups is None else groups
    return of_document(doc).allows(user, groups)


def readable_keys(session: Session, user: User) -> list[str]:
    """The access lists, among those documents carry, that let this user read."""
    groups = groups_of(session, user)
    keys = session.scalars(select(InsightDocument.acl_key).distinct()).all()
    return [k for k in keys if Acl.parse(k).allows(user, groups)]


def scope_for(session: Session, user: User, docs: frozenset[int] | None = None) -> Scope:
    """What a search by this user may return, for the indexes."""
    if user.role == Role.admin:
        return Scope(None, docs)
    return Scope(frozenset(acl_hash(k) for k in readable_keys(session, user)), docs)


def readable(session: Session, user: User):
    """Documents this user may read, as a statement to filter and page."""
    stmt = select(InsightDocument)
    if user.role != Role.admin:
        stmt = stmt.where(InsightDocument.acl_key.in_(readable_keys(session, user)))
    return stmt


def get_document(session: Session, user: User, document_id: int) -> InsightDocument:
    doc = session.get(InsightDocument, document_id)
    if doc is None or not may_read(session, user, doc):
        raise NotFound("No such document.")
    return doc


def can_curate(user: User) -> bool:
    return user.role in CURATORS


def _may_change(user: User, doc: InsightDocument) -> None:
    if user.role == Role.admin:
        return
    if not can_curate(user) or doc.created_by != user.id:
        raise Forbidden("Only the person who added this document, or an admin, may change it.")


# --- groups ---------------------------------------------------------------------------------


def set_groups(session: Session, user_id: int, names: list[str]) -> list[str]:
    """Replace a user's groups (admin work)."""
    wanted = sorted({n.strip().lower() for n in names if n.strip()})
    for name in wanted:
        if not GROUP_NAME.match(name):
            raise Invalid(f"'{name}' is not a group name (a-z, 0-9, - _ .).", field="groups")
    current = {
        g.name: g for g in session.scalars(select(UserGroup).where(UserGroup.user_id == user_id))
    }
    for name, row in current.items():
        if name not in wanted:
            session.delete(row)
    for name in wanted:
        if name not in current:
            session.add(UserGroup(user_id=user_id, name=name))
    session.flush()
    return wanted


# --- adding documents ---------------------------------------------------------------------


@dataclass
class Meta:
    title: str | None = None
    authors: str | None = None
    doc_date: date | None = None
    product: str | None = None
    study: str | None = None
    category: str | None = None
    language: str | None = None
    web_url: str | None = None


def check_acl(session: Session, acl: Acl) -> Acl:
    roles = {r.value for r in Role}
    for role in acl.roles:
        if role not in roles:
            raise Invalid(f"'{role}' is not a role.", field="acl_roles")
    for group in acl.groups:
        if not GROUP_NAME.match(group):
            raise Invalid(f"'{group}' is not a group name.", field="acl_groups")
    for country in acl.countries:
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise Invalid(f"'{country}' is not a two-letter country code.", field="acl_countries")
    if acl.users:
        found = set(session.scalars(select(User.id).where(User.id.in_(acl.users))))
        missing = sorted(set(acl.users) - found)
        if missing:
            raise Invalid(f"No user has the id {missing[0]}.", field="acl_users")
    return acl


def check_meta(meta: Meta) -> Meta:
    if meta.category and meta.category not in CATEGORIES:
        raise Invalid(f"Category must be one of {', '.join(CATEGORIES)}.", field="category")
    if meta.language and meta.language not in ("fr", "en"):
        raise Invalid("Language must be fr or en.", field="language")
    for name in ("title", "authors", "product", "study"):
        value = getattr(meta, name)
        limit = InsightDocument.__table__.c[name].type.length
        if value and len(value) > limit:
            raise Invalid(f"At most {limit} characters.", field=name)
    return meta


def files_dir() -> Path:
    return get_settings().insight_dir / "files"


def file_path(doc: InsightDocument) -> Path:
    return files_dir() / str(doc.id) / f"{doc.sha256}{PurePath(doc.filename).suffix.lower()}"


def add_file(
    session: Session,
    user: User | None,
    filename: str,
    data: bytes,
    *,
    acl: Acl,
    meta: Meta | None = None,
    source: str = "upload",
    source_ref: str | None = None,
) -> tuple[InsightDocument, bool]:
    """Keep the file and queue its indexing; (document, changed). The same source item again
    with the same bytes changes nothing; with other bytes it is indexed again."""
    meta = check_meta(meta or Meta())
    if source not in SOURCES:
        raise Invalid("Unknown source.", field="source")
    if user is not None and source == "upload" and not can_curate(user):
        raise Forbidden("Your role may ask questions but not add documents.")
    name = PurePath(filename.replace("\\", "/")).name.strip()
    if not name:
        raise Invalid("The file has no name.", field="file")
    media = extract.media_type(name)
    if media is None:
        kinds = ", ".join(sorted({s.lstrip(".").upper() for s in extract.FORMATS}))
        raise Invalid(f"{name}: not a format we index ({kinds}).", field="file")
    if not data:
        raise Invalid(f"{name}: the file is empty.", field="file")
    limit = get_settings().insight_max_bytes
    if len(data) > limit:
        raise Invalid(f"{name}: over the {limit // 1_000_000} MB limit.", field="file")
    check_acl(session, acl)
    sha = hashlib.sha256(data).hexdigest()
    # an upload is the uploader's own: the same bytes from someone else are another document
    # (nothing tells them that a restricted document with these bytes exists)
    ref = source_ref or f"sha256:{user.id if user else 0}:{sha}"
    doc = session.scalars(
        select(InsightDocument).where(
            InsightDocument.source == source, InsightDocument.source_ref == ref
        )
    ).one_or_none()
    fields = {
        "filename": name[:255],
        "media_type": media,
        "sha256": sha,
        "size": len(data),
        "title": (meta.title or PurePath(name).stem)[:300],
        "authors": meta.authors,
        "doc_date": meta.doc_date,
        "product": meta.product,
        "study": meta.study,
        "category": meta.category,
        "language": meta.language,
        "web_url": meta.web_url,
        "acl_roles": list(acl.roles),
        "acl_groups": list(acl.groups),
        "acl_users": list(acl.users),
        "acl_countries": list(acl.countries),
        "acl_key": acl.key,
        "acl_hash": acl_hash(acl.key),
    }
    if doc is not None:
        if doc.sha256 == sha and doc.acl_key == acl.key and doc.state != "failed":
            return doc, False
        if user is not None and source == "upload":
            _may_change(user, doc)
        old = file_path(doc)
        for key, value in fields.items():
            setattr(doc, key, value)
        doc.state, doc.error, doc.updated_at = "queued", None, utcnow()
        session.flush()
        if old != file_path(doc):  # the old bytes go once the new ones are committed
            after_commit(session, lambda: old.unlink(missing_ok=True))
    else:
        doc = InsightDocument(
            source=source,
            source_ref=ref,
            state="queued",
            created_by=user.id if user else None,
            **fields,
        )
        session.add(doc)
        session.flush()
    path = file_path(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    jobs.enqueue(session, INDEX_JOB, {"document_id": doc.id})
    return doc, True


def set_access(session: Session, user: User | None, doc: InsightDocument, acl: Acl) -> None:
    """Change who may read a document; its passages are indexed again under the new list.
    user None: a source's own rules changed (a folder's .insight.json, a drive's rules)."""
    if user is not None:
        _may_change(user, doc)
    check_acl(session, acl)
    doc.acl_roles, doc.acl_groups = list(acl.roles), list(acl.groups)
    doc.acl_users, doc.acl_countries = list(acl.users), list(acl.countries)
    doc.acl_key, doc.acl_hash = acl.key, acl_hash(acl.key)
    doc.state, doc.updated_at = "queued", utcnow()
    session.flush()
    jobs.enqueue(session, INDEX_JOB, {"document_id": doc.id})


def remove(session: Session, user: User | None, doc: InsightDocument) -> None:
    """Delete a document and its passages; once the transaction commits, its file goes and
    it leaves both indexes (until then searches already skip it: the database decides)."""
    if user is not None:
        _may_change(user, doc)
    path = file_path(doc)
    doc_id = doc.id
    session.execute(delete(InsightChunk).where(InsightChunk.document_id == doc_id))
    session.delete(doc)
    session.flush()
    after_commit(session, lambda: _forget_document(doc_id, path))


def _forget_document(doc_id: int, path: Path) -> None:
    with store(get_settings().insight_dir).writing() as s:
        s.remove([doc_id])
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


PENDING = "insight_after_commit"


def after_commit(session: Session, action) -> None:
    """Run action once the session's outermost transaction commits. A rolled-back savepoint
    drops what was registered inside it; a rolled-back transaction drops everything."""
    tx = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(PENDING, []).append((tx, action))


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released; the transaction goes on
        return
    for _tx, action in session.info.pop(PENDING, []):
        try:
            action()
        except Exception:  # noqa: BLE001 - committed already: log, a reindex repairs
            log.exception("insight: after-commit action failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous) -> None:
    pending = session.info.get(PENDING)
    if not pending:
        return
    if previous.parent is None:
        session.info.pop(PENDING, None)
    else:
        session.info[PENDING] = [(tx, a) for tx, a in pending if tx is not previous]


def remove_source(session: Session, source: str, source_ref: str) -> bool:
    doc = session.scalars(
        select(InsightDocument).where(
            InsightDocument.source == source, InsightDocument.source_ref == source_ref
        )
    ).one_or_none()
    if doc is None:
        return False
    remove(session, None, doc)
    return True


# --- indexing -----------------------------------------------------------------------------


def prepare(session: Session, document_id: int) -> list[Entry] | None:
    """Read the document's file into passages (replacing earlier ones); the entries to index,
    or None when the file cannot be read (the document is marked failed, with why)."""
    doc = session.get(InsightDocument, document_id)
    if doc is None:
        return None
    try:
        data = file_path(doc).read_bytes()
    except FileNotFoundError:
        data = None
    try:
        if data is None:
            raise extract.Unreadable("The stored file is missing; add the document again.")
        found = extract.extract(doc.filename, data)
    except extract.Unreadable as exc:
        session.execute(delete(InsightChunk).where(InsightChunk.document_id == doc.id))
        doc.state, doc.error, doc.chunks, doc.indexed_at = "failed", str(exc), 0, None
        session.flush()
        return None
    doc_language = doc.language or text.language(
        " ".join(s.text for s in found.sections[:5])[:5000]
    )
    parts = text.passages(found.sections, doc_language)
    session.execute(delete(InsightChunk).where(InsightChunk.document_id == doc.id))
    rows = [
        InsightChunk(
            document_id=doc.id,
            ordinal=i,
            page=p.page,
            location=p.location[:200],
            heading=(p.heading or None) and p.heading[:300],
            language=p.language,
            text=p.text,
        )
        for i, p in enumerate(parts)
    ]
    session.add_all(rows)
    if doc.title == PurePath(doc.filename).stem and found.title:
        doc.title = found.title[:300]
    doc.authors = doc.authors or (found.authors or None) and found.authors[:300]
    doc.doc_date = doc.doc_date or found.doc_date
    doc.language = doc_language
    doc.pages, doc.chunks = found.pages, len(rows)
    doc.state, doc.error = "indexing", None
    session.flush()
    acl = acl_hash(doc.acl_key)
    return [
        Entry(r.id, doc.id, acl, r.language, r.text, " ".join(filter(None, [doc.title, r.heading])))
        for r in rows
    ]


def publish(document_id: int, entries: list[Entry] | None) -> None:
    """Write a document's passages to the indexes, replacing what they held of it."""
    vectors = embed.passages([e.text for e in entries]) if entries else None
    with store(get_settings().insight_dir).writing() as s:
        s.remove([document_id])
        if entries:
            s.add(entries, vectors)


def finish(session: Session, document_id: int) -> None:
    doc = session.get(InsightDocument, document_id)
    if doc is not None and doc.state == "indexing":
        doc.state, doc.indexed_at = "indexed", utcnow()
        session.flush()


def index_now(session: Session, document_id: int) -> InsightDocument:
    """prepare, publish and finish in this session (tests, the command line)."""
    entries = prepare(session, document_id)
    publish(document_id, entries)
    finish(session, document_id)
    return session.get(InsightDocument, document_id)


def reindex_all(session: Session, progress=None) -> int:
    """Rebuild both indexes from the passages in the database (after a restore, or to
    change the index layout); the vectors are computed again."""
    root = get_settings().insight_dir
    docs = {d.id: d for d in session.scalars(select(InsightDocument))}
    total = session.scalar(select(func.count()).select_from(InsightChunk)) or 0
    done = 0
    ids, doc_ids, acls, vectors = [], [], [], []
    with store(root).writing() as s:
        s.clear()
        last = 0
        while True:
            rows = session.scalars(
                select(InsightChunk)
                .where(InsightChunk.id > last)
                .order_by(InsightChunk.id)
                .limit(512)
            ).all()
            if not rows:
                break
            last = rows[-1].id
            entries = []
            for r in rows:
                doc = docs.get(r.document_id)
                if doc is None or doc.state not in ("indexed", "indexing"):
                    continue
                title = " ".join(filter(None, [doc.title, r.heading]))
                entries.append(
                    Entry(r.id, doc.id, acl_hash(doc.acl_key), r.language, r.text, title)
                )
            if entries:
                s.lexical.add(entries, s._writer)
                vectors.append(embed.passages([e.text for e in entries]))
                ids += [e.chunk_id for e in entries]
                doc_ids += [e.doc_id for e in entries]
                acls += [e.acl for e in entries]
            done += len(rows)
            if progress:
                progress(done, total)
        if ids:
            s.build_dense(
                np.array(ids, np.int64),
                np.array(doc_ids, np.int64),
                np.array(acls, np.int64),
                np.concatenate(vectors),
            )
    return done


def library(session: Session, user: User, *, state: str | None = None, limit: int = 200):
    stmt = readable(session, user).order_by(InsightDocument.updated_at.desc()).limit(limit)
    if state:
        stmt = stmt.where(InsightDocument.state == state)
    return session.scalars(stmt).all()


def passages_of(session: Session, doc: InsightDocument) -> list[InsightChunk]:
    return session.scalars(
        select(InsightChunk)
        .where(InsightChunk.document_id == doc.id)
        .order_by(InsightChunk.ordinal)
    ).all()


def when(value: str | date | None, field: str) -> date | None:
    if not value:
        return None
    if isinstance(value, date):
        return value
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise Invalid("Give a date as YYYY-MM-DD.", field=field) from None
