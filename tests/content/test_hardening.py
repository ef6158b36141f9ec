"""Attacks on the content rules: tampered files, other markets, backdated slides, guesses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from parcours.activities import service as activities
from parcours.content import clm, review, service, storage
from parcours.content.models import ContentVersion, SlideView
from parcours.core.errors import Conflict, NotFound
from parcours.core.models import User

from content_factories import acting, approved_version, sign_as, submit, upload_version
from factories import api_headers, create_user

PROBLEM = "application/problem+json"


def a_call(session, mlr):
    with acting(session, mlr.rep):
        return activities.create_activity(
            session,
            mlr.rep,
            account_ids=[mlr.hcp.id],
            channel="field_visit",
            start_at=datetime.now(UTC) - timedelta(minutes=30),
        )


def event(call, version, started_at, n=1) -> dict:
    return {
        "event_id": f"hard-{call.id}-{version.id}-{n}",
        "activity_id": call.id,
        "version_id": version.id,
        "page": 1,
        "seq": n,
        "started_at": started_at,
        "duration_ms": 1000,
        "reaction": None,
    }


def test_a_tampered_file_is_hidden_from_reps_everywhere(session, client, mlr):
    version = approved_version(session, mlr, pages=2)
    headers = api_headers(client, mlr.rep)
    assert client.get(f"/api/v1/content-versions/{version.id}", headers=headers).status_code == 200
    with storage.original_path(version).open("ab") as f:
        f.write(b"% an extra claim")
    assert service.library(session, mlr.rep) == []
    for url in (
        f"/api/v1/content-versions/{version.id}",
        f"/api/v1/content-versions/{version.id}/pages/1.jpg",
    ):
        assert client.get(url, headers=headers).status_code == 404, url
    # builders still see it, with void signatures, to find out what happened
    checks = service.check_signatures(session, version)
    assert checks and not any(c.valid for c in checks)


def test_reps_get_no_diff_of_unapproved_text(session, client, mlr):
    v1 = upload_version(session, mlr, pages=1, texts=["SECRET UNAPPROVED CLAIM"])
    submit(session, mlr, v1)
    sign_as(session, mlr.medical, v1, decision="rejected", comment="No.")
    v2 = approved_version(session, mlr, pages=1, content_id=v1.content_id)
    rep = client.get(f"/api/v1/content-versions/{v2.id}/diff", headers=api_headers(client, mlr.rep))
    assert rep.status_code == 403 and "SECRET" not in rep.text
    reviewer = client.get(
        f"/api/v1/content-versions/{v2.id}/diff", headers=api_headers(client, mlr.legal)
    )
    assert reviewer.status_code == 200


def test_slides_of_another_market_or_backdated_are_refused(session, mlr):
    call = a_call(session, mlr)
    german = approved_version(session, mlr, pages=1, countries=["DE"])
    french = approved_version(session, mlr, pages=1)
    now = datetime.now(UTC)
    with acting(session, mlr.rep):
        result = clm.ingest(
            session,
            mlr.rep,
            [
                event(call, german, now, 1),
                event(call, french, datetime(2001, 1, 1, tzinfo=UTC), 2),
                event(call, french, now - timedelta(days=3), 3),
                event(call, french, now, 4),
            ],
        )
    assert result["accepted"] == 1
    assert [r["event_id"][-1] for r in result["rejected"]] == ["1", "2", "3"]
    # a withdrawn version of another country cannot be written into either
    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, german.id, "Wrong claim")
    with acting(session, mlr.rep):
        again = clm.ingest(session, mlr.rep, [event(call, german, now, 5)])
    assert again["accepted"] == 0 and again["rejected"][0]["field"] == "version_id"


def test_slides_only_in_calls(session, mlr):
    version = approved_version(session, mlr, pages=1)
    with acting(session, mlr.rep):
        email = activities.create_activity(
            session,
            mlr.rep,
            account_ids=[mlr.hcp.id],
            channel="email",
            start_at=datetime.now(UTC) - timedelta(minutes=5),
        )
        result = clm.ingest(session, mlr.rep, [event(email, version, datetime.now(UTC))])
    assert result["accepted"] == 0 and result["rejected"][0]["field"] == "activity_id"


def test_status_of_a_draft_is_not_told_to_reps(session, client, mlr):
    draft = upload_version(session, mlr, pages=1)
    resp = client.get(
        f"/api/v1/content-versions/{draft.id}/status", headers=api_headers(client, mlr.rep)
    )
    assert resp.status_code == 404 and "draft" not in resp.text


def test_a_rep_without_a_country_sees_nothing(session, mlr):
    approved_version(session, mlr, pages=1)
    nowhere = create_user(session, "rep", territories=[mlr.territory])
    assert service.library(session, nowhere) == [] and clm.offered(session, nowhere) == []


def test_wrong_signing_passwords_count_and_lock(session, client, mlr, settings_env):
    settings_env(login_max_failures=3)
    version = submit(session, mlr, upload_version(session, mlr, pages=1))
    headers = api_headers(client, mlr.medical, password=mlr.password)
    url = f"/api/v1/content-versions/{version.id}/signatures"
    for _ in range(2):
        resp = client.post(url, headers=headers, json={"decision": "approved", "password": "x"})
        assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
        assert resp.json()["errors"][0]["field"] == "password"
    session.expire_all()
    assert session.get(User, mlr.medical.id).failed_logins == 2  # kept despite the error
    client.post(url, headers=headers, json={"decision": "approved", "password": "x"})
    locked = client.post(
        url, headers=headers, json={"decision": "approved", "password": mlr.password}
    )
    assert locked.status_code == 429  # even the right password waits now
    session.expire_all()
    assert session.get(ContentVersion, version.id).state == "in_review"
    assert service.signatures(session, version.id) == []


def test_one_person_signs_for_one_role(session, mlr):
    version = submit(session, mlr, upload_version(session, mlr, pages=1))
    sign_as(session, mlr.medical, version)
    mlr.medical.review_role = "legal"  # an admin moved them to legal meanwhile
    with pytest.raises(Conflict, match="already signed"):
        sign_as(session, mlr.medical, version)


def test_a_newer_version_in_force_retires_the_old_one_at_once(session, mlr, monkeypatch):
    day = service.today()
    v1 = approved_version(session, mlr, pages=1)
    v2 = upload_version(
        session, mlr, pages=1, content_id=v1.content_id, valid_from=day + timedelta(days=2)
    )
    submit(session, mlr, v2)
    for reviewer in (mlr.medical, mlr.legal, mlr.regulatory):
        sign_as(session, reviewer, v2)
    assert service.presentable(session, v1)
    monkeypatch.setattr(service, "today", lambda: day + timedelta(days=2))
    assert v1.state == "approved" and not service.presentable(session, v1)  # worker not run
    with pytest.raises(Conflict):
        service.require_presentable(session, v1)


def test_a_forged_site_token_is_a_404_not_a_crash(client, session, mlr):
    version = approved_version(session, mlr, pages=1)
    for token in ("1.²²²", "1." + "9" * 5000 + ".abc", "x.y.z"):
        resp = client.get(f"/content/versions/{version.id}/site/~{token}/index.html")
        assert resp.status_code == 404, token


def test_anonymous_uploads_are_cut_at_the_normal_body_limit(client):
    body = b"x" * 2_000_000
    resp = client.post(
        "/api/v1/content",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert resp.status_code == 413


def test_events_are_counted_once_whatever_the_route(session, mlr):
    version = approved_version(session, mlr, pages=1)
    call = a_call(session, mlr)
    events = [event(call, version, datetime.now(UTC), n) for n in range(1, 4)]
    with acting(session, mlr.rep):
        first = clm.ingest(session, mlr.rep, events)
        second = clm.ingest(session, mlr.rep, events + events)
    assert (first["accepted"], second["accepted"], second["duplicates"]) == (3, 0, 3)
    count = session.scalar(select(func.count()).select_from(SlideView))
    assert count == 3
    with pytest.raises(NotFound):
        service.get_version(session, mlr.rep, version.id + 999)


def test_a_changed_page_image_voids_the_signatures(session, client, mlr):
    version = approved_version(session, mlr, pages=2)
    assert service.presentable(session, version)
    image = storage.version_dir(version.id) / "pages" / "0002.jpg"
    image.write_bytes(image.read_bytes() + b"\0")  # what the rep would be shown changed
    assert not service.presentable(session, version)
    headers = api_headers(client, mlr.rep)
    resp = client.get(f"/api/v1/content-versions/{version.id}/pages/2.jpg", headers=headers)
    assert resp.status_code == 404
