"""The worker sends messages in batches over one SMTP connection: each message's fate is its
own (refused, deferred, taken by another worker), and two workers never send one twice."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from parcours.core import db, jobs, mailer
from parcours.core.models import Job
from parcours.core.settings import get_settings
from parcours.email import tasks
from parcours.email.models import EmailMessage

from factories import free_port

ROOT = Path(__file__).resolve().parents[2]


def _jobs() -> dict[int, Job]:
    with db.new_session(write=False) as session:
        rows = session.scalars(select(Job).where(Job.kind == "email.send")).all()
    return {j.payload["message_id"]: j for j in rows}


def _states(messages) -> list[str]:
    with db.new_session(write=False) as session:
        return [session.get(EmailMessage, m.id).state for m in messages]


def _due_now() -> None:
    with db.new_session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.state == "queued")
            .values(run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def test_a_batch_goes_over_one_connection_and_a_refusal_stops_only_its_message(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(6)]
    smtp_server.refuse.add(queued[2].to_address.lower())

    assert jobs.run_pending() == 6
    assert _states(queued) == ["sent", "sent", "failed", "sent", "sent", "sent"]
    assert len(smtp_server.envelopes) == 5 and len(set(smtp_server.peers)) == 1
    refused = scene.message(queued[2].id)
    assert "550 5.1.1 No such user here" in refused.error and refused.activity_id is None
    assert all(scene.message(m.id).activity_id for i, m in enumerate(queued) if i != 2)
    assert {j.state for j in _jobs().values()} == {"done"}  # a refusal is not retried


def test_a_deferred_recipient_is_retried_alone(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(3)]
    smtp_server.defer.add(queued[1].to_address.lower())

    assert jobs.run_pending() == 3
    assert _states(queued) == ["sent", "queued", "sent"]
    waiting = scene.message(queued[1].id)
    assert "451 4.7.1" in waiting.error and waiting.attempts == 1
    job = _jobs()[queued[1].id]
    assert job.state == "queued" and job.run_at > datetime.now(UTC)

    smtp_server.defer.clear()
    _due_now()
    assert jobs.run_pending() == 1
    assert _states(queued) == ["sent", "sent", "sent"]
    assert len(smtp_server.envelopes) == 3  # none twice


def test_a_server_that_hangs_up_mid_batch_gets_the_rest_on_a_new_connection(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(4)]
    # 421: the server is going away; the client closes the connection (RFC 5321 3.8)
    smtp_server.data_reply[queued[1].to_address.lower()] = "421 4.3.2 Shutting down"

    assert jobs.run_pending() == 4
    assert _states(queued) == ["sent", "queued", "sent", "sent"]
    assert len(set(smtp_server.peers)) == 2  # reconnected for the third message
    smtp_server.data_reply.clear()
    _due_now()
    assert jobs.run_pending() == 1 and _states(queued) == ["sent"] * 4
    assert len(smtp_server.envelopes) == 4


def test_a_message_another_worker_took_meanwhile_is_left_to_it(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(3)]
    ready = tasks._claim([m.id for m in queued])
    assert [m.id for m in ready] == [m.id for m in queued]
    # another worker (its lease on our batch's jobs ran out) marked the second one first
    with db.new_session() as session, session.begin():
        session.execute(
            update(EmailMessage).where(EmailMessage.id == queued[1].id).values(state="sending")
        )
    by_message = {m.id: Job(attempts=1) for m in queued}
    deadline = time.monotonic() + 60
    failures = mailer.run(lambda: tasks._deliver(ready, by_message, get_settings(), deadline))

    assert failures == {}
    assert sorted(smtp_server.message_ids) == sorted(
        tasks.message_id(m.key) for m in (queued[0], queued[2])
    )
    assert _states(queued) == ["sent", "sending", "sent"]


def test_two_workers_at_once_send_every_message_exactly_once(scene, smtp_server, dkim_key):
    queued = [scene.queue(scene.hcp()) for _ in range(tasks.BATCH + 40)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "parcours.cli", "worker", "--once"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]

    ids = smtp_server.message_ids
    assert len(ids) == len(queued) and len(set(ids)) == len(queued)
    assert set(_states(queued)) == {"sent"}
    assert {j.state for j in _jobs().values()} == {"done"}
    with db.new_session(write=False) as session:
        activities = session.scalars(
            select(EmailMessage.activity_id).where(EmailMessage.id.in_([m.id for m in queued]))
        ).all()
    assert None not in activities and len(set(activities)) == len(queued)


def _force(message_id: int, **values) -> None:
    """Change a queued message behind the services' back (data they would not write)."""
    with db.new_session() as session, session.begin():
        session.execute(update(EmailMessage).where(EmailMessage.id == message_id).values(**values))


