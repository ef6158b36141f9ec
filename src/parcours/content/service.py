"""Content library rules: upload, versions, MLR review, e-signatures, validity and withdrawal."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import Session

from parcours.accounts.models import Product, UserProduct
from parcours.content import files
from parcours.content.models import (
    CONTENT_TYPES,
    REVIEW_ROLES,
    Content,
    ContentPage,
    ContentVersion,
    ReviewComment,
    Signature,
)
from parcours.content.storage import file_hash, original_path, version_dir
from parcours.core import jobs
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings

BUILDERS = (Role.admin, Role.marketing)
EDITABLE = (
    "title",
    "description",
    "content_type",
    "language",
    "countries",
    "product_ids",
    "audience",
    "key_messages",
    "valid_from",
    "valid_until",
    "required_roles",
    "change_note",
)
# what reviewers sign besides the file bytes: a change to any of these voids a signature
SIGNED_FIELDS = (
    "title",
    "content_type",
    "language",
    "countries",
    "product_ids",
    "audience",
    "key_messages",
    "valid_from",
    "valid_until",
)
LANGUAGES = ("fr", "en", "de", "es", "it", "nl", "pt")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    from parcours.activities.service import local_today

    return local_today()


def day_of(at: datetime) -> date:
    """The site's calendar day of a moment: content validity dates are the site's days."""
    from parcours.activities.service import local_zone

    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(local_zone()).date()


# ---------------------------------------------------------------- visibility


def _user_product_ids(session: Session, user: User) -> set[int]:
    """A rep's products, read once per session: a list checks them for every version."""
    cache = session.info.setdefault("user_products", {})
    if user.id not in cache:
        cache[user.id] = set(
            session.scalars(select(UserProduct.product_id).where(UserProduct.user_id == user.id))
        )
    return cache[user.id]


