"""The worker sends messages in batches over one SMTP connection: each message's fate is its
own (refused, deferred, taken by another worker), and two workers never send one twice."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from parcours.core import db, jobs, mailer
from parcours.core.models import Job
from parcours.core.settings import get_settings
from parcours.email import tasks
from parcours.email.models import EmailMessage

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
    failures = mailer.run(lambda: tasks._deliver(ready, by_message, get_settings()))

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
