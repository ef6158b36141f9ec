"""Background work of Approved Email: the worker sends each queued message exactly once.

Invariant 7 (exactly once, at most once when in doubt). The worker takes up to BATCH due
messages at once, runs the gates on all of them in a few queries (invariant 1: consent;
invariant 2: approved, valid template; recipient; frequency cap: anything may have changed
since a message was queued), then hands them to the SMTP server one after the other over
one connection. Right before each SMTP exchange a small committed write marks that message
"sending" (only if it is still "queued": two workers can never both take it) and the one
accepted just before it "sent". A worker that finds a message already "sending" knows a
previous worker died between those two writes: SMTP may or may not have accepted it, so
the message becomes "uncertain" and is never sent again. Everything not yet marked stays
"queued" and is sent by whoever takes the batch up after a crash. Timeline activities of
sent messages are written every SETTLE messages in one transaction, and by whoever takes
a batch up for messages sent before a crash.

The marks are plain updates outside the audit trail (like the leases of jobs); the audit
records each message's outcome: the activity of a sent message, a failure, an uncertainty.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import aiosmtplib
from sqlalchemy import select, update

from parcours.accounts.models import Account
from parcours.content.models import ContentVersion
from parcours.core import audit, db, jobs, mailer
from parcours.core.db import new_session
from parcours.core.models import Job
from parcours.core.settings import Settings, get_settings
from parcours.email import service, signing
from parcours.email.models import EmailMessage

log = logging.getLogger("parcours.email")

# Test hook, unset in production: when it equals a message's key (or "1"), the worker
# process dies right after SMTP accepted that message and before recording it, as a
# crash would. tests/email/test_sending.py uses it to prove that nothing is sent twice.
CRASH_AFTER_SMTP = "PARCOURS_TEST_CRASH_AFTER_SMTP"

BATCH = 100  # messages a worker takes at once
SETTLE = 50  # sent messages whose timeline activities are written together

SIGNED_HEADERS = (
    "From",
    "From",  # over-signed: a second From or Subject added on the way breaks the signature
    "To",
    "Subject",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
UNCERTAIN = (
    "A worker stopped after starting to send this message and before recording the result: "
    "the SMTP server may have accepted it. Not sent again."
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
    return signing.sign(
        raw,
        selector=settings.dkim_selector,
        domain=settings.dkim_domain,
        key_path=settings.dkim_key_path,
        headers=SIGNED_HEADERS,
    )


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
        calendar=message.ics.encode() if message.ics else None,
    )
    msg.replace_header("Message-ID", message_id(message.key, settings))
    # signed bytes are sent as they are: a message re-serialised by the SMTP client
    # could fold or encode differently and break the signature
    return dkim_sign(mailer.as_bytes(msg), settings)


# ---------------------------------------------------------------- before sending


def _refusals(session, messages: list[EmailMessage], at: datetime) -> dict[int, list]:
    """The gates for every message, grouped by template: {message id: refusals}."""
    accounts = {
        a.id: a
        for a in session.scalars(
            select(Account).where(Account.id.in_({m.account_id for m in messages}))
        )
    }
    out: dict[int, list] = {}
    by_version: dict[int, list[EmailMessage]] = defaultdict(list)
    for message in messages:
        if message.account_id in accounts:
            by_version[message.version_id].append(message)
        else:
            out[message.id] = [service.Refusal("recipient", "The HCP no longer exists.")]
    for version_id, group in by_version.items():
        version = session.get(ContentVersion, version_id)
        if version is None:
            for message in group:
                out[message.id] = [service.Refusal("template", "The template no longer exists.")]
            continue
        pairs = [(accounts[m.account_id], m.id) for m in group]
        found = service.gates_many(session, version, pairs, at=at)
        out.update((m.id, refusals) for m, refusals in zip(group, found, strict=True))
    return out


def _claim(ids: list[int]) -> list[EmailMessage]:
    """The messages of a batch that may leave now, detached; settles the others."""
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        messages = list(
            session.scalars(
                select(EmailMessage).where(EmailMessage.id.in_(ids)).order_by(EmailMessage.id)
            )
        )
        _record_sent(session, [m for m in messages if m.state == "sent" and not m.activity_id])
        for message in messages:
            if message.state == "sending":
                message.state, message.error = "uncertain", UNCERTAIN
                log.warning("email %s (%s) is uncertain", message.id, message.key)
        due = [m for m in messages if m.state == "queued"]
        refusals = _refusals(session, due, _now()) if due else {}
        ready = []
        for message in due:
            if refusals[message.id]:
                message.state = "failed"
                message.error = "; ".join(
                    f"refused: {r.rule}: {r.message}" for r in refusals[message.id]
                )
                log.info("email %s refused before sending: %s", message.id, message.error)
            else:
                ready.append(message)
        session.flush()
        for message in ready:
            session.expunge(message)
        return ready


def _record_sent(session, messages: list[EmailMessage]) -> None:
    if not messages:
        return
    acts = service.record_many(session, [(m, m.sent_at or _now(), None) for m in messages], "sent")
    for message, act in zip(messages, acts, strict=True):
        message.activity_id = act.id


# ---------------------------------------------------------------- the SMTP exchange


def _mark(sending: int | None, sent: tuple[int, datetime] | None) -> bool:
    """One commit: the previous message sent, the next one sending (if it is still queued)."""
    with db.write_engine().begin() as conn:
        if sent is not None:
            conn.execute(
                update(EmailMessage)
                .where(EmailMessage.id == sent[0], EmailMessage.state == "sending")
                .values(state="sent", sent_at=sent[1], error=None)
            )
        if sending is None:
            return False
        taken = conn.execute(
            update(EmailMessage)
            .where(EmailMessage.id == sending, EmailMessage.state == "queued")
            .values(state="sending", attempts=EmailMessage.attempts + 1, error=None)
        )
        return taken.rowcount == 1


def _settle(ids: list[int]) -> None:
    """Timeline activities of messages marked sent (one transaction for many)."""
    if not ids:
        return
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        rows = session.scalars(
            select(EmailMessage)
            .where(EmailMessage.id.in_(ids), EmailMessage.activity_id.is_(None))
            .where(EmailMessage.state == "sent")
            .with_for_update()
        )
        _record_sent(session, list(rows))


def _settle_one(message_id_: int, state: str, error: str) -> None:
    """A message that did not leave: failed, queued again or uncertain, audited."""
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        message = session.get(EmailMessage, message_id_, with_for_update=True)
        if message is not None and message.state in ("queued", "sending"):
            message.state, message.error = state, error


def _safely(fn, *args) -> bool:
    """Run a database step; a failure is logged, not raised (the worker carries on: what it
    did not record is repaired later, or stays 'sending' and becomes 'uncertain')."""
    try:
        fn(*args)
    except Exception:
        log.exception("email: %s%s failed", fn.__name__, args[:1])
        return False
    return True


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


def _not_now(message: EmailMessage, job: Job, reason: str, exc: Exception) -> TemporaryFailure:
    """Nothing was accepted: queued again (failed after the job's last try)."""
    if job.attempts >= jobs.MAX_ATTEMPTS:
        _safely(
            _settle_one,
            message.id,
            "failed",
            f"SMTP unavailable after {job.attempts} tries: {reason}",
        )
    else:
        _safely(_settle_one, message.id, "queued", f"SMTP unavailable, will retry: {reason}")
    failure = TemporaryFailure(reason)
    failure.__cause__ = exc
    return failure


async def _exchange(
    smtp: aiosmtplib.SMTP, sender: str, message: EmailMessage, raw: bytes
) -> tuple[str, str, Exception | None]:
    """One SMTP transaction: ("sent" | "failed" | "retry" | "uncertain", reason, error).

    Until DATA is sent the server cannot have taken the message: whatever goes wrong there
    is a retry (or a failure for good on a 5xx). Once DATA is on its way, only the server's
    answer tells; without one the message is uncertain and never sent again."""
    try:
        await smtp.mail(sender)
        await smtp.rcpt(message.to_address)
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(smtp, exc)
        return ("failed" if exc.code >= 500 else "retry"), _reply(exc), exc
    except (ValueError, UnicodeError) as exc:  # an address the client cannot write
        await _reset(smtp, None)
        return "failed", f"this address cannot be used: {exc}", exc
    except Exception as exc:  # the connection went before DATA: nothing was taken
        smtp.close()
        return "retry", str(exc) or type(exc).__name__, exc
    try:
        await smtp.data(raw)
    except aiosmtplib.SMTPResponseException as exc:  # the server answered no
        await _reset(smtp, exc)
        return ("failed" if exc.code >= 500 else "retry"), _reply(exc), exc
    except Exception as exc:
        smtp.close()
        return "uncertain", f"SMTP exchange interrupted, may have been sent: {exc}", exc
    return "sent", "", None


async def _reset(smtp: aiosmtplib.SMTP, exc: aiosmtplib.SMTPResponseException | None) -> None:
    if exc is not None and exc.code == 421:  # the server is closing the channel (RFC 5321)
        smtp.close()
        return
    if smtp.is_connected:
        try:
            await smtp.rset()
        except Exception:
            smtp.close()


async def _deliver(
    ready: list[EmailMessage], by_message: dict[int, Job], settings: Settings, deadline: float
) -> dict[int, Exception]:
    """Send the ready messages over one SMTP connection (another after a hang-up), each
    message's fate its own; {message id: why its job did not finish}."""
    out: dict[int, Exception] = {}
    sender = parseaddr(settings.mail_from)[1]
    smtp = aiosmtplib.SMTP(**mailer.server_options(settings))
    accepted: tuple[int, datetime] | None = None  # marked sent by the next mark
    unsettled: list[int] = []
    try:
        for i, message in enumerate(ready):
            if time.monotonic() > deadline:
                # past half the lease: hand the rest back rather than outlive the lease
                for later in ready[i:]:
                    out[later.id] = jobs.Release("out of time for this batch")
                break
            try:
                raw = mime_bytes(message, settings)
            except Exception as exc:  # e.g. a header that cannot be written: never will be
                _safely(_settle_one, message.id, "failed", f"cannot be written as email: {exc}")
                continue
            if not smtp.is_connected:
                try:
                    await smtp.connect()
                except (aiosmtplib.SMTPException, OSError) as exc:
                    for later in ready[i:]:
                        out[later.id] = _not_now(later, by_message[later.id], str(exc), exc)
                    break
            try:
                taken = _mark(message.id, accepted)
            except Exception as exc:  # the database is busy: not sent, tried again later
                out[message.id] = TemporaryFailure(f"could not mark the message: {exc}")
                continue  # `accepted` stays: the next mark records it
            accepted = None
            if not taken:
                continue  # another worker took it
            outcome, reason, exc = await _exchange(smtp, sender, message, raw)
            if outcome == "sent":
                if os.environ.get(CRASH_AFTER_SMTP) in (message.key, "1"):
                    os._exit(137)  # test hook, see CRASH_AFTER_SMTP
                accepted = (message.id, _now())
                unsettled.append(message.id)
                log.info("email %s sent as %s", message.id, message_id(message.key, settings))
                if len(unsettled) >= SETTLE and _safely(_mark, None, accepted):
                    accepted = None
                    _safely(_settle, unsettled)
                    unsettled = []
            elif outcome == "failed":
                _safely(_settle_one, message.id, "failed", f"refused by the SMTP server: {reason}")
            elif outcome == "retry":
                out[message.id] = _not_now(message, by_message[message.id], reason, exc)
            else:
                _safely(_settle_one, message.id, "uncertain", reason)
    finally:
        if accepted is not None:
            _safely(_mark, None, accepted)
        _safely(_settle, unsettled)
        if smtp.is_connected:
            with contextlib.suppress(Exception):
                await smtp.quit()
    return out


def _give_up(jobs_: list[Job], reason: str) -> None:
    """Messages whose jobs have no try left: failed rather than queued forever."""
    ids = [int(j.payload["message_id"]) for j in jobs_ if j.attempts >= jobs.MAX_ATTEMPTS]
    if ids:
        _safely(_fail_queued, ids, f"not sent after the last try: {reason}")


def _fail_queued(ids: list[int], reason: str) -> None:
    with new_session() as session, session.begin():
        audit.bind_actor(session, None, "worker")
        for message in session.scalars(
            select(EmailMessage)
            .where(EmailMessage.id.in_(ids), EmailMessage.state == "queued")
            .with_for_update()
        ):
            message.state, message.error = "failed", reason[:2000]


def _lease() -> timedelta:
    return timedelta(seconds=get_settings().email_send_lease_s)


@jobs.handler("email.send", batch=BATCH, lease=_lease)
def send_messages(batch: list[Job]) -> list[Exception | None]:
    """Send queued messages through SMTP, exactly once; at most once when in doubt."""
    settings = get_settings()
    by_message = {int(job.payload["message_id"]): job for job in batch}
    deadline = time.monotonic() + settings.email_send_lease_s / 2
    try:
        ready = _claim(list(by_message))
        failures = (
            mailer.run(lambda: _deliver(ready, by_message, settings, deadline)) if ready else {}
        )
    except Exception as exc:
        _give_up(batch, str(exc))
        raise
    for job in batch:
        failure = failures.get(int(job.payload["message_id"]))
        if failure is not None and not isinstance(failure, jobs.Release):
            _give_up([job], str(failure))
    return [failures.get(int(job.payload["message_id"])) for job in batch]


@jobs.periodic(300)
def repair_timelines() -> None:
    """Sent messages whose timeline activity a worker could not write (a crash, a busy
    database) get it now."""
    since = _now() - timedelta(minutes=2)
    with new_session() as session:
        ids = list(
            session.scalars(
                select(EmailMessage.id)
                .where(
                    EmailMessage.state == "sent",
                    EmailMessage.activity_id.is_(None),
                    EmailMessage.sent_at < since,
                )
                .limit(5000)
            )
        )
    for start in range(0, len(ids), 500):
        _settle(ids[start : start + 500])


@jobs.periodic(60)
def read_bounce_mailbox() -> None:
    """Bounce reports delivered to the configured Maildir, read onto the timelines."""
    folder = get_settings().bounce_maildir
    if folder is None:
        return
    from parcours.email import bounces  # bounces imports the service, as this module does

    counts = bounces.poll_maildir(folder)
    if any(counts.values()):
        log.info("bounce mailbox %s: %s", folder, counts)


@jobs.handler("email.campaign")
def run_campaign(payload: dict) -> None:
    """A marketing mass send: every HCP of a target list through the gates, in batches."""
    from parcours.email import campaigns  # campaigns imports the service, as this module does

    campaigns.run(int(payload["campaign_id"]))
