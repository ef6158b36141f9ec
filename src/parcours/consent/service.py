"""Consent rules: capture with proof, double opt-in, and `consent_for`, asked by every sender."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from parcours.accounts import service as accounts
from parcours.accounts.models import Account, Product
from parcours.consent.models import (
    CHANNELS,
    SCOPED_TYPES,
    SOURCES,
    ConsentRecord,
    ConsentText,
)
from parcours.core import jobs
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings

CAPTURERS = (Role.rep, Role.manager, Role.admin, Role.marketing)
TEXT_EDITORS = (Role.admin, Role.marketing)
# a confirmation link is good for this long; after it, capture again
CONFIRM_WITHIN = timedelta(days=30)
# sources a user may declare; an email confirmation is only ever made by the HCP's click
CAPTURE_SOURCES = tuple(s for s in SOURCES if s not in ("email_confirmation", "unsubscribe"))
NEEDS_PROOF = ("signed_in_person", "import")


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- texts


def add_text(session: Session, user: User, code: str, language: str, body: str) -> ConsentText:
    """A new version of a consent wording; older versions stay, as the proof of what was shown."""
    if user.role not in TEXT_EDITORS:
        raise Forbidden("Only marketing and admins write consent texts.")
    code, body = (code or "").strip(), (body or "").strip()
    if not code or len(code) > 60 or not code.replace("-", "").replace("_", "").isalnum():
        raise Invalid("A code is 1 to 60 letters, digits, - or _.", field="code")
    if language not in ("fr", "en", "de", "es", "it"):
        raise Invalid("Choose a language.", field="language")
    if not 20 <= len(body) <= 10_000:
        raise Invalid("A consent text is 20 to 10,000 characters.", field="body")
    last = session.scalar(select(func.max(ConsentText.version)).where(ConsentText.code == code))
    text = ConsentText(code=code, version=(last or 0) + 1, language=language, body=body)
    session.add(text)
    session.flush()
    return text


def texts(session: Session) -> list[ConsentText]:
    """The latest version of each wording."""
    latest = (
        select(ConsentText.code, func.max(ConsentText.version).label("v"))
        .group_by(ConsentText.code)
        .subquery()
    )
    return list(
        session.scalars(
            select(ConsentText)
            .join(latest, (latest.c.code == ConsentText.code) & (latest.c.v == ConsentText.version))
            .order_by(ConsentText.code)
        )
    )


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # opted_in | opted_out | pending | expired | none
    record: ConsentRecord | None

    @property
    def message(self) -> str:
        return {
            "opted_in": "Consent given.",
            "opted_out": "The HCP opted out of this channel.",
            "pending": "Consent waits for the HCP's confirmation (double opt-in).",
            "expired": "The HCP's consent for this channel has expired.",
            "none": "No consent recorded for this channel.",
        }[self.reason]


def _applicable(
    account_ids: list[int], channel: str, product_id: int | None, content_type: str | None
):
    """Records that speak for this scope: the same or broader (no product, no content type)."""
    return select(ConsentRecord).where(
        ConsentRecord.account_id.in_(account_ids),
        ConsentRecord.channel == channel,
        or_(ConsentRecord.product_id.is_(None), ConsentRecord.product_id == product_id),
        or_(ConsentRecord.content_type.is_(None), ConsentRecord.content_type == content_type),
    )


def consent_for(
    session: Session,
    account_id: int,
    channel: str,
    product_id: int | None = None,
    content_type: str | None = None,
    *,
    at: datetime | None = None,
) -> Decision:
    """May this HCP be reached on this channel (for this product and content type)?

    The latest applicable record wins, whatever its scope: a global opt-out after a product
    opt-in refuses that product too; a product opt-in after a global opt-out allows only it.
    """
    return consent_for_many(session, [account_id], channel, product_id, content_type, at=at)[
        account_id
    ]


def consent_for_many(
    session: Session,
    account_ids: list[int],
    channel: str,
    product_id: int | None = None,
    content_type: str | None = None,
    *,
    at: datetime | None = None,
) -> dict[int, Decision]:
    """consent_for for several HCPs in one query (mass sends, batches of the worker)."""
    if channel not in CHANNELS:
        raise Invalid(f"Unknown channel {channel!r}.", field="channel")
    at = at or _now()
    latest: dict[int, ConsentRecord] = {}
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 500):
        rows = session.scalars(
            _applicable(ids[start : start + 500], channel, product_id, content_type)
            .where(ConsentRecord.captured_at <= at)
            .order_by(ConsentRecord.captured_at.desc(), ConsentRecord.id.desc())
        )
        for record in rows:
            latest.setdefault(record.account_id, record)
    return {account_id: _decide(latest.get(account_id), at) for account_id in account_ids}


def _decide(record: ConsentRecord | None, at: datetime) -> Decision:
    if record is None:
        return Decision(False, "none", None)
    if record.status == "opted_in":
        if record.expires_at is not None and record.expires_at <= at:
            return Decision(False, "expired", record)
        return Decision(True, "opted_in", record)
    return Decision(False, record.status, record)


def summary(session: Session, account_id: int) -> dict[str, Decision]:
    """Per channel, the general decision (no product, no content type) for the HCP 360."""
    return {channel: consent_for(session, account_id, channel) for channel in CHANNELS}


def history(session: Session, user: User, account_id: int) -> list[ConsentRecord]:
    accounts.require_readable(session, user, account_id)
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.account_id == account_id)
            .order_by(ConsentRecord.captured_at.desc(), ConsentRecord.id.desc())
        )
    )


# ---------------------------------------------------------------- capture


def capture(
    session: Session,
    user: User,
    account_id: int,
    *,
    channel: str,
    status: str,
    source: str,
    text_id: int | None = None,
    product_id: int | None = None,
    content_type: str | None = None,
    expires_at: datetime | None = None,
    proof: str | None = None,
    email: str | None = None,
    double_opt_in: bool = False,
) -> ConsentRecord:
    """Record an opt-in or opt-out with its proof; a double opt-in waits for the HCP's click."""
    if user.role not in CAPTURERS:
        raise Forbidden("Your role does not capture consent.")
    accounts.require_readable(session, user, account_id)
    account = session.get(Account, account_id)
    if account is None or account.kind != "hcp":
        raise Invalid("Consent is captured for an HCP.", field="account_id")
    errors: list[dict] = []

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    if channel not in CHANNELS:
        err("channel", "Choose a channel.")
    if status not in ("opted_in", "opted_out"):
        err("status", "Choose opt-in or opt-out.")
    if source not in CAPTURE_SOURCES:
        err("source", "Choose how consent was given: web form, signed in person or import.")
    text = session.get(ConsentText, text_id) if text_id is not None else None
    if status == "opted_in" and text is None:
        err("text_id", "Choose the consent text the HCP was shown.")
    elif text_id is not None and text is None:
        err("text_id", "Unknown consent text.")
    if product_id is not None and session.get(Product, product_id) is None:
        err("product_id", "Unknown product.")
    if content_type is not None and content_type not in SCOPED_TYPES:
        err("content_type", "The scope is promotional or medical.")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= _now():
            err("expires_at", "The expiry is in the future.")
    proof = (proof or "").strip() or None
    if source in NEEDS_PROOF and not proof and status == "opted_in":
        err("proof", "Say where the proof is (the signed form's reference, the import batch).")
    if proof and len(proof) > 2000:
        err("proof", "The proof reference is at most 2,000 characters.")
    if double_opt_in:
        if status != "opted_in":
            err("double_opt_in", "Only an opt-in is confirmed by email.")
        if channel != "email":
            err("double_opt_in", "Double opt-in confirms the email channel.")
        try:
            email = validate_email(
                email or "", check_deliverability=False, test_environment=True
            ).normalized
        except EmailNotValidError:
            err("email", "Give the HCP's email address for the confirmation.")
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)
    record = ConsentRecord(
        account_id=account_id,
        channel=channel,
        product_id=product_id,
        content_type=content_type,
        status="pending" if double_opt_in else status,
        source=source,
        text_id=text.id if text else None,
        captured_by=user.id,
        captured_at=_now(),
        expires_at=expires_at,
        proof=proof,
        email=email if double_opt_in else None,
    )
    session.add(record)
    session.flush()
    if double_opt_in:
        # sent by the worker once this transaction commits; a rollback sends nothing
        jobs.enqueue(session, "consent.confirmation", {"record_id": record.id})
    return record