def test_a_message_that_cannot_be_written_fails_alone(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(4)]
    _force(queued[1].id, subject="Update\nBcc: someone@evil.example")  # a header injection
    _force(queued[2].id, to_address="jörg@exämple.test")  # not an address SMTP can carry

    assert jobs.run_pending() == 4
    assert _states(queued) == ["sent", "failed", "failed", "sent"]
    assert "one line" in scene.message(queued[1].id).error
    assert "cannot be used" in scene.message(queued[2].id).error
    assert len(smtp_server.envelopes) == 2
    assert all("Bcc" not in m.as_string() for m in smtp_server.messages)
    assert {j.state for j in _jobs().values()} == {"done"}


def test_a_server_that_hangs_up_between_two_messages_loses_none(scene, smtp_server):
    queued = [scene.queue(scene.hcp()) for _ in range(3)]
    hung_up = []

    async def hang_up_after_one(server, session, envelope, address, mail_options):
        if smtp_server.peers and session.peer == smtp_server.peers[0] and not hung_up:
            hung_up.append(session.peer)
            server.transport.close()  # silently: the client hears nothing back
        envelope.mail_from = address
        return "250 OK"

    smtp_server.handle_MAIL = hang_up_after_one
    jobs.run_pending()
    assert hung_up  # the second message met a closed connection before DATA
    # not 'uncertain': nothing of it reached DATA; it goes again, on a new connection
    assert _states(queued) == ["sent", "queued", "sent"]
    _due_now()
    jobs.run_pending()
    assert _states(queued) == ["sent", "sent", "sent"]
    assert sorted(smtp_server.message_ids) == sorted(tasks.message_id(m.key) for m in queued)


def test_a_batch_out_of_time_hands_its_jobs_back_without_counting_a_try(scene, smtp_server, env):
    queued = [scene.queue(scene.hcp()) for _ in range(3)]
    env(email_send_lease_s=0)  # half of nothing: out of time before the first message
    assert jobs.run_pending(limit=3) == 3
    assert _states(queued) == ["queued"] * 3 and smtp_server.envelopes == []
    assert {(j.state, j.attempts) for j in _jobs().values()} == {("queued", 0)}
    env(email_send_lease_s=120)
    assert jobs.run_pending() == 3 and _states(queued) == ["sent"] * 3


def test_when_the_last_try_fails_the_message_fails_rather_than_waits_forever(
    scene, smtp_server, env
):
    queued = scene.queue(scene.hcp())
    env(smtp_port=free_port())  # nobody listens there
    for _ in range(jobs.MAX_ATTEMPTS):
        _due_now()
        jobs.run_pending()
    assert _jobs()[queued.id].state == "failed"
    message = scene.message(queued.id)
    assert message.state == "failed" and "tries" in message.error


def test_sent_messages_missing_their_timeline_activity_get_it(scene, smtp_server):
    queued = scene.queue(scene.hcp())
    assert jobs.run_pending() == 1
    with db.new_session() as session, session.begin():
        message = session.get(EmailMessage, queued.id)
        message.activity_id = None  # as after a crash between the send and its activity
        message.sent_at = datetime.now(UTC) - timedelta(minutes=5)
    tasks.repair_timelines()
    assert scene.message(queued.id).activity_id is not None


def test_a_lowered_cap_lets_the_first_of_two_queued_messages_go(scene, smtp_server, env):
    hcp = scene.hcp()
    first, second = scene.queue(hcp), scene.queue(hcp)
    env(email_cap_count=1)  # lowered after both were queued: one of them may still leave
    assert jobs.run_pending() == 2
    assert sorted(_states([first, second])) == ["failed", "sent"]
