"""The CLM player pages: choosing content for a call, presenting it, slide events, call prefill."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from parcours.activities import service as activities
from parcours.activities.models import Activity
from parcours.content import review, service
from parcours.content.models import SlideView

from content_factories import acting, approved_version, submit, upload_version
from factories import create_user, login


@pytest.fixture
def client(client):
    client.headers["Accept-Language"] = "en"
    return client


def plan_call(session, mlr, user=None, **over) -> Activity:
    user = user or mlr.rep
    with acting(session, user):
        return activities.create_activity(
            session,
            user,
            account_ids=[mlr.hcp.id],
            channel="field_visit",
            start_at=datetime.now(UTC) - timedelta(minutes=30),
            **over,
        )


def as_user(client, user) -> str:
    """Log in through the page; returns the session's CSRF token."""
    assert login(client, user.email).status_code == 303
    page = client.get("/")
    return re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)


def slide_events(act: Activity, version, pages=(1, 2, 3), reaction=None) -> list[dict]:
    start = datetime.now(UTC) - timedelta(minutes=2)  # after the approval, give or take
    return [
        {
            "event_id": f"ev-{uuid.uuid4()}",
            "activity_id": act.id,
            "version_id": version.id,
            "page": page,
            "seq": i,
            "started_at": (start + timedelta(seconds=30 * i)).isoformat(),
            "duration_ms": 30_000,
            "reaction": reaction if i == 0 else None,
        }
        for i, page in enumerate(pages)
    ]


def post_events(client, act, token, events):
    return client.post(
        f"/present/{act.id}/events", json={"events": events}, headers={"X-CSRF-Token": token}
    )


def views_of(session, act) -> int:
    return session.scalar(
        select(func.count()).select_from(SlideView).where(SlideView.activity_id == act.id)
    )


def test_the_call_form_offers_to_present_and_the_chooser_lists_approved_content(
    session, client, mlr
):
    approved = approved_version(session, mlr, title="Cardiozen launch deck")
    upload_version(session, mlr, title="Unreviewed draft deck")
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)

    form = client.get(f"/calls/{act.id}")
    assert f'href="/calls/{act.id}/present"' in form.text

    page = client.get(f"/calls/{act.id}/present")
    assert page.status_code == 200
    assert f'href="/present/{act.id}/{approved.id}"' in page.text
    assert "Cardiozen launch deck" in page.text and "4 slides" in page.text
    assert f"/content/versions/{approved.id}/thumbs/1.jpg" in page.text
    assert "Unreviewed draft deck" not in page.text


def test_the_chooser_says_when_nothing_is_approved(session, client, mlr):
    upload_version(session, mlr)
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)
    page = client.get(f"/calls/{act.id}/present")
    assert page.status_code == 200
    assert "No approved content to present yet" in page.text


def test_the_player_shows_an_approved_version(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)
    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 200
    assert f"/content/versions/{version.id}/pages/1.jpg" in page.text
    assert 'id="player-config"' in page.text and "End presentation" in page.text
    image = client.get(f"/content/versions/{version.id}/pages/2.jpg")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    status = client.get(f"/present/{act.id}/{version.id}/status").json()
    assert status == {"presentable": True, "state": "approved", "reason": None, "message": None}


@pytest.mark.parametrize("state", ["draft", "in_review"])
def test_a_rep_cannot_open_a_version_that_is_not_approved(session, client, mlr, state):
    version = upload_version(session, mlr)
    if state == "in_review":
        submit(session, mlr, version)
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)

    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 404
    assert "This content cannot be presented" in page.text
    assert 'id="player-config"' not in page.text


def test_a_withdrawn_version_cannot_be_opened_and_its_status_says_so(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    assert client.get(f"/present/{act.id}/{version.id}").status_code == 200

    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, version.id, "Safety information updated")

    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 409
    assert "withdrawn and can no longer be shown" in page.text
    status = client.get(f"/present/{act.id}/{version.id}/status").json()
    assert status["presentable"] is False and status["state"] == "withdrawn"
    assert "withdrawn" in status["message"]
    # slides shown before the withdrawal still count; the flush answer carries the status
    resp = post_events(client, act, token, slide_events(act, version))
    assert resp.json()["accepted"] == 3
    assert resp.json()["status"][str(version.id)]["presentable"] is False


def test_an_expired_version_cannot_be_opened_and_its_status_says_so(session, client, mlr):
    day = service.today()
    version = approved_version(session, mlr, valid_from=day - timedelta(days=30), valid_until=day)
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)
    with acting(session, mlr.admin):
        assert review.expire_due(session, day + timedelta(days=1)) == 1

    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 409
    assert "expired and can no longer be shown" in page.text
    status = client.get(f"/present/{act.id}/{version.id}/status").json()
    assert status["presentable"] is False and status["state"] == "expired"
    assert "expired" in status["message"]


def test_the_refusal_is_in_french_for_a_french_rep(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    mlr.rep.language = "fr"
    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, version.id, "Retrait")
    as_user(client, mlr.rep)
    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 409
    assert "Ce contenu a été retiré" in page.text