# ---------------------------------------------------------------- double opt-in


def confirm_token(record_id: int) -> str:
    """The link's token: the record id and an HMAC of it, so nothing secret is stored."""
    key = get_settings().secret().encode()
    mac = hmac.new(key, f"consent-confirm:{record_id}".encode(), hashlib.sha256).hexdigest()
    return f"{record_id}.{mac[:40]}"


def record_for_token(session: Session, token: str) -> ConsentRecord:
    rid, _, mac = (token or "").partition(".")
    if not (rid.isascii() and rid.isdigit() and len(rid) <= 12) or not hmac.compare_digest(
        confirm_token(int(rid)), f"{rid}.{mac}"
    ):
        raise NotFound("This confirmation link is not valid.")
    record = session.get(ConsentRecord, int(rid))
    if record is None:
        raise NotFound("This confirmation link is not valid.")
    return record


def confirm(session: Session, token: str) -> ConsentRecord:
    """The HCP clicked: the pending opt-in becomes valid, unless something newer spoke since."""
    pending = record_for_token(session, token)
    done = session.scalar(select(ConsentRecord).where(ConsentRecord.confirms_id == pending.id))
    if done is not None:
        return done  # a second click changes nothing
    if pending.status != "pending":
        raise NotFound("This confirmation link is not valid.")
    if pending.captured_at + CONFIRM_WITHIN < _now():
        raise Conflict("This confirmation link has expired; ask for a new one.", field="token")
    newer = session.scalar(
        _applicable([pending.account_id], pending.channel, pending.product_id, pending.content_type)
        .where(ConsentRecord.captured_at > pending.captured_at)
        .limit(1)
    )
    if newer is not None:
        raise Conflict(
            "A newer consent choice was recorded since this link was sent.", field="token"
        )
    record = ConsentRecord(
        account_id=pending.account_id,
        channel=pending.channel,
        product_id=pending.product_id,
        content_type=pending.content_type,
        status="opted_in",
        source="email_confirmation",
        text_id=pending.text_id,
        captured_by=None,
        captured_at=_now(),
        expires_at=pending.expires_at,
        proof=f"confirmation link clicked for request {pending.id}",
        email=pending.email,
        confirms_id=pending.id,
    )
    session.add(record)
    session.flush()
    return record
