"""The double opt-in email, sent by the worker to a real SMTP server and parsed back."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from parcours.consent import service
from parcours.consent.models import ConsentRecord
from parcours.core import db, jobs, mailer
from parcours.core.models import Job
from parcours.core.settings import get_settings

from factories import create_hcp, create_territory_tree, create_user, free_port

BODY = "I agree to receive scientific information from the lab by email."


def _capture(language: str | None = "en", email: str = "Claire.Durand@Hopital-Lille.fr") -> int:
    """A pending double opt-in, committed, with its confirmation job queued."""
    with db.new_session() as session, session.begin():
        tree = create_territory_tree(session)
        rep = create_user(session, "rep", territories=[tree["north1"]])
        marketing = create_user(session, "marketing")
        hcp = create_hcp(session, tree["north1"], last_name="Durand", preferred_language=language)
        text = service.add_text(session, marketing, "email-optin", "en", BODY)
        record = service.capture(
            session,
            rep,
            hcp.id,
            channel="email",
            status="opted_in",
            source="web_form",
            text_id=text.id,
            email=email,
            double_opt_in=True,
        )
        return record.id


def _job() -> Job:
    with db.new_session(write=False) as session:
        return session.scalars(select(Job).where(Job.kind == "consent.confirmation")).one()


def test_the_confirmation_email_reaches_the_hcp_and_its_link_confirms(file_db, smtp_server):
    record_id = _capture("en")
    assert smtp_server.envelopes == []  # nothing is sent before the worker runs
    assert jobs.run_pending() == 1
    assert _job().state == "done"

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["Claire.Durand@hopital-lille.fr"]
    [msg] = smtp_server.messages
    assert msg["To"] == "Claire.Durand@hopital-lille.fr"
    assert msg["Message-ID"] and msg["Date"]
    assert msg["Subject"] == "Please confirm your consent"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert BODY in text and BODY in html
    base = get_settings().public_url
    tokens = re.findall(re.escape(base) + r"/consent/confirm/([0-9]+\.[0-9a-f]+)", text)
    assert len(tokens) == 1 and tokens[0] in html

    with db.new_session() as session, session.begin():
        account_id = session.get(ConsentRecord, record_id).account_id
        assert not service.consent_for(session, account_id, "email").allowed
        confirmed = service.confirm(session, tokens[0])
        assert confirmed.confirms_id == record_id
    with db.new_session(write=False) as session:
        decision = service.consent_for(session, account_id, "email")
        assert decision.allowed and decision.record.source == "email_confirmation"


def test_the_email_speaks_french_unless_the_hcp_prefers_english(file_db, smtp_server):
    _capture(None)
    jobs.run_pending()
    [msg] = smtp_server.messages
    assert msg["Subject"] == "Confirmez votre consentement"
    assert "Bonjour Dr Durand," in msg.get_body(("plain",)).get_content()


def test_an_smtp_server_that_is_down_makes_the_job_retry(file_db, smtp_server):
    _capture("en")
    up = os.environ["PARCOURS_SMTP_PORT"]
    os.environ["PARCOURS_SMTP_PORT"] = str(free_port())  # nobody listens there
    get_settings.cache_clear()
    assert jobs.run_pending() == 1
    waiting = _job()
    assert (waiting.state, waiting.attempts) == ("queued", 1)
    assert waiting.error and smtp_server.envelopes == []

    os.environ["PARCOURS_SMTP_PORT"] = up  # the server is back
    get_settings.cache_clear()
    with db.new_session() as session, session.begin():
        session.execute(update(Job).values(run_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert jobs.run_pending() == 1
    assert _job().state == "done" and len(smtp_server.envelopes) == 1


def test_no_email_once_the_request_is_no_longer_pending(file_db, smtp_server):
    record_id = _capture("en")
    with db.new_session() as session, session.begin():
        service.confirm(session, service.confirm_token(record_id))  # confirmed another way
    assert jobs.run_pending() == 1
    assert _job().state == "done" and smtp_server.envelopes == []


def test_build_makes_a_plain_text_message_with_its_own_id(file_db):
    msg = mailer.build("a@example.test", "Hi", "Plain only", headers={"X-Test": "1"})
    assert msg.get_content_type() == "text/plain"
    assert msg["Message-ID"].endswith("@parcours.local>") and msg["X-Test"] == "1"
