"""Bounces: a DSN read back onto the HCP's timeline, once; a hard bounce stops the next send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from sqlalchemy import func, select

from parcours.activities.models import Activity, Attendee
from parcours.consent import service as consent
from parcours.core.errors import Conflict, Invalid
from parcours.email import bounces, service, tasks

from content_factories import acting, approved_version, build_mlr
from email_factories import PHRASES, approved_email_template
from factories import api_headers

ADDRESS = "anne.martin@chu-lille.fr"


@pytest.fixture
def world(session):
    mlr = build_mlr(session)
    mlr.hcp.emails = [ADDRESS]
    text = consent.add_text(
        session, mlr.marketing, "email-optin", "en", "I agree to receive emails from the lab."
    )
    with acting(session, mlr.rep):
        consent.capture(
            session,
            mlr.rep,
            mlr.hcp.id,
            channel="email",
            status="opted_in",
            source="web_form",
            text_id=text.id,
        )
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)
    return mlr, template, deck


def values(deck):
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    return {"phrase": PHRASES[0], "date": day, "content_version_id": deck.id}


def sent(session, world):
    mlr, template, deck = world
    with acting(session, mlr.rep):
        message = service.send(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
    message.state = "sent"  # as the worker leaves it
    message.sent_at = datetime.now(UTC)
    session.flush()
    return message


def dsn(
    key: str,
    recipient: str = ADDRESS,
    action: str = "failed",
    status: str = "5.1.1",
    headers_only: bool = False,
) -> bytes:
    """A real RFC 3464 report, as an MTA would send it back."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.chu-lille.fr>"
    report["To"] = "no-reply@lab.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("Your message could not be delivered.\n"))
    per_message = MimeMessage()
    per_message["Reporting-MTA"] = "dns; mx.chu-lille.fr"
    per_recipient = MimeMessage()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; 550 {status} No such user here"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    original = MimeMessage()
    original["From"] = "Laboratoire Parcours <no-reply@lab.example>"
    original["To"] = recipient
    original["Subject"] = "Update"
    original["Message-ID"] = tasks.message_id(key)
    if headers_only:
        part = MIMEText(original.as_string(), "rfc822-headers")
    else:
        original.set_content("Dear Dr Martin,\n")
        part = MIMEMessage(original)
    report.attach(part)
    return report.as_bytes()


def bounced(session, account_id) -> int:
    return session.scalar(
        select(func.count()).where(Activity.account_id == account_id, Activity.kind == "bounced")
    )


def test_parse_reads_each_recipient_and_the_original_message_id(session, world):
    message = sent(session, world)
    for headers_only in (False, True):
        (b,) = bounces.parse_dsn(dsn(message.key, headers_only=headers_only))
        assert b.message_key == message.key and b.recipient == ADDRESS
        assert (b.action, b.status, b.hard) == ("failed", "5.1.1", True)
        assert b.diagnostic == "550 5.1.1 No such user here"


def test_a_hard_bounce_is_on_the_timeline_once_and_stops_the_next_send(session, world):
    mlr, template, deck = world
    message = sent(session, world)
    raw = dsn(message.key)
    assert bounces.apply(session, bounces.parse_dsn(raw))["applied"] == 1
    assert bounced(session, mlr.hcp.id) == 1
    act = session.scalar(select(Activity).where(Activity.kind == "bounced"))
    assert act.channel == "email" and ADDRESS in act.notes and "5.1.1" in act.notes
    assert session.scalar(
        select(Attendee).where(Attendee.activity_id == act.id, Attendee.account_id == mlr.hcp.id)
    )
    assert message.state == "sent"

    bounces.apply(session, bounces.parse_dsn(raw))  # the same report again
    assert bounced(session, mlr.hcp.id) == 1

    with acting(session, mlr.rep), pytest.raises(Conflict) as exc:
        service.send(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
    assert exc.value.errors[0]["field"] == "recipient"
    assert "bounced" in exc.value.detail and "5.1.1" in exc.value.detail

    mlr.hcp.emails = ["a.martin@chu-lille.fr"]  # a new address may be written to
    session.flush()
    assert not [r for r in service.gates(session, mlr.hcp, template) if r.rule == "recipient"]


def test_a_delay_records_nothing(session, world):
    mlr, template, deck = world
    message = sent(session, world)
    counts = bounces.apply(
        session, bounces.parse_dsn(dsn(message.key, action="delayed", status="4.4.7"))
    )
    assert counts == {"applied": 0, "transient": 1, "unknown": 0}
    assert bounced(session, mlr.hcp.id) == 0
    assert not service.gates(session, mlr.hcp, template)


def test_a_report_for_someone_else_is_unknown(session, world):
    mlr, _, _ = world
    message = sent(session, world)
    counts = bounces.apply(session, bounces.parse_dsn(dsn("0" * 32)))
    assert counts["unknown"] == 1
    counts = bounces.apply(session, bounces.parse_dsn(dsn(message.key, recipient="x@y.fr")))
    assert counts["unknown"] == 1
    assert bounced(session, mlr.hcp.id) == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage \xff\x00", b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n"],
)
def test_what_is_not_a_dsn_is_refused(raw):
    with pytest.raises(Invalid) as exc:
        bounces.parse_dsn(raw)
    assert exc.value.errors[0]["field"] == "message"


def test_the_api_applies_a_dsn_for_admins_only(session, client, world):
    mlr, _, _ = world
    message = sent(session, world)
    url = "/api/v1/email/bounces"
    body = dsn(message.key)
    ctype = {"Content-Type": "message/rfc822"}

    resp = client.post(url, content=body, headers={**ctype, **api_headers(client, mlr.rep)})
    assert resp.status_code == 403
    assert bounced(session, mlr.hcp.id) == 0

    admin = {**ctype, **api_headers(client, mlr.admin)}
    resp = client.post(url, content=body, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"applied": 1, "transient": 0, "unknown": 0}
    assert bounced(session, mlr.hcp.id) == 1

    resp = client.post(
        url, content=b"not a report", headers={**admin, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0]["field"] == "message"
