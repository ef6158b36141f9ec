"""The campaigns pages: marketing lists campaigns, starts one from the form, follows it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import select

from parcours.accounts.models import TargetList, TargetListEntry
from parcours.core.models import Job
from parcours.email import campaigns
from parcours.email.models import Campaign

from content_factories import acting, approved_version, build_mlr
from email_factories import PHRASES, approved_email_template
from factories import login


def csrf_of(html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def world(session):
    mlr = build_mlr(session)
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1, title="Renal protection deck")
    today = date.today()
    tl = TargetList(name="Q1 cardiology", cycle_start=today, cycle_end=today + timedelta(days=90))
    session.add(tl)
    session.flush()
    session.add(TargetListEntry(target_list_id=tl.id, account_id=mlr.hcp.id))
    session.flush()
    return mlr, template, deck, tl


def form(token, template, deck, tl, **over) -> dict:
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    data = {
        "_csrf": token,
        "target_list_id": str(tl.id),
        "template_id": str(template.id),
        "phrase": PHRASES[1],
        "date": day,
        "content_version_id": str(deck.id),
        **over,
    }
    return {k: v for k, v in data.items() if v is not None}


def test_the_page_lists_campaigns_and_offers_the_form(client, session, world):
    mlr, template, deck, tl = world
    with acting(session, mlr.marketing):
        campaigns.start(
            session,
            mlr.marketing,
            tl.id,
            template.id,
            {"phrase": PHRASES[0]}
            | {
                "date": (date.today() + timedelta(days=3)).isoformat(),
                "content_version_id": deck.id,
            },
        )
    login(client, mlr.marketing.email)
    page = client.get("/campaigns")
    assert page.status_code == 200
    html = unescape(page.text)
    assert 'href="/campaigns"' in html  # the nav entry
    assert "Q1 cardiology" in html and template.title in html
    assert "0 / 1" in html and "Queued" in html
    assert all(f'<option value="{p}"' in html for p in PHRASES)
    assert f'<option value="{deck.id}"' in html and 'type="date"' in html


def test_starting_from_the_form_creates_the_campaign_and_its_job(client, session, world):
    mlr, template, deck, tl = world
    login(client, mlr.marketing.email)
    token = csrf_of(client.get("/campaigns").text)
    resp = client.post("/campaigns", data=form(token, template, deck, tl), follow_redirects=False)
    assert resp.status_code in (302, 303), resp.text
    campaign = session.scalars(select(Campaign)).one()
    assert resp.headers["location"] == f"/campaigns/{campaign.id}"
    assert campaign.target_list_id == tl.id and campaign.version_id == template.id
    jobs = session.scalars(select(Job).where(Job.kind == "email.campaign")).all()
    assert [j.payload for j in jobs] == [{"campaign_id": campaign.id}]
    page = client.get(f"/campaigns/{campaign.id}")
    assert page.status_code == 200
    assert 'hx-trigger="every 2s"' in page.text and "<progress" in page.text


def test_a_rep_gets_403(client, session, world):
    mlr, template, deck, tl = world
    login(client, mlr.rep.email)
    assert client.get("/campaigns").status_code == 403
    token = csrf_of(client.get("/accounts").text)
    resp = client.post("/campaigns", data=form(token, template, deck, tl))
    assert resp.status_code == 403
    assert session.scalars(select(Campaign)).all() == []


def test_bad_input_keeps_values_and_shows_the_error(client, session, world):
    mlr, template, deck, tl = world
    login(client, mlr.marketing.email)
    token = csrf_of(client.get("/campaigns").text)
    resp = client.post("/campaigns", data=form(token, template, deck, tl, phrase="Free text"))
    assert resp.status_code == 422
    html = unescape(resp.text)
    assert 'id="phrase-error"' in html
    assert f'<option value="{tl.id}" selected' in html
    assert f'<option value="{deck.id}" selected' in html
    resp = client.post("/campaigns", data=form(token, template, deck, tl, target_list_id=""))
    assert resp.status_code == 422
    assert 'id="target_list_id-error"' in resp.text
    assert f'<option value="{PHRASES[1]}" selected' in unescape(resp.text)
    assert session.scalars(select(Campaign)).all() == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_progress_partial_renders_refusals_and_done(client, session, world, lang):
    mlr, template, deck, tl = world
    with acting(session, mlr.marketing):
        campaign = campaigns.start(
            session,
            mlr.marketing,
            tl.id,
            template.id,
            {
                "phrase": PHRASES[0],
                "date": (date.today() + timedelta(days=3)).isoformat(),
                "content_version_id": deck.id,
            },
        )
    campaign.state, campaign.total, campaign.queued_count = "running", 4, 1
    campaign.refused = '{"consent": 2, "frequency": 1}'
    session.flush()
    mlr.marketing.language = lang
    session.flush()
    login(client, mlr.marketing.email)
    headers = {"Accept-Language": lang, "HX-Request": "true"}
    part = client.get(f"/campaigns/{campaign.id}/progress", headers=headers)
    assert part.status_code == 200
    assert 'hx-trigger="every 2s"' in part.text and 'value="100"' in part.text
    assert "<html" not in part.text
    campaign.state, campaign.finished_at = "done", datetime.now(UTC)
    session.flush()
    part = client.get(f"/campaigns/{campaign.id}/progress", headers=headers)
    assert "every 2s" not in part.text
    word = {"en": "Done on", "fr": "Terminée le"}[lang]
    assert word in unescape(part.text)
