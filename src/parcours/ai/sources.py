"""Where documents come from besides uploads: a watched folder, approved content, SharePoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.ai import extract, service
from parcours.ai.models import InsightDocument, InsightSync
from parcours.core.db import utcnow
from parcours.core.errors import DomainError

# a folder's access list and metadata, for the files below it (the nearest one wins)
FOLDER_RULES = ".insight.json"
# files in a folder without rules are readable by admins only, until someone says otherwise
FOLDER_DEFAULT = service.Acl.of(roles=["admin"])


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.failed)


def _rules(folder: Path, root: Path, cache: dict[Path, dict]) -> dict:
    if folder in cache:
        return cache[folder]
    path = folder / FOLDER_RULES
    if path.exists():
        try:
            rules = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rules, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            rules = {"error": f"{path.name} is not valid JSON ({exc})"}
    elif folder == root or root not in folder.parents:
        rules = {}
    else:
        rules = _rules(folder.parent, root, cache)
    cache[folder] = rules
    return rules


def from_rules(rules: dict) -> tuple[service.Acl, service.Meta]:
    """Access and metadata from a folder's or a drive's rules; admins only when the rules
    name nobody and do not say "everyone": true. Raises ValueError on a malformed rule."""

    def names(key: str) -> list[str]:
        value = rules.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'"{key}" must be a list of names')
        return value

    users = rules.get("users", [])
    if not isinstance(users, list) or not all(
        isinstance(u, int) and not isinstance(u, bool) for u in users
    ):
        raise ValueError('"users" must be a list of user ids')
    everyone = rules.get("everyone", False)
    if not isinstance(everyone, bool):
        raise ValueError('"everyone" must be true or false')
    for key in ("category", "product", "study"):
        if rules.get(key) is not None and not isinstance(rules[key], str):
            raise ValueError(f'"{key}" must be a text')
    acl = service.Acl.of(names("roles"), names("groups"), users, names("countries"))
    if not (acl.roles or acl.groups or acl.users or everyone):
        acl = service.Acl.of(["admin"], countries=acl.countries)
    meta = service.Meta(
        category=rules.get("category"), product=rules.get("product"), study=rules.get("study")
    )
    return acl, meta


def scan_folder(session: Session, root: Path) -> Summary:
    """Index new and changed files under root, remove documents whose file is gone, apply
    changed rules to files already in. A file that cannot be taken is reported and skipped;
    the others go on. Links are not followed (nothing outside the folder is read)."""
    root = Path(root).resolve()
    summary = Summary()
    if not root.is_dir():
        summary.failed.append((str(root), "The watched folder does not exist."))
        return summary
    known = {
        d.source_ref: d
        for d in session.scalars(select(InsightDocument).where(InsightDocument.source == "folder"))
    }
    seen: set[str] = set()
    cache: dict[Path, dict] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        parts = path.relative_to(root).parts
        if any(p.startswith(".") for p in parts) or extract.media_type(path.name) is None:
            continue
        if any((root / Path(*parts[: i + 1])).is_symlink() for i in range(len(parts))):
            summary.failed.append((rel, "A link: only files inside the folder are read."))
            seen.add(rel)  # a document it had before keeps its place until the link goes
            continue
        doc = known.get(rel)
        try:
            if not path.is_file():
                continue
            seen.add(rel)
            stat = path.stat()
            rules = _rules(path.parent, root, cache)
            if "error" in rules:
                raise ValueError(rules["error"])
            acl, meta = from_rules(rules)
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            if doc is not None and doc.size == stat.st_size and doc.updated_at >= modified:
                if doc.acl_key != acl.key:  # the folder's rules changed: the file did not
                    service.set_access(session, None, doc, acl)
                    summary.updated += 1
                else:
                    summary.unchanged += 1
                continue
            with session.begin_nested():
                _doc, changed = service.add_file(
                    session,
                    None,
                    path.name,
                    path.read_bytes(),
                    acl=acl,
                    meta=meta,
                    source="folder",
                    source_ref=rel,
                )
        except (DomainError, OSError, ValueError) as exc:
            summary.failed.append((rel, getattr(exc, "detail", None) or str(exc)))
            continue
        if not changed:
            _doc.updated_at = utcnow()  # same bytes: remember that this mtime was seen
            summary.unchanged += 1
        elif doc is None:
            summary.added += 1
        else:
            summary.updated += 1
    for ref, doc in known.items():
        if ref not in seen:
            service.remove(session, None, doc)
            summary.removed += 1
    _mark(session, "folder", str(root), summary)
    return summary


def _mark(session: Session, source: str, scope: str, summary: Summary, cursor=None) -> None:
    sync = session.scalars(
        select(InsightSync).where(InsightSync.source == source, InsightSync.scope == scope[:400])
    ).one_or_none()
    if sync is None:
        sync = InsightSync(source=source, scope=scope[:400])
        session.add(sync)
    sync.synced_at = utcnow()
    sync.cursor = cursor if cursor is not None else sync.cursor
    sync.error = "; ".join(f"{n}: {r}" for n, r in summary.failed)[:4000] or None
    session.flush()


def sync_content(session: Session, day: date | None = None) -> Summary:
    """Approved content inside its dates is indexed (readable in its countries); withdrawn,
    expired or replaced content leaves the index at once."""
    from parcours.content import service as content
    from parcours.content.models import ContentVersion
    from parcours.content.storage import original_path

    day = day or content.today()
    summary = Summary()
    versions = session.scalars(
        select(ContentVersion).where(
            ContentVersion.state == "approved",
            ContentVersion.valid_from <= day,
            ContentVersion.valid_until >= day,
        )
    ).all()
    wanted: dict[str, object] = {}
    for v in versions:
        if content.replaced_on(session, v, day):
            continue
        path = original_path(v)
        if extract.media_type(path.name) is None or not path.exists():
            continue
        wanted[f"version:{v.id}"] = (v, path)
    known = {
        d.source_ref: d
        for d in session.scalars(select(InsightDocument).where(InsightDocument.source == "content"))
    }
    for ref, doc in known.items():
        if ref not in wanted:
            service.remove(session, None, doc)
            summary.removed += 1
    for ref, (v, path) in wanted.items():
        if ref in known:
            summary.unchanged += 1
            continue
        try:
            with session.begin_nested():
                service.add_file(
                    session,
                    None,
                    f"{v.title}{path.suffix}",
                    path.read_bytes(),
                    acl=service.Acl.of(countries=v.countries or []),
                    meta=service.Meta(
                        title=v.title,
                        language=v.language if v.language in ("fr", "en") else None,
                        category="medical" if v.content_type == "medical" else "other",
                        doc_date=v.valid_from,
                    ),
                    source="content",
                    source_ref=ref,
                )
            summary.added += 1
        except (DomainError, OSError) as exc:
            summary.failed.append((v.title, getattr(exc, "detail", None) or str(exc)))
    return summary


def sync_sharepoint(session: Session, settings=None) -> dict[str, Summary]:
    """Each configured drive's changes since the last sync (Graph delta): new and changed
    files indexed, deleted ones removed. A drive that fails keeps its cursor and says why."""
    from parcours.ai import sharepoint
    from parcours.core.settings import get_settings

    settings = settings or get_settings()
    out: dict[str, Summary] = {}
    if not sharepoint.configured(settings):
        return out
    with sharepoint.client_for(settings) as client:
        for drive in settings.graph_drives:
            out[drive] = _sync_drive(session, client, drive, settings)
    return out


def _sync_drive(session: Session, client, drive: str, settings) -> Summary:
    from parcours.ai import sharepoint

    summary = Summary()
    sync = session.scalars(
        select(InsightSync).where(InsightSync.source == "sharepoint", InsightSync.scope == drive)
    ).one_or_none()
    try:
        acl, base_meta = from_rules(settings.graph_drive_rules.get(drive, {}))
    except (ValueError, AttributeError) as exc:
        summary.failed.append((drive, f"PARCOURS_GRAPH_DRIVE_RULES: {exc}"))
        _mark(session, "sharepoint", drive, summary)
        return summary
    prefix = f"{drive}:"

    def documents() -> dict[str, InsightDocument]:
        return {
            d.source_ref: d
            for d in session.scalars(
                select(InsightDocument).where(
                    InsightDocument.source == "sharepoint",
                    InsightDocument.source_ref.startswith(prefix, autoescape=True),
                )
            )
        }

    def ingest(ref: str, filename: str, data: bytes, meta: dict) -> None:
        modified = meta.get("modified")
        with session.begin_nested():
            doc, changed = service.add_file(
                session,
                None,
                filename,
                data,
                acl=acl,
                meta=service.Meta(
                    title=None,  # the file's own title, else its name without extension
                    authors=(meta.get("authors") or None) and meta["authors"][:300],
                    doc_date=modified.date() if modified else None,
                    web_url=meta.get("web_url"),
                    category=base_meta.category,
                    product=base_meta.product,
                    study=base_meta.study,
                ),
                source="sharepoint",
                source_ref=ref,
            )
            doc.source_version = meta.get("etag")

    docs = documents()

    def known(ref: str) -> str | None:
        """The eTag last taken; none when the drive's rules changed since (fetch again)."""
        doc = docs.get(ref)
        if doc is None or doc.state == "failed" or doc.acl_key != acl.key:
            return None
        return doc.source_version

    try:
        result = sharepoint.sync_drive(
            client,
            drive,
            sync.cursor if sync else None,
            ingest=ingest,
            remove=lambda ref: service.remove_source(session, "sharepoint", ref),
            known_etag=known,
            reset=lambda: None,
            settings=settings,
        )
    except sharepoint.GraphError as exc:
        summary.failed.append((drive, str(exc)))
        _mark(session, "sharepoint", drive, summary)
        return summary
    if result.full:  # a full listing says nothing of deletions: what it did not see is gone
        for ref, doc in documents().items():
            if ref not in result.seen:
                service.remove(session, None, doc)
                summary.removed += 1
    summary.added, summary.removed = result.added, summary.removed + result.removed
    summary.updated, summary.unchanged = result.updated, result.skipped
    summary.failed += list(result.errors)
    # with a file in error, keep the old cursor so that it is listed (and tried) again;
    # the files taken meanwhile are skipped by their eTag
    cursor = (sync.cursor if sync else None) if result.errors else result.cursor
    _mark(session, "sharepoint", drive, summary, cursor=cursor or "")
    return summary
