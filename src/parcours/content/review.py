"""MLR review: the reviewer inbox, page comments, signed decisions and what ends a version.

Approval, rejection, supersession, expiry and withdrawal all happen here; what a version
is and who may see it stays in `service`.
"""

from __future__ import annotations

import difflib
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcours.content import service
from parcours.content.models import REVIEW_ROLES, ContentVersion, ReviewComment, Signature
from parcours.content.service import (
    BUILDERS,
    _now,
    can_see,
    check_signatures,
    get_version,
    manifest_hash,
    pages,
    signatures,
)
from parcours.content.storage import file_hash, original_path
from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, TooMany
from parcours.core.models import Role, User
from parcours.core.security import verify_password
from parcours.core.settings import get_settings


def review_inbox(session: Session, user: User) -> list[ContentVersion]:
    """Versions in review that still wait for this reviewer's role."""
    if user.role != Role.reviewer or not user.review_role:
        return []
    out = []
    for v in session.scalars(
        select(ContentVersion)
        .where(ContentVersion.state == "in_review")
        .order_by(ContentVersion.submitted_at)
    ):
        if user.review_role not in (v.required_roles or []):
            continue
        signed = {s.role for s in signatures(session, v.id)}
        if user.review_role not in signed:
            out.append(v)
    return out


def add_comment(
    session: Session, user: User, version_id: int, body: str, page: int | None = None
) -> ReviewComment:
    if user.role not in (Role.reviewer, *BUILDERS):
        raise Forbidden("Only reviewers and the content's builders comment.")
    version = get_version(session, user, version_id)
    if version.state not in ("in_review", "draft"):
        raise Conflict("Comments are taken while a version is a draft or in review.", field="state")
    body = (body or "").strip()
    if not body:
        raise Invalid("Write a comment.", field="body")
    if len(body) > 5000:
        raise Invalid("A comment is at most 5,000 characters.", field="body")
    if page is not None and not (1 <= page <= max(version.page_count, 1)):
        raise Invalid(f"This version has pages 1 to {version.page_count}.", field="page")
    comment = ReviewComment(
        version_id=version.id, page=page, author_id=user.id, role=user.review_role, body=body
    )
    session.add(comment)
    session.flush()
    return comment


def comments(session: Session, version_id: int) -> list[ReviewComment]:
    return list(
        session.scalars(
            select(ReviewComment)
            .where(ReviewComment.version_id == version_id)
            .order_by(ReviewComment.page.nulls_first(), ReviewComment.id)
        )
    )


class WrongPassword(Invalid):
    """A signing attempt with a wrong password: the failure count must still be committed."""


def count_wrong_password(session: Session, user: User) -> None:
    """A wrong signing password counts like a failed login (lock-out included).

    Called by the routes outside the failed attempt's savepoint, so the count is kept.
    """
    settings = get_settings()
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= settings.login_max_failures:
        user.locked_until = _now() + timedelta(seconds=settings.login_lockout_s)
        user.failed_logins = 0
        audit.note(session, "users", str(user.id), "lock", "locked after wrong signing passwords")
    session.flush()


MEANINGS = {
    "approved": "Approved as {role} reviewer",
    "rejected": "Rejected as {role} reviewer",
}


def sign(
    session: Session,
    user: User,
    version_id: int,
    *,
    password: str,
    decision: str,
    comment: str | None = None,
) -> Signature:
    """An MLR decision signed with the reviewer's password, bound to the version's hash."""
    if user.role != Role.reviewer or user.review_role not in REVIEW_ROLES:
        raise Forbidden("Only MLR reviewers sign content.")
    if decision not in MEANINGS:
        raise Invalid("Choose approve or reject.", field="decision")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "in_review":
        raise Conflict(
            f"This version is {version.state.replace('_', ' ')}, not in review.", field="state"
        )
    role = user.review_role
    if role not in (version.required_roles or []):
        raise Forbidden(f"This version does not need a {role} review.")
    comment = (comment or "").strip() or None
    if decision == "rejected" and not comment:
        raise Invalid("Say why you reject this version.", field="comment")
    if comment and len(comment) > 5000:
        raise Invalid("A comment is at most 5,000 characters.", field="comment")
    if user.locked_until and user.locked_until > _now():
        raise TooMany(
            "Too many wrong passwords: signing is locked for a few minutes.", field="password"
        )
    if not password or not verify_password(user.password_hash, password):
        raise WrongPassword("This is not your password; nothing was signed.", field="password")
    user.failed_logins = 0
    current = file_hash(original_path(version))
    if current != version.sha256:
        raise Conflict(
            "The stored file no longer matches the uploaded bytes; it cannot be signed.",
            field="file",
        )
    checks = check_signatures(session, version)
    if any(c.signature.role == role and c.valid for c in checks):
        raise Conflict(f"This version already has a {role} signature.", field="decision")
    if any(c.signature.signer_id == user.id for c in checks):
        raise Conflict(
            "You already signed this version (one person signs for one role).", field="decision"
        )
    sig = Signature(
        version_id=version.id,
        signer_id=user.id,
        printed_name=user.full_name,
        role=role,
        decision=decision,
        meaning=MEANINGS[decision].format(role=role),
        comment=comment,
        signed_hash=manifest_hash(session, version, current),
        signed_at=_now(),
    )
    session.add(sig)
    session.flush()
    if decision == "rejected":
        version.state = "rejected"
        version.decided_at = _now()
    else:
        approved = {
            c.signature.role for c in checks if c.valid and c.signature.decision == "approved"
        }
        approved.add(role)
        if set(version.required_roles or []) <= approved:
            _approve(session, version)
    session.flush()
    return sig