@event.listens_for(Session, "before_flush")
def _forget_user_products(session: Session, _ctx, _instances) -> None:
    if any(isinstance(o, UserProduct) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info.pop("user_products", None)


def is_valid_on(version: ContentVersion, day: date) -> bool:
    return version.state == "approved" and version.valid_from <= day <= version.valid_until


def manifest_hash(session: Session, version: ContentVersion, file_sha: str | None = None) -> str:
    """What a signature binds: the file's bytes, the rendered files reps are shown (all read
    from disk) and the reviewed metadata."""
    data = {f: getattr(version, f) for f in SIGNED_FIELDS}
    data["valid_from"] = version.valid_from.isoformat()
    data["valid_until"] = version.valid_until.isoformat()
    data["file_sha256"] = file_sha if file_sha is not None else file_hash(original_path(version))
    data["page_messages"] = [
        [p.number, p.key_messages]
        for p in session.scalars(
            select(ContentPage)
            .where(ContentPage.version_id == version.id)
            .order_by(ContentPage.number)
        )
        if p.key_messages
    ]
    data["rendered"] = rendered_hashes(version)
    raw = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def rendered_hashes(version: ContentVersion) -> list[list[str | None]]:
    """Hashes of the page images, thumbnails and HTML5 files served for this version."""
    folder = version_dir(version.id)
    out: list[list[str | None]] = []
    for sub in ("pages", "thumbs", "site"):
        root = folder / sub
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                out.append([path.relative_to(folder).as_posix(), file_hash(path)])
    return out


def signatures(session: Session, version_id: int) -> list[Signature]:
    return list(
        session.scalars(
            select(Signature).where(Signature.version_id == version_id).order_by(Signature.id)
        )
    )


@dataclass
class SignatureCheck:
    signature: Signature
    valid: bool


def check_signatures(session: Session, version: ContentVersion) -> list[SignatureCheck]:
    current = manifest_hash(session, version)
    return [SignatureCheck(s, s.signed_hash == current) for s in signatures(session, version.id)]


def presentable(session: Session, version: ContentVersion, day: date | None = None) -> bool:
    """Invariant 2: approved, inside its dates, and every signature still matches its bytes."""
    day = day or today()
    if not is_valid_on(version, day) or replaced_on(session, version, day):
        return False
    checks = check_signatures(session, version)
    return bool(checks) and all(c.valid for c in checks)


def replaced_on(session: Session, version: ContentVersion, day: date) -> bool:
    """A newer approved version of the same item is in force (even before the worker says so)."""
    return bool(
        session.scalar(
            select(func.count()).where(
                ContentVersion.content_id == version.content_id,
                ContentVersion.number > version.number,
                ContentVersion.state == "approved",
                ContentVersion.valid_from <= day,
            )
        )
    )


def require_presentable(session: Session, version: ContentVersion) -> None:
    if version.state == "withdrawn":
        raise Conflict("This content was withdrawn and can no longer be shown.", field="content")
    if version.state in ("expired", "superseded") or (
        version.state == "approved" and version.valid_until < today()
    ):
        raise Conflict("This content has expired and can no longer be shown.", field="content")
    if version.state == "approved" and replaced_on(session, version, today()):
        raise Conflict("This content has expired and can no longer be shown.", field="content")
    if version.state == "approved" and version.valid_from > today():
        raise Conflict("This content is not valid yet.", field="content")
    if version.state != "approved":
        raise Conflict("This content is not approved.", field="content")
    if not presentable(session, version):
        raise Conflict(
            "This content's file no longer matches what the reviewers signed; it cannot be shown.",
            field="content",
        )


def can_see(session: Session, user: User, version: ContentVersion) -> bool:
    """Builders see all; reviewers what reached review; reps and managers what they may show."""
    if user.role in BUILDERS:
        return True
    if user.role == Role.reviewer:
        return version.state != "draft"
    if not in_market(session, user, version):
        return False
    return presentable(session, version)


def in_market(session: Session, user: User, version: ContentVersion) -> bool:
    """The version is for this rep's or manager's country (and a rep's products)."""
    if not user.country or user.country not in (version.countries or []):
        return False  # no country set: nothing, rather than every country's material
    if user.role == Role.rep:
        mine = _user_product_ids(session, user)
        if mine and not mine.intersection(version.product_ids or []):
            return False
    return True


def get_version(session: Session, user: User, version_id: int, *, for_update=False):
    version = session.get(ContentVersion, version_id, with_for_update=for_update or None)
    if version is None or not can_see(session, user, version):
        raise NotFound(f"Content version {version_id} does not exist or is not available to you.")
    return version


def get_content(session: Session, user: User, content_id: int) -> Content:
    content = session.get(Content, content_id)
    if content is None or not versions_for(session, user, content_id):
        raise NotFound(f"Content {content_id} does not exist or is not available to you.")
    return content


def versions_for(session: Session, user: User, content_id: int) -> list[ContentVersion]:
    rows = session.scalars(
        select(ContentVersion)
        .where(ContentVersion.content_id == content_id)
        .order_by(ContentVersion.number.desc())
    )
    return [v for v in rows if can_see(session, user, v)]


def pages(session: Session, version_id: int) -> list[ContentPage]:
    return list(
        session.scalars(
            select(ContentPage)
            .where(ContentPage.version_id == version_id)
            .order_by(ContentPage.number)
        )
    )


def library(
    session: Session,
    user: User,
    *,
    q: str | None = None,
    state: str | None = None,
    product_id: int | None = None,
    content_type: str | None = None,
    language: str | None = None,
    country: str | None = None,
    kind: str | None = None,
    limit: int = 200,
) -> list[ContentVersion]:
    """One row per content item: its newest version this user may see, filtered."""
    stmt = select(ContentVersion).order_by(
        ContentVersion.content_id.desc(), ContentVersion.number.desc()
    )
    if state:
        stmt = stmt.where(ContentVersion.state == state)
    if content_type:
        stmt = stmt.where(ContentVersion.content_type == content_type)
    if language:
        stmt = stmt.where(ContentVersion.language == language)
    if kind:
        stmt = stmt.where(ContentVersion.kind == kind)
    if user.role not in BUILDERS:
        stmt = stmt.where(ContentVersion.state != "draft")
        if user.role != Role.reviewer:
            day = today()
            stmt = stmt.where(
                ContentVersion.state == "approved",
                ContentVersion.valid_from <= day,
                ContentVersion.valid_until >= day,
            )
    needle = (q or "").strip().lower()
    in_text: set[int] = set()
    if needle:  # the words of every rendered page are searched as well as titles
        in_text = set(
            session.scalars(
                select(ContentPage.version_id)
                .where(func.lower(ContentPage.text).contains(needle, autoescape=True))
                .distinct()
            )
        )
    seen: set[int] = set()
    out: list[ContentVersion] = []
    for v in session.scalars(stmt):
        if v.content_id in seen:
            continue
        if needle and needle not in v.title.lower() and v.id not in in_text:
            continue
        if product_id and product_id not in (v.product_ids or []):
            continue
        if country and country not in (v.countries or []):
            continue
        if not can_see(session, user, v):
            continue
        seen.add(v.content_id)
        out.append(v)
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------- building


def _check_meta(session: Session, data: dict) -> dict:
    errors: list[dict] = []

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    out = dict(data)
    if "title" in data:
        title = (data["title"] or "").strip()
        if not title:
            err("title", "Give the content a title.")
        elif len(title) > 200:
            err("title", "The title is at most 200 characters.")
        elif any(ord(c) < 32 for c in title):
            # a title becomes an email's subject: no line break may slip into a header
            err("title", "The title is one line, without control characters.")
        out["title"] = title
    if "description" in data and data["description"] and len(data["description"]) > 5000:
        err("description", "The description is at most 5,000 characters.")
    if "content_type" in data and data["content_type"] not in CONTENT_TYPES:
        err("content_type", "Choose promotional, medical or training.")
    if "language" in data and data["language"] not in LANGUAGES:
        err("language", f"Choose a language among {', '.join(LANGUAGES)}.")
    if "countries" in data:
        cs = data["countries"]
        if not isinstance(cs, list) or not cs:
            err("countries", "Choose at least one country.")
        elif not all(isinstance(c, str) and _COUNTRY.match(c) for c in cs):
            err("countries", "Countries are two-letter codes such as FR or GB.")
        else:
            out["countries"] = sorted(set(cs))
    if "product_ids" in data:
        ps = data["product_ids"]
        if not isinstance(ps, list) or not ps:
            err("product_ids", "Choose at least one product.")
        elif not all(isinstance(p, int) and not isinstance(p, bool) for p in ps):
            err("product_ids", "Products are given by their ids.")
        else:
            found = set(session.scalars(select(Product.id).where(Product.id.in_(ps))))
            if found != set(ps):
                err("product_ids", f"Unknown product {sorted(set(ps) - found)[0]}.")
            out["product_ids"] = sorted(set(ps))
    for field, limit, what in (
        ("audience", 20, "specialties"),
        ("key_messages", 30, "key messages"),
    ):
        if field in data:
            vals = data[field]
            if vals is None:
                out[field] = []
            elif not isinstance(vals, list) or not all(
                isinstance(v, str) and 0 < len(v.strip()) <= 200 for v in vals
            ):
                err(field, f"The {what} are short texts (200 characters at most).")
            elif len(vals) > limit:
                err(field, f"At most {limit} {what}.")
            else:
                out[field] = list(dict.fromkeys(v.strip() for v in vals))
    if "required_roles" in data:
        rr = data["required_roles"]
        if not isinstance(rr, list) or not rr or not set(rr) <= set(REVIEW_ROLES):
            err("required_roles", "Required reviewers are among medical, legal and regulatory.")
        else:
            out["required_roles"] = [r for r in REVIEW_ROLES if r in rr]
    for field in ("valid_from", "valid_until"):
        if field in data and not isinstance(data[field], date):
            err(field, "Give a date.")
    if "change_note" in data and data["change_note"] and len(data["change_note"]) > 2000:
        err("change_note", "The change note is at most 2,000 characters.")
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)
    return out