def test_another_reps_call_is_refused(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    colleague = create_user(session, "rep", territories=[mlr.territory], country="FR")
    token = as_user(client, colleague)

    assert client.get(f"/calls/{act.id}/present").status_code == 403
    page = client.get(f"/present/{act.id}/{version.id}")
    assert page.status_code == 403
    assert "Only the rep who owns this call presents in it" in page.text
    resp = post_events(client, act, token, slide_events(act, version))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert client.post(f"/present/{act.id}/finish", data={"_csrf": token}).status_code == 403
    assert views_of(session, act) == 0


def test_slide_events_are_idempotent(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    events = slide_events(act, version, reaction="positive")

    first = post_events(client, act, token, events)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 0, [])
    assert body["stored"] == [e["event_id"] for e in events]

    # the tablet did not hear the answer and sends the same slides again, with a new one
    extra = slide_events(act, version, pages=(4,))
    again = post_events(client, act, token, events + extra).json()
    assert (again["accepted"], again["duplicates"]) == (1, 3)
    assert again["stored"] == [e["event_id"] for e in events + extra]
    assert views_of(session, act) == 4


def test_the_events_endpoint_answers_which_events_it_refused(session, client, mlr):
    version = approved_version(session, mlr, pages=2)
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    good, bad = slide_events(act, version, pages=(1, 9))
    body = post_events(client, act, token, [good, bad]).json()
    assert body["stored"] == [good["event_id"]]
    assert [r["event_id"] for r in body["rejected"]] == [bad["event_id"]]
    assert body["rejected"][0]["field"] == "page"


def test_bad_events_are_refused_as_problems(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    other = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    [event] = slide_events(act, version, pages=(1,))

    for body in (
        {"events": [{**event, "event_id": "short"}]},
        {"events": [{**event, "reaction": "bored"}]},
        {"events": []},
        {"nothing": True},
    ):
        resp = client.post(f"/present/{act.id}/events", json=body, headers={"X-CSRF-Token": token})
        assert resp.status_code == 422, body
        assert resp.headers["content-type"] == "application/problem+json"
    not_json = client.post(
        f"/present/{act.id}/events",
        content=b"{oops",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422

    # every event belongs to the call in the address
    resp = post_events(client, act, token, [{**event, "activity_id": other.id}])
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "events.0.activity_id"
    assert views_of(session, act) == views_of(session, other) == 0


def test_events_need_the_session_csrf_token(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr)
    as_user(client, mlr.rep)
    events = slide_events(act, version)
    assert post_events(client, act, "forged", events).status_code == 403
    assert client.post(f"/present/{act.id}/events", json={"events": events}).status_code == 403
    assert views_of(session, act) == 0


def test_events_on_a_submitted_call_are_refused(session, client, mlr):
    version = approved_version(session, mlr)
    act = plan_call(session, mlr, product_ids=[mlr.product.id], duration_min=15, outcome="positive")
    with acting(session, mlr.rep):
        activities.submit_activity(session, mlr.rep, act.id)
    token = as_user(client, mlr.rep)

    resp = post_events(client, act, token, slide_events(act, version))
    assert resp.status_code == 409
    assert "submitted and locked" in resp.json()["detail"]
    assert views_of(session, act) == 0
    assert client.get(f"/calls/{act.id}/present").status_code == 409
    assert client.get(f"/present/{act.id}/{version.id}").status_code == 409
    status = client.get(f"/present/{act.id}/{version.id}/status").json()
    assert status["presentable"] is False and status["state"] == "call_locked"


def test_finish_prefills_the_call_report(session, client, mlr):
    version = approved_version(session, mlr, title="Cardiozen launch deck")
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    events = slide_events(act, version, reaction="positive")
    assert post_events(client, act, token, events).is_success

    resp = client.post(f"/present/{act.id}/finish", data={"_csrf": token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"/calls/{act.id}"
    session.refresh(act)
    assert act.status == "saved"
    assert act.product_ids == [mlr.product.id]
    assert act.key_messages == ["Efficacy", "Safety"]
    assert act.duration_min == 2  # 90 s of slides, rounded up
    assert act.subject == "Cardiozen launch deck"

    form = client.get(f"/calls/{act.id}")
    assert "Call report prefilled from the presentation" in form.text
    assert "Content shown" in form.text and "3 slide(s)" in form.text
    assert "Positive" in form.text


def test_finish_without_any_slide_says_so(session, client, mlr):
    approved_version(session, mlr)
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    resp = client.post(f"/present/{act.id}/finish", data={"_csrf": token}, follow_redirects=False)
    assert resp.status_code == 303
    assert "No slide reached the server yet" in client.get(f"/calls/{act.id}").text
    session.refresh(act)
    assert act.status == "planned"


def test_a_submitted_call_shows_the_content_shown(session, client, mlr):
    version = approved_version(session, mlr, title="Cardiozen launch deck")
    act = plan_call(session, mlr)
    token = as_user(client, mlr.rep)
    assert post_events(client, act, token, slide_events(act, version)).is_success
    with acting(session, mlr.rep):
        activities.update_activity(
            session,
            mlr.rep,
            act.id,
            product_ids=[mlr.product.id],
            duration_min=5,
            outcome="neutral",
        )
        activities.submit_activity(session, mlr.rep, act.id)
    view = client.get(f"/calls/{act.id}")
    assert "Content shown" in view.text and "Cardiozen launch deck" in view.text
    assert f'href="/calls/{act.id}/present"' not in view.text
