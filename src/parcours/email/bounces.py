"""Bounces: delivery status notifications (RFC 3464) read back onto the HCP's timeline.

A DSN is a ``multipart/report; report-type=delivery-status`` message: its
``message/delivery-status`` part holds one block of fields per recipient, and its
``message/rfc822`` or ``text/rfc822-headers`` part the original message's headers, whose
Message-ID is ``<key@domain>`` (tasks.message_id). A hard bounce (Action: failed, Status
5.x.x) becomes a "bounced" activity on the timeline, once per message; the activity's notes
name the address (first line ``Bounced: <address>``), which the recipient gate reads so
that this address is not written to again. A delay (4.x.x) is only logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.activities.models import Activity
from parcours.core import audit
from parcours.core.db import new_session
from parcours.core.errors import Invalid
from parcours.email import service
from parcours.email.models import EmailMessage

log = logging.getLogger("parcours.email")

MAX_BYTES = 1024 * 1024
NOT_A_DSN = "This is not a delivery status notification (multipart/report, delivery-status)."


@dataclass(frozen=True)
class Bounce:
    message_key: str | None
    recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # e.g. 5.1.1
    diagnostic: str

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")


def _typed_value(value: str | None) -> str:
    """'rfc822; anne@x' → 'anne@x'; 'smtp; 550 …' → '550 …'."""
    text = " ".join(str(value or "").split())
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else text


def _key(message_id: str | None) -> str | None:
    text = str(message_id or "").strip()
    if not (text.startswith("<") and text.endswith(">")):
        return None
    key, at, _domain = text[1:-1].partition("@")
    return key if at and key and len(key) <= 64 else None


def _original_headers(report: Message) -> Message | None:
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return inner[0]
        elif ctype == "text/rfc822-headers":
            payload = part.get_payload(decode=True) or b""
            if isinstance(payload, bytes):
                return BytesHeaderParser().parsebytes(payload)
            return HeaderParser().parsestr(str(payload))
    return None


def parse_dsn(raw: bytes) -> list[Bounce]:
    """One Bounce per recipient block of a DSN; Invalid (field "message") when it is none."""
    if not raw or len(raw) > MAX_BYTES:
        raise Invalid(NOT_A_DSN, field="message")
    try:
        report = message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # the parser is lenient; anything it still refuses is not a DSN
        raise Invalid(NOT_A_DSN, field="message") from exc
    if (
        report.get_content_type() != "multipart/report"
        or str(report.get_param("report-type") or "").lower() != "delivery-status"
    ):
        raise Invalid(NOT_A_DSN, field="message")
    status_part = next(
        (p for p in report.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    blocks = status_part.get_payload() if status_part is not None else None
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise Invalid("The report has no per-recipient delivery status.", field="message")
    original = _original_headers(report)
    key = _key(original.get("Message-ID") if original is not None else None)
    if key is None:
        raise Invalid("The report does not name the original Message-ID.", field="message")
    out = []
    for block in blocks[1:]:  # the first block is per-message
        recipient = _typed_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
        action = str(block.get("Action") or "").strip().lower()
        status = str(block.get("Status") or "").strip().split(" ")[0]
        if not recipient or not action or not status[:1].isdigit():
            raise Invalid(
                "A recipient block lacks its recipient, action or status.", field="message"
            )
        diagnostic = _typed_value(block.get("Diagnostic-Code")) or status
        out.append(Bounce(key, recipient.lower(), action, status, diagnostic[:500]))
    return out


# ---------------------------------------------------------------- applying


def notes_for(bounce: Bounce, message: EmailMessage) -> str:
    return (
        f"Bounced: {message.to_address.lower()}\n"
        f"Status: {bounce.status}\n"
        f"Message: {message.key}\n"
        f"Diagnostic: {bounce.diagnostic}"
    )


def hard_bounce(session: Session, account_id: int, address: str) -> str | None:
    """The diagnostic of the latest hard bounce of this HCP's address, or None."""
    return hard_bounces(session, {account_id: address}).get(account_id)


