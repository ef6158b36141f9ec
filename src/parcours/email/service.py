"""Approved Email rules: what a rep may fill, the gates before every send, and what follows.

A rep picks an approved template and fills only its tokens (a phrase from its approved
list, a date, a link to approved content); everything else comes from the account and the
user. Before composing and again right before sending, the gates run: template approved
and valid, consent for the channel and scope, recipient reachable, frequency cap. Quiet
hours in the HCP's time zone delay a message rather than refuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.accounts import service as accounts
from parcours.accounts.models import Account
from parcours.activities.models import Activity, Attendee
from parcours.consent import service as consent
from parcours.consent.models import ConsentRecord
from parcours.content import service as content
from parcours.content import storage as content_storage
from parcours.content.models import ContentVersion
from parcours.core import jobs
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings
from parcours.email import templating
from parcours.email.models import EmailMessage

SENDERS = (Role.rep, Role.manager, Role.admin, Role.marketing)
VALUE_KEYS = ("phrase", "date", "content_version_id")
ZONES = {
    "FR": "Europe/Paris",
    "DE": "Europe/Berlin",
    "IT": "Europe/Rome",
    "ES": "Europe/Madrid",
    "GB": "Europe/London",
    "BE": "Europe/Brussels",
}
COUNTED = ("queued", "sending", "sent", "uncertain")


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- signed links


def sign(kind: str, key: str) -> str:
    mac = hmac.new(get_settings().secret().encode(), f"{kind}:{key}".encode(), hashlib.sha256)
    return f"{key}.{mac.hexdigest()[:32]}"


def message_for_token(session: Session, kind: str, token: str) -> EmailMessage:
    """The message a tracking or unsubscribe link belongs to; NotFound when tampered."""
    key, _, _mac = (token or "").partition(".")
    if not key or len(key) > 64 or not hmac.compare_digest(sign(kind, key), token or ""):
        raise NotFound("This link is not valid.")
    message = session.scalar(select(EmailMessage).where(EmailMessage.key == key))
    if message is None:
        raise NotFound("This link is not valid.")
    return message


def link(kind: str, key: str) -> str:
    base = get_settings().public_url.rstrip("/")
    paths = {"open": "/t/o/{}.gif", "click": "/t/c/{}", "unsubscribe": "/u/{}"}
    return base + paths[kind].format(sign(kind, key))


# ---------------------------------------------------------------- templates and gates


def templates_for(
    session: Session, user: User, *, invitations: bool = False
) -> list[ContentVersion]:
    """Approved email templates valid today that this user may send (meeting invitations
    apart: they are sent with the meeting)."""
    day = content.today()
    rows = session.scalars(
        select(ContentVersion)
        .where(
            ContentVersion.kind == "email",
            ContentVersion.state == "approved",
            ContentVersion.valid_from <= day,
            ContentVersion.valid_until >= day,
        )
        .order_by(ContentVersion.title)
    )
    return [
        v
        for v in rows
        if content.can_see(session, user, v)
        and content.presentable(session, v)
        and is_invitation(v) == invitations
    ]


def is_invitation(version: ContentVersion) -> bool:
    """A meeting invitation template (it uses the meeting's link)."""
    return "meeting_link" in templating.TOKEN.findall(_template_html(version))


@dataclass(frozen=True)
class Refusal:
    rule: str  # template | consent | recipient | frequency
    message: str


def gates(
    session: Session,
    account: Account,
    version: ContentVersion,
    *,
    at: datetime | None = None,
    exclude_id: int | None = None,
) -> list[Refusal]:
    """Every rule that forbids sending this template to this HCP now (empty: send).

    exclude_id: the message being sent, which must not count against its own cap.
    """
    return gates_many(session, version, [(account, exclude_id)], at=at)[0]


def gates_many(
    session: Session,
    version: ContentVersion,
    recipients: list[tuple[Account, int | None]],
    *,
    at: datetime | None = None,
) -> list[list[Refusal]]:
    """gates for many HCPs and one template, a few queries in all; refusals in order.

    recipients: (account, the message being sent or None) pairs.
    """
    from parcours.email.bounces import hard_bounces  # bounces imports this module

    at = at or _now()
    settings = get_settings()
    template_ok = version.kind == "email" and content.presentable(
        session, version, content.day_of(at)
    )
    reachable = {
        a.id: a.emails[0] for a, _ in recipients if a.status != "erased" and (a.emails or [])
    }
    bounced = hard_bounces(session, reachable)
    ctype = version.content_type if version.content_type in ("promotional", "medical") else None
    ids = [a.id for a, _ in recipients]
    decisions = [
        consent.consent_for_many(session, ids, "email", product_id, ctype, at=at)
        for product_id in version.product_ids or [None]
    ]
    counted: dict[int, list[int]] = {}
    if version.content_type == "promotional":
        since = at - timedelta(days=settings.email_cap_days)
        for start in range(0, len(ids), 500):
            rows = session.execute(
                select(EmailMessage.account_id, EmailMessage.id).where(
                    EmailMessage.account_id.in_(ids[start : start + 500]),
                    EmailMessage.content_type == "promotional",
                    EmailMessage.state.in_(COUNTED),
                    EmailMessage.queued_at >= since,
                )
            )
            for account_id, message_id in rows:
                counted.setdefault(account_id, []).append(message_id)
    out: list[list[Refusal]] = []
    for account, exclude_id in recipients:
        refusals: list[Refusal] = []
        if not template_ok:
            refusals.append(Refusal("template", "This template is no longer approved and valid."))
        if account.id not in reachable:
            refusals.append(Refusal("recipient", "This HCP has no email address to write to."))
        elif account.id in bounced:
            refusals.append(Refusal("recipient", f"This address bounced: {bounced[account.id]}"))
        for by_account in decisions:
            if not by_account[account.id].allowed:
                refusals.append(Refusal("consent", by_account[account.id].message))
                break
        if version.content_type == "promotional":
            sent = sum(1 for m in counted.get(account.id, []) if m != exclude_id)
            if sent >= settings.email_cap_count:
                refusals.append(
                    Refusal(
                        "frequency",
                        f"This HCP already has {sent} promotional emails in the last "
                        f"{settings.email_cap_days} days (at most {settings.email_cap_count}).",
                    )
                )
        if refusals and exclude_id in counted.get(account.id, []):
            # refused, it will not count against the next ones: as if gated one by one
            counted[account.id].remove(exclude_id)
        out.append(refusals)
    return out


def next_send_time(account: Account, at: datetime | None = None) -> datetime:
    """Now, or the end of the HCP's quiet hours in their own time zone."""
    settings = get_settings()
    at = at or _now()
    zone = ZoneInfo(ZONES.get(account.country, settings.timezone))
    local = at.astimezone(zone)
    start, end = settings.email_quiet_start_h, settings.email_quiet_end_h
    if end <= local.hour < start:
        return at
    day = local.date() if local.hour < end else local.date() + timedelta(days=1)
    return datetime.combine(day, time(end), zone).astimezone(UTC)


# ---------------------------------------------------------------- composing


def _values(session: Session, user: User, version: ContentVersion, raw: dict) -> dict[str, str]:
    """The rep's choices, checked against what the template allows; nothing else gets in."""
    unknown = sorted(set(raw) - set(VALUE_KEYS))
    if unknown:
        raise Invalid(f"{unknown[0]} is not something a rep fills.", field=unknown[0])
    uses = set(templating.TOKEN.findall(_template_html(version)))
    out: dict[str, str] = {}
    phrase = raw.get("phrase")
    if "phrase" in uses:
        if phrase not in (version.key_messages or []):
            raise Invalid("Choose one of the template's approved phrases.", field="phrase")
        out["phrase"] = phrase
    elif phrase:
        raise Invalid("This template has no phrase to choose.", field="phrase")
    when = raw.get("date")
    if "date" in uses:
        try:
            day = date.fromisoformat(str(when))
        except ValueError as exc:
            raise Invalid("Choose a date.", field="date") from exc
        today = content.today()
        if not today <= day <= today + timedelta(days=90):
            raise Invalid("Offer a date within the next 90 days.", field="date")
        out["date"] = day.strftime("%d/%m/%Y")
    elif when:
        raise Invalid("This template has no date to choose.", field="date")
    linked = raw.get("content_version_id")
    if "content_link" in uses:
        target = session.get(ContentVersion, linked) if isinstance(linked, int) else None
        if (
            target is None
            or target.kind == "email"
            or not content.can_see(session, user, target)
            or not content.presentable(session, target)
        ):
            raise Invalid(
                "Choose approved content valid today to link.", field="content_version_id"
            )
        out["content_version_id"] = str(target.id)
    elif linked is not None:
        raise Invalid("This template has no content link.", field="content_version_id")
    return out


def _template_html(version: ContentVersion) -> str:
    path = content_storage.original_path(version)
    stat = path.stat()
    return _read_template(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _read_template(path: str, _mtime_ns: int, _size: int) -> str:
    return Path(path).read_text(encoding="utf-8")


def compose(
    session: Session,
    user: User,
    account: Account,
    version: ContentVersion,
    raw: dict,
    key: str,
    *,
    pixel: bool = True,
    meeting: dict[str, str] | None = None,
) -> tuple[str, str, dict[str, str]]:
    """(html, text, checked values) exactly as the HCP will receive it (a preview has no
    open pixel, so that looking at it never counts as an open). meeting: the values of a
    meeting invitation's tokens (link, passcode, time), which only the server fills."""
    uses = set(templating.TOKEN.findall(_template_html(version)))
    if uses & set(templating.MEETING_TOKENS) and meeting is None:
        raise Invalid(
            "This template invites to a remote meeting: it is sent when the meeting is planned.",
            field="template_id",
        )
    values = _values(session, user, version, raw)
    filled = {
        **{k: "" for k in templating.MEETING_TOKENS},
        **(meeting or {}),
        "recipient_name": " ".join(p for p in (account.first_name, account.last_name) if p),
        "recipient_title": account.title or "",
        "rep_signature": f"{user.full_name} — {user.email}",
        "phrase": values.get("phrase", ""),
        "date": values.get("date", ""),
        "content_link": link("click", key) if "content_version_id" in values else "",
        "unsubscribe_link": link("unsubscribe", key),
    }
    html = templating.fill(_template_html(version), filled)
    if pixel:
        img = f'<img src="{link("open", key)}" width="1" height="1" alt="">'
        html = html.replace("</body>", img + "</body>") if "</body>" in html else html + img
    text = templating.to_text(templating.fill(_template_html(version), filled))
    return html, text, values


def preview(session: Session, user: User, account_id: int, version_id: int, raw: dict) -> dict:
    """What would be sent, and what would stop it, without sending."""
    account, version = _targets(session, user, account_id, version_id)
    html, text, _ = compose(session, user, account, version, raw, "preview", pixel=False)
    return {
        "subject": version.title,
        "html": html,
        "text": text,
        "refusals": gates(session, account, version),
    }


def _targets(session: Session, user: User, account_id: int, version_id: int):
    if user.role not in SENDERS:
        raise Forbidden("Your role does not send email to HCPs.")
    accounts.require_readable(session, user, account_id)
    account = session.get(Account, account_id)
    version = session.get(ContentVersion, version_id)
    if version is None or version.kind != "email" or not content.can_see(session, user, version):
        raise NotFound(f"Email template {version_id} is not available to you.")
    return account, version


def follow_up_call(session: Session, user: User, account_id: int, activity_id: int) -> Activity:
    """The call a follow-up email answers: held with this HCP, readable by the sender."""
    from parcours.activities import service as activities  # activities imports content

    act = activities.get_activity(session, user, activity_id)
    if act.channel not in activities.CALL_CHANNELS:
        raise Invalid(
            "Follow up a field visit, a phone call or a remote call.", field="after_call_id"
        )
    if act.account_id != account_id:
        raise Invalid("This call was not with this HCP.", field="after_call_id")
    if act.status == "planned":
        raise Invalid("Send a follow-up once the call has taken place.", field="after_call_id")
    return act


def invite(
    session: Session,
    user: User,
    account: Account,
    version: ContentVersion,
    *,
    meeting: dict[str, str],
    ics: bytes,
) -> EmailMessage:
    """Queue a meeting invitation from an approved invitation template, its calendar event
    attached; the same gates as any email (a refusal is a Conflict naming its rule)."""
    if version.kind != "email" or not is_invitation(version):
        raise Invalid("Choose an approved meeting invitation template.", field="template_id")
    refusals = gates(session, account, version)
    if refusals:
        first = refusals[0]
        raise Conflict(
            first.message, errors=[{"field": first.rule, "message": r.message} for r in refusals]
        )
    uses = templating.TOKEN.findall(_template_html(version))
    raw = {"phrase": (version.key_messages or [""])[0]} if "phrase" in uses else {}
    message = composed(session, user, account, version, raw, meeting=meeting, ics=ics.decode())
    return _queue(session, message)


def composed(
    session: Session,
    user: User,
    account: Account,
    version: ContentVersion,
    raw: dict,
    *,
    meeting: dict[str, str] | None = None,
    **extra,
) -> EmailMessage:
    """A message composed for this HCP, ready to queue (not yet in the session); extra:
    the columns of its kind (a campaign, a call it follows up, a calendar event)."""
    key = uuid.uuid4().hex
    html, text, values = compose(session, user, account, version, raw, key, meeting=meeting)
    return EmailMessage(
        key=key,
        account_id=account.id,
        version_id=version.id,
        sender_id=user.id,
        to_address=account.emails[0],
        subject=version.title,
        html=html,
        text=text,
        values=json.dumps(values, ensure_ascii=False),
        content_type=version.content_type,
        state="queued",
        queued_at=_now(),
        send_after=next_send_time(account),
        **extra,
    )


def _queue(session: Session, message: EmailMessage) -> EmailMessage:
    session.add(message)
    session.flush()
    jobs.enqueue(session, "email.send", {"message_id": message.id}, run_at=message.send_after)
    return message


def send(
    session: Session,
    user: User,
    account_id: int,
    version_id: int,
    raw: dict,
    *,
    after_call_id: int | None = None,
) -> EmailMessage:
    """Queue an approved email to an HCP; a refusal (Conflict) names the rule that stops it.

    after_call_id: the call report this email follows up (saved or submitted, same HCP)."""
    account, version = _targets(session, user, account_id, version_id)
    if after_call_id is not None:
        follow_up_call(session, user, account_id, after_call_id)
    refusals = gates(session, account, version)
    if refusals:
        first = refusals[0]
        raise Conflict(
            first.message, errors=[{"field": first.rule, "message": r.message} for r in refusals]
        )
    message = composed(session, user, account, version, raw, follows_activity_id=after_call_id)
    return _queue(session, message)


# ---------------------------------------------------------------- what follows a send


def record(
    session: Session,
    message: EmailMessage,
    kind: str,
    at: datetime | None = None,
    *,
    notes: str | None = None,
) -> Activity:
    """A timeline activity for a send, an open, a click, a bounce or an unsubscribe.

    It is written submitted (locked): whatever it says, notes included, is said here."""
    return record_many(session, [(message, at or _now(), notes)], kind)[0]


def record_many(
    session: Session, items: list[tuple[EmailMessage, datetime, str | None]], kind: str
) -> list[Activity]:
    """record for many messages, two flushes in all: (message, when, notes) each."""
    ids = {m.version_id for m, _, _ in items}
    products = dict(
        session.execute(
            select(ContentVersion.id, ContentVersion.product_ids).where(ContentVersion.id.in_(ids))
        ).all()
    )
    acts = [
        Activity(
            channel="email",
            kind=kind,
            status="submitted",
            owner_id=message.sender_id,
            account_id=message.account_id,
            start_at=at,
            subject=message.subject,
            notes=notes,
            product_ids=list(products.get(message.version_id) or []),
            key_messages=[],
            submitted_at=at,
        )
        for message, at, notes in items
    ]
    session.add_all(acts)
    session.flush()
    session.add_all(
        Attendee(
            activity_id=act.id, account_id=act.account_id, start_at=act.start_at, channel="email"
        )
        for act in acts
    )
    session.flush()
    return acts


def opened(session: Session, token: str) -> None:
    message = message_for_token(session, "open", token)
    if message.opened_at is None and message.state == "sent":
        message.opened_at = _now()
        record(session, message, "opened")


def clicked(session: Session, token: str) -> str:
    """Record the click; the address to send the HCP on to."""
    message = message_for_token(session, "click", token)
    if message.state != "sent":
        raise NotFound("This link is not valid.")
    if message.clicked_at is None:
        message.clicked_at = _now()
        record(session, message, "clicked")
    target = json.loads(message.values or "{}").get("content_version_id")
    return f"/shared/{sign('share', message.key)}" if target else "/"


def unsubscribe(session: Session, token: str) -> EmailMessage:
    """One click: an email opt-out recorded at once, for every product (RFC 8058)."""
    message = message_for_token(session, "unsubscribe", token)
    if message.unsubscribed_at is None:
        message.unsubscribed_at = _now()
        session.add(
            ConsentRecord(
                account_id=message.account_id,
                channel="email",
                status="opted_out",
                source="unsubscribe",
                captured_at=_now(),
                proof=f"one-click unsubscribe from message {message.key}",
            )
        )
        session.flush()
        record(session, message, "unsubscribed")
    return message
