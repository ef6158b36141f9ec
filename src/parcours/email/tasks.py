"""Background work of Approved Email: the worker sends each queued message exactly once.

Invariant 7 (exactly once, at most once when in doubt). A message moves queued → sending
in a committed transaction *before* the SMTP exchange, and sending → sent after it. A
worker that finds a message already "sending" knows a previous worker died somewhere
between those two commits: SMTP may or may not have accepted it, so the message becomes
"uncertain" and is never sent again. The gates (invariant 1: consent; invariant 2:
approved, valid template; recipient; frequency cap) run again right before sending, since
anything may have changed since the message was queued.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from email.utils import parseaddr

import aiosmtplib
import dkim

from parcours.accounts.models import Account
from parcours.content.models import ContentVersion
from parcours.core import audit, jobs, mailer
from parcours.core.db import new_session
from parcours.core.settings import Settings, get_settings
from parcours.email import service
from parcours.email.models import EmailMessage

log = logging.getLogger("parcours.email")

# Test hook, unset in production: when it equals a message's key (or "1"), the worker
# process dies right after SMTP accepted that message and before recording it, as a
# crash would. tests/email/test_sending.py uses it to prove that nothing is sent twice.
CRASH_AFTER_SMTP = "PARCOURS_TEST_CRASH_AFTER_SMTP"

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


class TemporaryFailure(Exception):
    """SMTP accepted nothing and may accept later: the job is retried."""


def _now() -> datetime:
    return datetime.now(UTC)


def sender_domain(settings: Settings) -> str:
    return parseaddr(settings.mail_from)[1].rpartition("@")[2] or "parcours.local"


def message_id(key: str, settings: Settings | None = None) -> str:
    """The Message-ID of a message: its idempotency key at the sender's domain."""
    return f"<{key}@{sender_domain(settings or get_settings())}>"


def dkim_sign(raw: bytes, settings: Settings) -> bytes:
    """raw with a DKIM-Signature header in front, when a key is configured; else raw."""
    if not (settings.dkim_key_path and settings.dkim_domain and settings.dkim_selector):
        return raw
    key = settings.dkim_key_path.read_bytes()
    header = dkim.sign(
        raw,
        settings.dkim_selector.encode(),
        settings.dkim_domain.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.encode() for h in SIGNED_HEADERS],
    )
    return header + raw


def mime_bytes(message: EmailMessage, settings: Settings) -> bytes:
    """The message exactly as it goes on the wire (signed when DKIM is configured)."""
    msg = mailer.build(
        message.to_address,
        message.subject,
        message.text,
        html=message.html,
        headers={
            "List-Unsubscribe": f"<{service.link('unsubscribe', message.key)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058
        },
    )
    msg.replace_header("Message-ID", message_id(message.key, settings))
    # signed bytes are sent as they are: a message re-serialised by the SMTP client
    # could fold or encode differently and break the signature
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n", utf8=False))
    return dkim_sign(raw, settings)


def _refusals(session, message: EmailMessage) -> list[service.Refusal]:
    account = session.get(Account, message.account_id)
    version = session.get(ContentVersion, message.version_id)
    if account is None or version is None:
        return [service.Refusal("recipient", "The HCP or the template no longer exists.")]
    return service.gates(session, account, version, at=_now(), exclude_id=message.id)


def _claim(message_id_: int, settings: Settings) -> tuple[EmailMessage, bytes] | None:
    """queued → sending, committed, with the bytes to send; None when there is nothing to do."""
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        message = session.get(EmailMessage, message_id_, with_for_update=True)
        if message is None or message.state in ("sent", "failed", "uncertain"):
            return None
        if message.state == "sending":
            message.state = "uncertain"
            message.error = (
                "A worker stopped after starting to send this message and before recording "
                "the result: the SMTP server may have accepted it. Not sent again."
            )
            log.warning("email %s (%s) is uncertain", message.id, message.key)
            return None
        refusals = _refusals(session, message)
        if refusals:
            message.state = "failed"
            message.error = "; ".join(f"refused: {r.rule}: {r.message}" for r in refusals)
            log.info("email %s refused before sending: %s", message.id, message.error)
            return None
        raw = mime_bytes(message, settings)
        message.state = "sending"
        message.attempts += 1
        message.error = None
        session.flush()
        session.expunge(message)
        return message, raw


def _settle(message_id_: int, state: str, error: str | None = None) -> None:
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        message = session.get(EmailMessage, message_id_, with_for_update=True)
        if message is None or message.state != "sending":
            return
        message.state, message.error = state, error
        if state == "sent":
            message.sent_at = _now()
            message.activity_id = service.record(session, message, "sent", message.sent_at).id


def _smtp_send(raw: bytes, to: str, settings: Settings) -> None:
    mailer.send_raw(raw, parseaddr(settings.mail_from)[1], [to])


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


@jobs.handler("email.send")
def send_message(payload: dict) -> None:
    """Send one queued message through SMTP, exactly once; at most once when in doubt."""
    settings = get_settings()
    claimed = _claim(int(payload["message_id"]), settings)
    if claimed is None:
        return
    message, raw = claimed
    try:
        _smtp_send(raw, message.to_address, settings)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        reply = "; ".join(_reply(r) for r in exc.recipients)
        if codes and all(code >= 500 for code in codes):
            _settle(message.id, "failed", f"refused by the SMTP server: {reply}")
            return
        _retry_later(message, reply, exc)
    except aiosmtplib.SMTPResponseException as exc:
        # the server answered no: it did not take the message
        if exc.code >= 500:
            _settle(message.id, "failed", f"refused by the SMTP server: {_reply(exc)}")
            return
        _retry_later(message, _reply(exc), exc)
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPNotSupported) as exc:
        _retry_later(message, str(exc), exc)  # no connection, or before MAIL FROM
    except Exception as exc:
        # a timeout or a dropped connection mid-exchange: the server may have accepted it
        _settle(message.id, "uncertain", f"SMTP exchange interrupted, may have been sent: {exc}")
        raise
    else:
        if os.environ.get(CRASH_AFTER_SMTP) in (message.key, "1"):
            os._exit(137)  # test hook, see CRASH_AFTER_SMTP
        _settle(message.id, "sent")
        log.info("email %s sent as %s", message.id, message_id(message.key, settings))


def _retry_later(message: EmailMessage, reason: str, exc: Exception) -> None:
    """Nothing was accepted: back to queued, and the job is retried (failed after the last)."""
    if message.attempts >= jobs.MAX_ATTEMPTS:
        _settle(message.id, "failed", f"SMTP unavailable after {message.attempts} tries: {reason}")
    else:
        _settle(message.id, "queued", f"SMTP unavailable, will retry: {reason}")
    raise TemporaryFailure(reason) from exc


@jobs.handler("email.campaign")
def run_campaign(payload: dict) -> None:
    """A marketing mass send: every HCP of a target list through the gates, in batches."""
    from parcours.email import campaigns  # campaigns imports the service, as this module does

    campaigns.run(int(payload["campaign_id"]))