def hard_bounces(session: Session, addresses: dict[int, str]) -> dict[int, str]:
    """{account id: diagnostic of the latest hard bounce of its address} for those bounced."""
    out: dict[int, str] = {}
    ids = sorted(addresses)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Activity.account_id, Activity.notes)
            .where(
                Activity.account_id.in_(ids[start : start + 500]),
                Activity.channel == "email",
                Activity.kind == "bounced",
            )
            .order_by(Activity.start_at.desc(), Activity.id.desc())
        )
        for account_id, notes in rows:
            prefix = f"Bounced: {addresses[account_id].lower()}\n"
            if account_id not in out and (notes or "").startswith(prefix):
                out[account_id] = _diagnostic(notes)
    return out


def _diagnostic(notes: str) -> str:
    for line in notes.splitlines():
        if line.startswith("Diagnostic: "):
            return line.removeprefix("Diagnostic: ")
    return "undeliverable"


def _recorded(session: Session, message: EmailMessage) -> bool:
    return (
        session.scalar(
            select(Activity.id)
            .where(
                Activity.account_id == message.account_id,
                Activity.kind == "bounced",
                Activity.notes.contains(f"\nMessage: {message.key}\n", autoescape=True),
            )
            .limit(1)
        )
        is not None
    )


def apply(session: Session, bounces: list[Bounce]) -> dict[str, int]:
    """Record hard bounces on the timeline (once per message); count what was found.

    applied: hard bounces newly recorded or already recorded for a known message;
    transient: anything else, delays and 4.x.x (logged only); unknown: no message of ours
    matches (or it went to another address).
    """
    counts = {"applied": 0, "transient": 0, "unknown": 0}
    for bounce in bounces:
        message = session.scalar(select(EmailMessage).where(EmailMessage.key == bounce.message_key))
        if message is None or bounce.recipient != message.to_address.lower():
            counts["unknown"] += 1
            continue
        if not bounce.hard:
            log.info(
                "email %s to %s: %s %s (%s)",
                message.key,
                bounce.recipient,
                bounce.action,
                bounce.status,
                bounce.diagnostic,
            )
            counts["transient"] += 1
            continue
        counts["applied"] += 1
        if _recorded(session, message):
            continue
        service.record(session, message, "bounced", notes=notes_for(bounce, message))
    return counts


def poll_maildir(folder: Path) -> dict[str, int]:
    """Read the bounce mailbox, a Maildir that the mail server delivers reports to.

    Each new report is applied in its own transaction, then filed under cur/ as seen (S);
    what is not a delivery report is filed as flagged (F) for a person to look at. A report
    whose transaction failed stays in new/ and is read again next time; one read twice
    records nothing twice (apply is idempotent).
    """
    counts = {"applied": 0, "transient": 0, "unknown": 0, "not_reports": 0}
    new, cur = folder / "new", folder / "cur"
    if not new.is_dir():
        raise Invalid(f"{folder} is not a Maildir (no new/ folder).", field="bounce_maildir")
    cur.mkdir(exist_ok=True)
    for entry in sorted(os.scandir(new), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        try:
            if entry.stat().st_size > MAX_BYTES:
                raise Invalid("The report is over 1 MB.", field="message")
            found = parse_dsn(Path(entry.path).read_bytes())
        except FileNotFoundError:
            continue  # another worker read it first
        except OSError:
            log.exception("bounce mailbox: cannot read %s", entry.name)
            continue  # unreadable: left for a person, the others are read
        except Invalid:
            counts["not_reports"] += 1
            flag = "F"
            log.warning("bounce mailbox: %s is not a delivery report, flagged", entry.name)
        else:
            with new_session() as session, session.begin():
                audit.bind_actor(session, None, "bounce mailbox")
                for name, n in apply(session, found).items():
                    counts[name] += n
            flag = "S"
        name = entry.name.split(":2,", 1)[0]
        with contextlib.suppress(FileNotFoundError):  # another worker filed it first
            os.replace(entry.path, cur / f"{name}:2,{flag}")
    return counts
