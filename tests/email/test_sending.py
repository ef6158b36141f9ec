"""Approved Email sending by the worker through a real SMTP server: signed, with one-click
unsubscribe, gated again right before sending, and exactly once across a killed worker."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dkim
from sqlalchemy import select, update

from parcours.activities.models import Activity
from parcours.consent import service as consent
from parcours.content import review as content_review
from parcours.content import service as content
from parcours.content.models import ContentVersion
from parcours.core import db, jobs
from parcours.core.models import Job, User
from parcours.core.settings import get_settings
from parcours.email import service
from parcours.email.tasks import CRASH_AFTER_SMTP

from content_factories import acting
from email_factories import PHRASES
from factories import free_port

ROOT = Path(__file__).resolve().parents[2]
MAIL_FROM = "Laboratoire Parcours <no-reply@lab.example>"  # as conftest configures it


def _job_for(message_id: int) -> Job:
    with db.new_session(write=False) as session:
        jobs_ = session.scalars(select(Job).where(Job.kind == "email.send")).all()
    [job] = [j for j in jobs_ if j.payload["message_id"] == message_id]
    return job


def _run_due() -> int:
    """Make every queued job due now (retries wait a few seconds) and run them."""
    with db.new_session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.state == "queued")
            .values(run_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    return jobs.run_pending()


def test_a_queued_message_arrives_signed_with_one_click_unsubscribe(scene, smtp_server, dkim_key):
    hcp_id = scene.hcp()
    queued = scene.queue(hcp_id)
    assert queued.state == "queued" and smtp_server.envelopes == []
    assert jobs.run_pending() == 1

    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == [queued.to_address]
    assert envelope.mail_from == "no-reply@lab.example"
    [msg] = smtp_server.messages
    assert msg["From"] == MAIL_FROM
    assert msg["To"] == queued.to_address
    assert msg["Subject"] == queued.subject
    assert msg["Message-ID"] == f"<{queued.key}@lab.example>"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert PHRASES[0] in text and PHRASES[0] in html
    unsubscribe = service.link("unsubscribe", queued.key)
    assert unsubscribe.startswith("https://parcours.lab.example/u/")
    assert msg["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in html  # the visible link is the same signed link

    raw = envelope.original_content
    assert raw.startswith(b"DKIM-Signature:")
    signature = msg["DKIM-Signature"]
    assert "d=lab.example" in signature and "s=parcours2025" in signature
    signed = signature.split("h=")[1].split(";")[0].replace(" ", "").lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe"):
        assert name in signed
    assert "list-unsubscribe-post" in signed
    assert dkim.verify(raw, dnsfunc=dkim_key.dnsfunc)
    tampered = raw.replace(PHRASES[0].encode(), b"Free text slipped in after signing.")
    assert tampered != raw and not dkim.verify(tampered, dnsfunc=dkim_key.dnsfunc)

    sent = scene.message(queued.id)
    assert sent.state == "sent" and sent.attempts == 1 and sent.sent_at is not None
    with db.new_session(write=False) as session:
        activity = session.get(Activity, sent.activity_id)
        assert (activity.kind, activity.channel, activity.account_id) == ("sent", "email", hcp_id)
    assert _job_for(queued.id).state == "done"

    assert jobs.run_pending() == 0  # nothing left, nothing sent twice
    assert len(smtp_server.envelopes) == 1


def test_without_a_dkim_key_the_message_is_sent_unsigned(scene, smtp_server):
    queued = scene.queue(scene.hcp())
    jobs.run_pending()
    [msg] = smtp_server.messages
    assert msg["DKIM-Signature"] is None and msg["List-Unsubscribe-Post"]
    assert scene.message(queued.id).state == "sent"


def test_an_hcp_who_opted_out_after_queueing_gets_nothing(scene, smtp_server):
    hcp_id = scene.hcp()
    queued = scene.queue(hcp_id)
    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep):
            consent.capture(
                session, rep, hcp_id, channel="email", status="opted_out", source="web_form"
            )
    assert jobs.run_pending() == 1
    assert smtp_server.envelopes == []
    refused = scene.message(queued.id)
    assert refused.state == "failed" and refused.error.startswith("refused: consent: ")
    assert refused.activity_id is None and refused.attempts == 0
    assert _job_for(queued.id).state == "done"  # a refusal is an outcome, not a retry


def test_a_template_withdrawn_after_queueing_is_not_sent(scene, smtp_server):
    queued = scene.queue(scene.hcp())
    with db.new_session() as session, session.begin():
        admin = session.get(User, scene.mlr.admin.id)
        with acting(session, admin):
            content_review.withdraw(session, admin, scene.template_id, "Claim no longer supported.")
    jobs.run_pending()
    assert smtp_server.envelopes == []
    refused = scene.message(queued.id)
    assert refused.state == "failed" and refused.error.startswith("refused: template: ")


def test_a_template_expired_before_sending_is_not_sent(scene, smtp_server):
    queued = scene.queue(scene.hcp())
    with db.new_session() as session, session.begin():
        version = session.get(ContentVersion, scene.template_id)
        version.valid_until = content.today() - timedelta(days=1)
    jobs.run_pending()
    assert smtp_server.envelopes == []
    assert scene.message(queued.id).error.startswith("refused: template: ")


def test_messages_queued_within_the_cap_all_leave(scene, smtp_server):
    hcp_id = scene.hcp()
    first, second = scene.queue(hcp_id), scene.queue(hcp_id, PHRASES[1])
    # the cap is 2 per 14 days: each queued message counts the other one, not itself
    assert jobs.run_pending() == 2
    assert [scene.message(m.id).state for m in (first, second)] == ["sent", "sent"]
    assert len(smtp_server.envelopes) == 2


def test_the_frequency_cap_reached_before_sending_stops_the_message(scene, smtp_server, env):
    hcp_id = scene.hcp()
    scene.queue(hcp_id)
    jobs.run_pending()
    queued = scene.queue(hcp_id, PHRASES[1])  # within the cap when queued
    env(email_cap_count=1)  # the cap is lowered before the worker gets to it
    jobs.run_pending()
    refused = scene.message(queued.id)
    assert refused.state == "failed" and refused.error.startswith("refused: frequency: ")
    assert "already has 1 promotional" in refused.error
    assert len(smtp_server.envelopes) == 1


def test_a_recipient_refused_for_good_fails_with_the_servers_reply(scene, smtp_server):
    queued = scene.queue(scene.hcp())
    smtp_server.refuse.add(queued.to_address.lower())
    jobs.run_pending()
    failed = scene.message(queued.id)
    assert failed.state == "failed" and "550" in failed.error and "No such user" in failed.error
    assert _job_for(queued.id).state == "done" and smtp_server.envelopes == []


def test_smtp_down_puts_the_message_back_in_the_queue_until_the_server_is_up(
    scene, smtp_server, env
):
    queued = scene.queue(scene.hcp())
    env(smtp_port=free_port())  # nobody listens there
    assert jobs.run_pending() == 1
    waiting = scene.message(queued.id)
    # no SMTP exchange was started (attempts counts those); the job is retried later
    assert waiting.state == "queued" and waiting.attempts == 0 and "SMTP" in waiting.error
    job = _job_for(queued.id)
    assert job.state == "queued" and job.attempts == 1 and job.run_at > datetime.now(UTC)

    env(smtp_port=smtp_server.port)  # the server is back
    assert _run_due() == 1
    sent = scene.message(queued.id)
    assert sent.state == "sent" and sent.attempts == 1 and sent.error is None
    assert smtp_server.message_ids == [f"<{queued.key}@lab.example>"]
    assert _run_due() == 0 and len(smtp_server.envelopes) == 1


def _worker(*args: str, crash_after: str | None = None, timeout: float = 90):
    environ = {k: v for k, v in os.environ.items() if k != CRASH_AFTER_SMTP}
    if crash_after:
        environ[CRASH_AFTER_SMTP] = crash_after
    environ["PARCOURS_WORKER_POLL_S"] = "0.1"
    return subprocess.run(
        [sys.executable, "-m", "parcours.cli", "worker", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_worker_killed_after_smtp_accepted_never_sends_twice_and_loses_nothing(
    scene, smtp_server, dkim_key
):
    hcps = [scene.hcp() for _ in range(5)]
    queued = [scene.queue(h) for h in hcps]
    keys = [f"<{m.key}@lab.example>" for m in queued]

    # the worker dies right after the server accepted message 3, before recording it
    died = _worker(crash_after=queued[2].key)
    assert died.returncode == 137, died.stderr[-2000:]
    assert smtp_server.message_ids == keys[:3]
    states = [scene.message(m.id).state for m in queued]
    assert states == ["sent", "sent", "sending", "queued", "queued"]
    # the worker took the five as one batch: their jobs are all held by its lease
    held = [_job_for(m.id) for m in queued]
    assert all(j.state == "running" and j.locked_until > datetime.now(UTC) for j in held)
    assert len({j.lease for j in held}) == 1

    # the dead worker's lease would run out after email_send_lease_s; the test ends it now
    with db.new_session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in held]))
            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = _worker("--once")
    assert again.returncode == 0, again.stderr[-2000:]

    assert sorted(smtp_server.message_ids) == sorted(keys)  # 5 distinct, none twice
    assert len(smtp_server.envelopes) == 5
    for envelope in smtp_server.envelopes:
        assert dkim.verify(envelope.original_content, dnsfunc=dkim_key.dnsfunc)
    after = [scene.message(m.id) for m in queued]
    assert [m.state for m in after] == ["sent", "sent", "uncertain", "sent", "sent"]
    assert "may have accepted" in after[2].error and after[2].activity_id is None
    # the two sent before the crash got their timeline activity from the worker that took up
    assert all(m.activity_id for i, m in enumerate(after) if i != 2)
    assert all(_job_for(m.id).state == "done" for m in queued)

    assert jobs.run_pending() == 0 and len(smtp_server.envelopes) == 5


def test_settings_point_the_worker_at_the_test_database(file_db):
    assert get_settings().database_url == file_db