def _approve(session: Session, version: ContentVersion) -> None:
    version.state = "approved"
    version.decided_at = _now()
    if version.valid_from <= service.today():
        supersede_older(session, version)


def supersede_older(session: Session, version: ContentVersion) -> None:
    """A newer approved version in force retires the older approved ones of its item.

    A version approved ahead of its start date leaves the current one in use until then
    (the worker's daily duty calls this when the day comes).
    """
    for older in session.scalars(
        select(ContentVersion).where(
            ContentVersion.content_id == version.content_id,
            ContentVersion.number < version.number,
            ContentVersion.state == "approved",
        )
    ):
        older.state = "superseded"
        older.ended_at = _now()
        older.end_reason = f"Replaced by version {version.number}"


def withdraw(session: Session, user: User, version_id: int, reason: str) -> ContentVersion:
    """An admin takes approved content out of use at once (invariant 2)."""
    if user.role != Role.admin:
        raise Forbidden("Only an admin withdraws content.")
    version = get_version(session, user, version_id, for_update=True)
    if version.state != "approved":
        raise Conflict(
            f"This version is {version.state.replace('_', ' ')}; only approved "
            "content is withdrawn.",
            field="state",
        )
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why this content is withdrawn.", field="reason")
    if len(reason) > 2000:
        raise Invalid("The reason is at most 2,000 characters.", field="reason")
    version.state = "withdrawn"
    version.ended_at = _now()
    version.ended_by = user.id
    version.end_reason = reason
    session.flush()
    return version


def supersede_due(session: Session, day: date | None = None) -> int:
    """Approved versions whose start date has come retire the older approved ones."""
    day = day or service.today()
    n = 0
    newest: dict[int, ContentVersion] = {}
    for v in session.scalars(
        select(ContentVersion)
        .where(ContentVersion.state == "approved", ContentVersion.valid_from <= day)
        .order_by(ContentVersion.content_id, ContentVersion.number)
    ):
        newest[v.content_id] = v
    for v in newest.values():
        before = session.scalar(
            select(func.count()).where(
                ContentVersion.content_id == v.content_id,
                ContentVersion.state == "approved",
                ContentVersion.number < v.number,
            )
        )
        if before:
            supersede_older(session, v)
            n += before
    session.flush()
    return n


def expire_due(session: Session, day: date | None = None) -> int:
    """Approved versions past their expiry date become expired (the worker runs this)."""
    day = day or service.today()
    n = 0
    for v in session.scalars(
        select(ContentVersion)
        .where(ContentVersion.state == "approved", ContentVersion.valid_until < day)
        .with_for_update()
    ):
        v.state = "expired"
        v.ended_at = _now()
        v.end_reason = f"Expired on {v.valid_until.isoformat()}"
        n += 1
    session.flush()
    return n


def diff(session: Session, old: ContentVersion, new: ContentVersion) -> list[dict]:
    """Text differences page by page between two versions, for re-review."""
    a = {p.number: p.text for p in pages(session, old.id)}
    b = {p.number: p.text for p in pages(session, new.id)}
    out = []
    for n in range(1, max([0, *a, *b]) + 1):
        before, after = a.get(n), b.get(n)
        if before is None:
            status = "added"
        elif after is None:
            status = "removed"
        else:
            status = "same" if before == after else "changed"
        lines = []
        if status != "same":
            sm = difflib.SequenceMatcher(
                None, (before or "").split(), (after or "").split(), autojunk=False
            )
            for op, i1, i2, j1, j2 in sm.get_opcodes():
                words_a = " ".join((before or "").split()[i1:i2])
                words_b = " ".join((after or "").split()[j1:j2])
                if op == "equal":
                    lines.append(("same", words_a))
                else:
                    if words_a:
                        lines.append(("del", words_a))
                    if words_b:
                        lines.append(("add", words_b))
        out.append({"page": n, "status": status, "parts": lines})
    return out


def previous_version(
    session: Session, version: ContentVersion, user: User | None = None
) -> ContentVersion | None:
    """The latest rendered version before this one (that the user may see, if given)."""
    rows = session.scalars(
        select(ContentVersion)
        .where(
            ContentVersion.content_id == version.content_id,
            ContentVersion.number < version.number,
            ContentVersion.render_state == "ready",
        )
        .order_by(ContentVersion.number.desc())
    )
    return next((v for v in rows if user is None or can_see(session, user, v)), None)
