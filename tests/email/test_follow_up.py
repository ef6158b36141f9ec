"""Sending after a call: from the call report, an approved email that follows that call up,
with what was shown in the call offered first, and the follow-ups listed on the report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from parcours.activities import service as activities
from parcours.content import clm
from parcours.content import service as content
from parcours.core.errors import Invalid, NotFound
from parcours.email import service
from parcours.email.models import EmailMessage

from content_factories import acting, approved_version
from email_factories import PHRASES, approved_email_template, opt_in_to_email
from factories import api_headers, create_hcp, login


class World:
    pass


@pytest.fixture
def world(session, mlr):
    w = World()
    w.mlr, w.rep, w.hcp = mlr, mlr.rep, mlr.hcp
    opt_in_to_email(session, mlr, "anne.martin@chu-lille.fr")
    w.first_deck = approved_version(session, mlr, pages=2, title="A first deck")
    w.shown_deck = approved_version(session, mlr, pages=2, title="The deck shown in the call")
    w.template = approved_email_template(session, mlr)
    with acting(session, w.rep):
        w.call = call(session, w, "submitted")
    session.flush()
    return w


def call(session, w, status: str, account_id: int | None = None, channel: str = "field_visit"):
    act = activities.create_activity(
        session,
        w.rep,
        account_ids=[account_id or w.hcp.id],
        channel=channel,
        start_at=datetime.now(UTC) - timedelta(hours=1),
        status="saved" if status == "submitted" else status,
        duration_min=15 if status != "planned" else None,
        outcome="positive" if status != "planned" else None,
        product_ids=[w.mlr.product.id],
        key_messages=[],
    )
    if status == "submitted":
        activities.submit_activity(session, w.rep, act.id)
    return act


def values(w) -> dict:
    return {
        "phrase": PHRASES[0],
        "date": (content.today() + timedelta(days=3)).isoformat(),
        "content_version_id": w.shown_deck.id,
    }


def test_a_follow_up_is_tied_to_its_call(session, world):
    w = world
    with acting(session, w.rep):
        message = service.send(
            session, w.rep, w.hcp.id, w.template.id, values(w), after_call_id=w.call.id
        )
    assert message.follows_activity_id == w.call.id and message.state == "queued"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda s, w: call(s, w, "planned"), "once the call has taken place"),
        (lambda s, w: call(s, w, "saved", create_hcp(s, w.mlr.territory).id), "not with this HCP"),
        (lambda s, w: call(s, w, "saved", channel="email"), "Follow up a field visit"),
    ],
)
def test_a_follow_up_of_the_wrong_call_is_refused_and_nothing_is_queued(
    session, world, make, message
):
    w = world
    with acting(session, w.rep):
        other = make(session, w)
        with pytest.raises(Invalid, match=message) as refused:
            service.send(session, w.rep, w.hcp.id, w.template.id, values(w), after_call_id=other.id)
    assert refused.value.errors[0]["field"] == "after_call_id"
    assert session.query(EmailMessage).count() == 0


def test_a_call_outside_the_reps_territories_is_not_found(session, world):
    w = world
    with acting(session, w.rep), pytest.raises(NotFound):
        service.send(session, w.rep, w.hcp.id, w.template.id, values(w), after_call_id=10**9)


def test_the_api_takes_the_call_and_names_the_field_when_it_is_wrong(client, session, world):
    w = world
    headers = api_headers(client, w.rep)
    url = f"/api/v1/accounts/{w.hcp.id}/emails"
    body = {"template_id": w.template.id, **values(w)}
    for bad in ("12", -1, 0):
        r = client.post(url, json={**body, "after_call_id": bad}, headers=headers)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert any("after_call_id" in str(e.get("field")) for e in r.json()["errors"])
    with acting(session, w.rep):
        planned = call(session, w, "planned")
    session.commit()
    r = client.post(url, json={**body, "after_call_id": planned.id}, headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "after_call_id"
    r = client.post(url, json={**body, "after_call_id": w.call.id}, headers=headers)
    assert r.status_code == 201 and r.json()["follows_activity_id"] == w.call.id


def test_from_the_call_report_the_rep_sends_a_follow_up_and_sees_it_listed(client, session, world):
    w = world
    with acting(session, w.rep):
        clm.ingest(
            session,
            w.rep,
            [
                {
                    "event_id": f"fu-{w.call.id}-1",
                    "activity_id": w.call.id,
                    "version_id": w.shown_deck.id,
                    "page": 1,
                    "seq": 1,
                    "started_at": datetime.now(UTC) - timedelta(minutes=50),
                    "duration_ms": 40_000,
                    "reaction": None,
                }
            ],
        )
    session.commit()
    login(client, w.rep.email)
    report = client.get(f"/calls/{w.call.id}").text
    link = f"/accounts/{w.hcp.id}/email?after_call={w.call.id}"
    assert f'href="{link}"' in report and "No follow-up email yet" in report

    page = client.get(link)
    assert page.status_code == 200 and 'id="follow-up"' in page.text
    assert f'name="after_call_id" value="{w.call.id}"' in page.text
    # the deck shown in the call is the link offered first, not the library's first
    chosen = re.search(r'<option value="(\d+)" selected', page.text)
    assert chosen and int(chosen.group(1)) == w.shown_deck.id
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
    sent = client.post(
        f"/accounts/{w.hcp.id}/email",
        data={
            "_csrf": token,
            "template_id": str(w.template.id),
            "after_call_id": str(w.call.id),
            **{k: str(v) for k, v in values(w).items()},
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/calls/{w.call.id}"
    report = client.get(f"/calls/{w.call.id}").text
    assert "Invitation to a meeting" in report and "Queued" in report

    # in French too, for a rep who works in French
    w.rep.language = "fr"
    session.commit()
    assert "Envoyer un email de suivi" in client.get(f"/calls/{w.call.id}").text
    assert "Suite de la visite du" in client.get(link).text


def test_a_tampered_call_in_the_address_is_refused(client, session, world):
    w = world
    with acting(session, w.rep):
        planned = call(session, w, "planned")
    session.commit()
    login(client, w.rep.email)
    assert client.get(f"/accounts/{w.hcp.id}/email?after_call=abc").status_code == 404
    assert client.get(f"/accounts/{w.hcp.id}/email?after_call={planned.id}").status_code == 422
