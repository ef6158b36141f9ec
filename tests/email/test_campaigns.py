"""Campaigns: marketing sends an approved email to a target list, through the same gates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from parcours.accounts.models import Account, TargetList, TargetListEntry
from parcours.consent import service as consent
from parcours.core import db, jobs
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.models import Job, User
from parcours.email import campaigns
from parcours.email.models import Campaign, EmailMessage

from content_factories import acting, approved_version, build_mlr
from email_factories import PHRASES, approved_email_template
from factories import api_headers


def target_list(session, account_ids) -> TargetList:
    today = date.today()
    tl = TargetList(name="Q1 cardiology", cycle_start=today, cycle_end=today + timedelta(days=90))
    session.add(tl)
    session.flush()
    for account_id in account_ids:
        session.add(TargetListEntry(target_list_id=tl.id, account_id=account_id))
    session.flush()
    return tl


def values(deck, **over):
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    return {"phrase": PHRASES[0], "date": day, "content_version_id": deck.id, **over}


@pytest.fixture
def world(session):
    mlr = build_mlr(session)
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)
    tl = target_list(session, [mlr.hcp.id])
    return mlr, template, deck, tl


def campaign_jobs(session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind == "email.campaign")))


def test_marketing_starts_a_campaign_and_its_job_is_queued(session, world):
    mlr, template, deck, tl = world
    with acting(session, mlr.marketing):
        campaign = campaigns.start(session, mlr.marketing, tl.id, template.id, values(deck))
    assert campaign.state == "queued" and campaign.total == 1 and campaign.queued_count == 0
    assert json.loads(campaign.values)["phrase"] == PHRASES[0]
    assert [j.payload for j in campaign_jobs(session)] == [{"campaign_id": campaign.id}]


@pytest.mark.parametrize("role", ["rep", "medical"])
def test_only_marketing_and_admin_start_campaigns(session, world, role):
    mlr, template, deck, tl = world
    user = getattr(mlr, role)
    with pytest.raises(Forbidden), acting(session, user):
        campaigns.start(session, user, tl.id, template.id, values(deck))
    with acting(session, mlr.admin):
        campaigns.start(session, mlr.admin, tl.id, template.id, values(deck))
    assert len(campaign_jobs(session)) == 1


def test_a_campaign_needs_an_approved_email_template(session, world):
    mlr, template, deck, tl = world
    for bad in (deck.id, 999_999):  # a deck is not an email template; no such version
        with pytest.raises(NotFound), acting(session, mlr.marketing):
            campaigns.start(session, mlr.marketing, tl.id, bad, values(deck))
    with pytest.raises(NotFound), acting(session, mlr.marketing):
        campaigns.start(session, mlr.marketing, 999_999, template.id, values(deck))
    assert campaign_jobs(session) == []


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"body": "Free text"}, "body"),
        ({"subject": "Buy now"}, "subject"),
        ({"phrase": "A claim nobody approved"}, "phrase"),
        ({"date": "2001-01-01"}, "date"),
    ],
)
def test_injected_or_bad_values_are_refused(session, world, raw, field):
    mlr, template, deck, tl = world
    with pytest.raises(Invalid) as exc, acting(session, mlr.marketing):
        campaigns.start(session, mlr.marketing, tl.id, template.id, {**values(deck), **raw})
    assert exc.value.errors[0]["field"] == field
    assert campaign_jobs(session) == []


def test_api_starts_a_campaign_and_shows_its_progress(client, session, world):
    mlr, template, deck, tl = world
    body = {"target_list_id": tl.id, "template_id": template.id, **values(deck)}
    refused = client.post("/api/v1/campaigns", json=body, headers=api_headers(client, mlr.rep))
    assert refused.status_code == 403
    headers = api_headers(client, mlr.marketing)
    injected = client.post("/api/v1/campaigns", json={**body, "html": "<p>x</p>"}, headers=headers)
    assert injected.status_code == 422
    started = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert started.status_code == 201
    assert started.json()["state"] == "queued" and started.json()["total"] == 1
    shown = client.get(f"/api/v1/campaigns/{started.json()['id']}", headers=headers).json()
    assert (shown["total"], shown["queued"], shown["refused"]) == (1, 0, {})


# ---------------------------------------------------------------- the job, on a file database


def test_the_job_sends_through_the_gates_once(scene, env):
    # quiet hours all day: the messages' send jobs wait until tomorrow, so that only the
    # campaign job is due (no SMTP here)
    env(email_quiet_start_h=0, email_quiet_end_h=0)
    opted_in = [scene.hcp() for _ in range(3)]
    opted_out = scene.hcp()
    no_email = scene.hcp()
    no_consent = scene.hcp(consent_to_email=False)
    with db.new_session() as session, session.begin():
        rep = session.get(User, scene.mlr.rep.id)
        with acting(session, rep):
            consent.capture(
                session, rep, opted_out, channel="email", status="opted_out", source="web_form"
            )
            session.get(Account, no_email).emails = []
        hcps = [*opted_in, opted_out, no_email, no_consent]
        tl = target_list(session, hcps)
        marketing = session.get(User, scene.mlr.marketing.id)
        with acting(session, marketing):
            campaign_id = campaigns.start(
                session, marketing, tl.id, scene.template_id, {"phrase": PHRASES[1]}
            ).id

    jobs.run_pending()

    def state():
        with db.new_session(write=False) as session:
            campaign = session.get(Campaign, campaign_id)
            messages = list(
                session.scalars(
                    select(EmailMessage)
                    .where(EmailMessage.campaign_id == campaign_id)
                    .order_by(EmailMessage.account_id)
                )
            )
            sends = list(session.scalars(select(Job).where(Job.kind == "email.send")))
            return campaign, messages, sends

    campaign, messages, sends = state()
    assert campaign.state == "done" and campaign.finished_at is not None
    assert (campaign.total, campaign.queued_count) == (6, 3)
    assert json.loads(campaign.refused) == {"consent": 2, "recipient": 1}
    assert [m.account_id for m in messages] == sorted(opted_in)
    assert {m.sender_id for m in messages} == {scene.mlr.marketing.id}
    assert all(m.state == "queued" and PHRASES[1] in m.html for m in messages)
    assert sorted(j.payload["message_id"] for j in sends) == sorted(m.id for m in messages)
    assert all(j.state == "queued" for j in sends)

    # run again, as after a crash: nothing more is written, the counts stay right
    with db.new_session() as session, session.begin():
        session.get(Campaign, campaign_id).state = "running"
        jobs.enqueue(session, "email.campaign", {"campaign_id": campaign_id})
    jobs.run_pending()
    campaign, again, sends_again = state()
    assert [m.id for m in again] == [m.id for m in messages] and len(sends_again) == 3
    assert (campaign.state, campaign.total, campaign.queued_count) == ("done", 6, 3)
    assert json.loads(campaign.refused) == {"consent": 2, "recipient": 1}
    with db.new_session(write=False) as session:
        done = session.scalar(
            select(func.count()).where(Job.kind == "email.campaign", Job.state == "done")
        )
    assert done == 2
