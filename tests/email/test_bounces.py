"""Bounces: a DSN read back onto the HCP's timeline, once; a hard bounce stops the next send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from parcours.activities.models import Activity, Attendee
from parcours.core import db, jobs
from parcours.core.errors import Conflict, Invalid
from parcours.email import bounces, service

from content_factories import acting, approved_version, build_mlr
from email_factories import PHRASES, approved_email_template, dsn, opt_in_to_email
from factories import api_headers

ADDRESS = "anne.martin@chu-lille.fr"


@pytest.fixture
def world(session):
    mlr = build_mlr(session)
    opt_in_to_email(session, mlr, ADDRESS)
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


# --- the bounce mailbox (a Maildir the mail server delivers reports to) ---------------------------


def maildir(tmp_path) -> Path:
    folder = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True)
    return folder


def test_the_worker_reads_the_bounce_mailbox_once_per_report(scene, smtp_server, env, tmp_path):
    queued = scene.queue(scene.hcp())
    assert jobs.run_pending() == 1 and scene.message(queued.id).state == "sent"
    folder = maildir(tmp_path)
    env(bounce_maildir=folder)
    (folder / "new" / "1795000000.1.mx").write_bytes(dsn(queued.key, queued.to_address))
    (folder / "new" / "1795000000.2.mx").write_bytes(b"Subject: out of office\r\n\r\nAway.\r\n")

    jobs.run_periodic()  # what the worker does every minute
    assert sorted(p.name for p in (folder / "cur").iterdir()) == [
        "1795000000.1.mx:2,S",  # read
        "1795000000.2.mx:2,F",  # not a report: flagged for a person
    ]
    assert list((folder / "new").iterdir()) == []
    with db.new_session(write=False) as session:
        assert bounced(session, queued.account_id) == 1
    # the same report delivered again is read again, and recorded once
    (folder / "new" / "1795000001.3.mx").write_bytes(dsn(queued.key, queued.to_address))
    assert bounces.poll_maildir(folder) == {
        "applied": 1,
        "transient": 0,
        "unknown": 0,
        "not_reports": 0,
    }
    with db.new_session(write=False) as session:
        assert bounced(session, queued.account_id) == 1
    # and the next send to that address is refused by the gates
    with pytest.raises(Conflict, match="bounced"):
        scene.queue(queued.account_id)


def test_a_folder_that_is_not_a_maildir_is_named(tmp_path):
    with pytest.raises(Invalid, match="not a Maildir") as refused:
        bounces.poll_maildir(tmp_path / "nowhere")
    assert refused.value.errors[0]["field"] == "bounce_maildir"