def _check_dates(version: ContentVersion) -> None:
    if version.valid_until < version.valid_from:
        raise Invalid("The expiry date comes after the start date.", field="valid_until")
    if version.valid_until < today():
        raise Invalid("The expiry date has already passed.", field="valid_until")


def upload(
    session: Session,
    user: User,
    path: Path,
    filename: str,
    meta: dict,
    *,
    content_id: int | None = None,
    parent_id: int | None = None,
) -> ContentVersion:
    """A new content item (or a new version of one) from an uploaded file, rendered by the worker.

    The file at path is moved into the library only when everything was accepted.
    """
    if user.role not in BUILDERS:
        raise Forbidden("Only marketing and admins build content.")
    settings = get_settings()
    inspected = files.inspect(path, filename, settings)
    if content_id is not None:
        content = session.get(Content, content_id, with_for_update=True)
        if content is None:
            raise NotFound(f"Content {content_id} does not exist.")
        latest = session.scalars(
            select(ContentVersion)
            .where(ContentVersion.content_id == content_id)
            .order_by(ContentVersion.number.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.state in ("draft", "in_review"):
            raise Conflict(
                f"Version {latest.number} is still a draft or in review: finish it first.",
                field="file",
            )
        base = {f: getattr(latest, f) for f in EDITABLE} if latest else {}
        base["change_note"] = None
        number = (latest.number if latest else 0) + 1
    else:
        if parent_id is not None and session.get(Content, parent_id) is None:
            raise Invalid(f"Global content {parent_id} does not exist.", field="parent_id")
        missing = [
            f
            for f in ("title", "content_type", "language", "countries", "product_ids")
            if f not in meta
        ]
        if missing:
            raise Invalid("This field is required.", field=missing[0])
        content = Content(owner_id=user.id, parent_id=parent_id)
        session.add(content)
        session.flush()
        base, number = {}, 1
    unknown = set(meta) - set(EDITABLE)
    if unknown:
        raise Invalid(f"{sorted(unknown)[0]} cannot be set.", field=sorted(unknown)[0])
    data = {**base, **_check_meta(session, meta)}
    data.setdefault("valid_from", today())
    if "valid_until" not in data:
        raise Invalid("Give the expiry date.", field="valid_until")
    version = ContentVersion(
        content_id=content.id,
        number=number,
        state="draft",
        kind=inspected.kind,
        filename=Path(filename or "upload").name[:255],
        media_type=inspected.media_type,
        size=inspected.size,
        sha256=inspected.sha256,
        created_by=user.id,
        render_state="queued",
        **data,
    )
    _check_dates(version)
    session.add(version)
    session.flush()
    target = original_path(version)
    if target.parent.exists():  # a leftover of a rolled-back upload with the same id
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    shutil.move(str(path), target)
    jobs.enqueue(session, "content.render", {"version_id": version.id})
    return version


def update_draft(session: Session, user: User, version_id: int, **changes) -> ContentVersion:
    if user.role not in BUILDERS:
        raise Forbidden("Only marketing and admins build content.")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "draft":
        raise Conflict("Only a draft can be changed: upload a new version instead.", field="state")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise Invalid(f"{sorted(unknown)[0]} cannot be changed.", field=sorted(unknown)[0])
    for key, value in _check_meta(session, changes).items():
        setattr(version, key, value)
    _check_dates(version)
    session.flush()
    return version


def set_page_messages(
    session: Session, user: User, version_id: int, page: int, key_messages: list[str]
) -> ContentPage:
    """Which of the version's key messages a slide carries (recorded when it is shown)."""
    if user.role not in BUILDERS:
        raise Forbidden("Only marketing and admins build content.")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "draft":
        raise Conflict("Only a draft can be changed.", field="state")
    row = session.scalar(
        select(ContentPage).where(ContentPage.version_id == version_id, ContentPage.number == page)
    )
    if row is None:
        raise Invalid(f"This version has no page {page}.", field="page")
    unknown = [k for k in key_messages if k not in (version.key_messages or [])]
    if unknown:
        raise Invalid(
            f"'{unknown[0][:60]}' is not one of this content's key messages.", field="key_messages"
        )
    row.key_messages = list(dict.fromkeys(key_messages))
    session.flush()
    return row


def discard_draft(session: Session, user: User, version_id: int) -> int | None:
    """Delete a draft nobody reviewed (a failed upload, a false start); its files go after commit.

    Returns the content id when other versions remain, None when the item went with it.
    """
    if user.role not in BUILDERS:
        raise Forbidden("Only marketing and admins build content.")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "draft":
        raise Conflict(
            "Only a draft can be discarded; approved content is withdrawn.", field="state"
        )
    if version.render_state in ("queued", "rendering"):
        raise Conflict("Its pages are being prepared: discard it once that is done.", field="state")
    content_id = version.content_id
    folder = version_dir(version.id)
    for row in session.scalars(select(ReviewComment).where(ReviewComment.version_id == version.id)):
        session.delete(row)
    session.execute(delete(ContentPage).where(ContentPage.version_id == version.id))
    session.delete(version)
    session.flush()
    others = session.scalar(select(func.count()).where(ContentVersion.content_id == content_id))
    if not others:
        content = session.get(Content, content_id)
        children = session.scalar(select(func.count()).where(Content.parent_id == content_id))
        if content is not None and not children:
            session.delete(content)
            session.flush()
    # files go once the deletion is committed; a rollback keeps them with their row
    event.listen(
        session, "after_commit", lambda _s: shutil.rmtree(folder, ignore_errors=True), once=True
    )
    return content_id if others else None


def submit_for_review(session: Session, user: User, version_id: int) -> ContentVersion:
    if user.role not in BUILDERS:
        raise Forbidden("Only marketing and admins send content to review.")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "draft":
        raise Conflict(
            f"This version is {version.state.replace('_', ' ')}, not a draft.", field="state"
        )
    if version.render_state != "ready":
        raise Conflict(
            "The file is still being prepared; try again when its pages are ready.", field="file"
        )
    if file_hash(original_path(version)) != version.sha256:
        raise Conflict("The stored file differs from the upload; upload it again.", field="file")
    version.state = "in_review"
    version.submitted_at = _now()
    session.flush()
    return version


# ---------------------------------------------------------------- rendering (worker side)


def set_render_progress(session: Session, version_id: int, **values) -> None:
    # Core UPDATE, not the ORM: progress ticks are not business changes for the audit trail.
    session.execute(update(ContentVersion).where(ContentVersion.id == version_id).values(**values))
