"""The content API: uploads and their refusals, who sees what, signatures, slide events, stats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from parcours.activities import service as activities
from parcours.content import service, storage
from parcours.content.models import Content, ContentVersion, Signature, SlideView
from parcours.core.models import Job

import docs
from content_factories import acting, approved_version, submit, upload_version
from factories import api_headers, create_hcp, create_user

PROBLEM = "application/problem+json"


def api_meta(mlr, **over) -> dict:
    day = service.today()
    return {
        "title": "Cardiozen launch deck",
        "content_type": "promotional",
        "language": "fr",
        "countries": ["FR"],
        "product_ids": [mlr.product.id],
        "key_messages": ["Efficacy"],
        "valid_from": day.isoformat(),
        "valid_until": (day + timedelta(days=365)).isoformat(),
        **over,
    }


def post_file(client, headers, path: Path, metadata, filename: str | None = None, url=None):
    raw = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return client.post(
        url or "/api/v1/content",
        files={"file": (filename or path.name, path.read_bytes(), "application/octet-stream")},
        data={"metadata": raw},
        headers=headers,
    )


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def assert_problem(resp, status: int, field: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    fields = [e["field"] for e in resp.json().get("errors", [])]
    assert field in fields, resp.json()


def assert_nothing_left(session, content_dir: Path) -> None:
    assert count(session, Content) == 0
    assert count(session, ContentVersion) == 0
    assert count(session, Job) == 0
    left = sorted(str(p.relative_to(content_dir)) for p in content_dir.rglob("*"))
    assert left in ([], [".incoming"]), left


# ---------------------------------------------------------------- upload


def test_upload_makes_a_queued_draft_and_a_render_job(session, client, mlr, content_dir, tmp_path):
    headers = api_headers(client, mlr.marketing)
    resp = post_file(client, headers, docs.make_pdf(tmp_path / "deck.pdf", pages=2), api_meta(mlr))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["state"], body["render_state"], body["number"]) == ("draft", "queued", 1)
    assert (body["kind"], body["filename"], body["countries"]) == ("pdf", "deck.pdf", ["FR"])
    assert body["required_roles"] == ["medical", "legal", "regulatory"]
    [job] = session.scalars(select(Job)).all()
    assert (job.kind, job.payload, job.state) == (
        "content.render",
        {"version_id": body["id"]},
        "queued",
    )
    stored = content_dir / str(body["id"]) / "original.pdf"
    assert stored.read_bytes() == (tmp_path / "deck.pdf").read_bytes()
    assert list((content_dir / ".incoming").iterdir()) == []

    # a new version through the API carries the metadata over
    version = session.get(ContentVersion, body["id"])
    version.state = "rejected"
    session.flush()
    resp = post_file(
        client,
        headers,
        tmp_path / "deck.pdf",
        {"change_note": "Fixed page 2"},
        url=f"/api/v1/content/{body['content_id']}/versions",
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["number"], resp.json()["title"]) == (2, "Cardiozen launch deck")


BAD_FILES = {
    "corrupt_pdf": ("deck.pdf", docs.make_corrupt_pdf),
    "encrypted_pdf": ("deck.pdf", docs.make_encrypted_pdf),
    "zip_slip": ("site.zip", docs.make_zip_slip),
    "zip_bomb": ("site.zip", lambda p: docs.make_zip_bomb(p, megabytes=5)),
    "unknown_type": ("notes.txt", lambda p: p.write_bytes(b"just some text\n" * 20) and p),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_refused_file_leaves_nothing(session, client, mlr, content_dir, tmp_path, case):
    filename, make = BAD_FILES[case]
    path = tmp_path / filename
    make(path)
    resp = post_file(client, api_headers(client, mlr.marketing), path, api_meta(mlr))
    assert_problem(resp, 422, "file")
    assert_nothing_left(session, content_dir)


BAD_META = {
    "missing_title": (lambda m: {k: v for k, v in m.items() if k != "title"}, "title"),
    # a title becomes an email subject: a line break would write a header of its own
    "title_on_two_lines": (lambda m: {**m, "title": "Update\nBcc: a@evil.example"}, "title"),
    "bad_country": (lambda m: {**m, "countries": ["France"]}, "countries"),
    "unknown_product": (lambda m: {**m, "product_ids": [987654]}, "product_ids"),
    "until_before_from": (
        lambda m: {**m, "valid_from": "2030-06-01", "valid_until": "2030-05-31"},
        "valid_until",
    ),
    "not_json": (lambda m: "{'title': 'single quotes'", "metadata"),
    "not_an_object": (lambda m: "[1, 2]", "metadata"),
    "unknown_field": (lambda m: {**m, "colour": "red"}, "colour"),
    "bad_language": (lambda m: {**m, "language": "klingon"}, "language"),
    "bad_date": (lambda m: {**m, "valid_until": "next year"}, "valid_until"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_refused_metadata_leaves_nothing(session, client, mlr, content_dir, tmp_path, case):
    change, field = BAD_META[case]
    path = docs.make_pdf(tmp_path / "deck.pdf", pages=1)
    resp = post_file(client, api_headers(client, mlr.marketing), path, change(api_meta(mlr)))
    assert_problem(resp, 422, field)
    assert_nothing_left(session, content_dir)


def test_an_upload_over_the_size_limit_is_refused(
    session, client, mlr, content_dir, tmp_path, settings_env
):
    path = docs.make_pdf(tmp_path / "deck.pdf", pages=3)
    headers = api_headers(client, mlr.marketing)
    settings_env(content_max_bytes=path.stat().st_size - 1)
    resp = post_file(client, headers, path, api_meta(mlr))
    assert resp.status_code in (413, 422), resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert "file" in [e["field"] for e in resp.json()["errors"]]
    assert_nothing_left(session, content_dir)


@pytest.mark.parametrize("role", ["rep", "reviewer", "manager"])
def test_only_builders_upload(session, client, mlr, content_dir, tmp_path, role):
    user = {"rep": mlr.rep, "reviewer": mlr.medical}.get(role) or create_user(session, role)
    path = docs.make_pdf(tmp_path / "deck.pdf", pages=1)
    resp = post_file(client, api_headers(client, user), path, api_meta(mlr))
    assert resp.status_code == 403 and resp.headers["content-type"].startswith(PROBLEM)
    assert_nothing_left(session, content_dir)


def test_upload_needs_a_token(client, mlr, tmp_path, session, content_dir):
    resp = post_file(client, {}, docs.make_pdf(tmp_path / "deck.pdf", pages=1), api_meta(mlr))
    assert resp.status_code == 401
    assert_nothing_left(session, content_dir)


# ---------------------------------------------------------------- who sees what


def test_a_rep_sees_only_approved_valid_content_for_their_country(
    session, client, mlr, monkeypatch
):
    day = service.today()
    shown = approved_version(
        session, mlr, pages=1, title="For France", valid_until=day + timedelta(days=90)
    )
    gb_only = approved_version(session, mlr, pages=1, title="For Britain", countries=["GB"])
    expired = approved_version(
        session,
        mlr,
        pages=1,
        title="Old",
        valid_from=day - timedelta(days=60),
        valid_until=day,
    )
    # time passes: the day after "Old" expired, before the worker marked it
    monkeypatch.setattr(service, "today", lambda: day + timedelta(days=1))
    draft = upload_version(session, mlr, pages=1, title="Work in progress")
    reviewing = submit(session, mlr, upload_version(session, mlr, pages=1, title="In review"))
    headers = api_headers(client, mlr.rep)

    listed = client.get("/api/v1/content", headers=headers)
    assert listed.status_code == 200
    assert [v["id"] for v in listed.json()] == [shown.id]
    assert client.get(f"/api/v1/content-versions/{shown.id}", headers=headers).status_code == 200
    for hidden in (gb_only, expired, draft, reviewing):
        resp = client.get(f"/api/v1/content-versions/{hidden.id}", headers=headers)
        assert resp.status_code == 404, hidden.title
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert (
            client.get(f"/api/v1/content/{hidden.content_id}", headers=headers).status_code == 404
        )

    # marketing sees everything, newest version of each item
    everything = client.get("/api/v1/content", headers=api_headers(client, mlr.marketing)).json()
    assert len(everything) == 5


def test_a_reviewer_sees_no_drafts(session, client, mlr):
    draft = upload_version(session, mlr, pages=1, title="Draft")
    reviewing = submit(session, mlr, upload_version(session, mlr, pages=1, title="In review"))
    headers = api_headers(client, mlr.legal)
    assert [v["id"] for v in client.get("/api/v1/content", headers=headers).json()] == [
        reviewing.id
    ]
    assert client.get(f"/api/v1/content-versions/{draft.id}", headers=headers).status_code == 404
    detail = client.get(f"/api/v1/content-versions/{reviewing.id}", headers=headers)
    assert detail.status_code == 200 and len(detail.json()["pages"]) == 1


def test_page_images_for_those_who_may_see_them(session, client, mlr):
    approved = approved_version(session, mlr, pages=2)
    draft = upload_version(session, mlr, pages=1)
    rep = api_headers(client, mlr.rep)

    resp = client.get(f"/api/v1/content-versions/{approved.id}/pages/2.jpg", headers=rep)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    assert resp.content[:3] == b"\xff\xd8\xff"
    assert "private" in resp.headers["cache-control"]
    thumb = client.get(
        f"/api/v1/content-versions/{approved.id}/pages/1.jpg?thumb=true", headers=rep
    )
    assert thumb.status_code == 200 and len(thumb.content) < len(resp.content)
    assert (
        client.get(f"/api/v1/content-versions/{approved.id}/pages/3.jpg", headers=rep).status_code
        == 404
    )

    assert (
        client.get(f"/api/v1/content-versions/{draft.id}/pages/1.jpg", headers=rep).status_code
        == 404
    )
    marketing = api_headers(client, mlr.marketing)
    resp = client.get(f"/api/v1/content-versions/{draft.id}/pages/1.jpg", headers=marketing)
    assert resp.status_code == 200 and resp.content[:3] == b"\xff\xd8\xff"


# ---------------------------------------------------------------- review through the API


def test_signatures_through_the_api(session, client, mlr):
    version = submit(session, mlr, upload_version(session, mlr, pages=1))
    url = f"/api/v1/content-versions/{version.id}/signatures"

    medical = api_headers(client, mlr.medical)
    resp = client.post(url, json={"decision": "approved", "password": "nope"}, headers=medical)
    assert_problem(resp, 422, "password")
    assert count(session, Signature) == 0
    resp = client.post(url, json={"decision": "approved"}, headers=medical)
    assert_problem(resp, 422, "password")
    resp = client.post(
        url, json={"decision": "rejected", "password": mlr.password}, headers=medical
    )
    assert_problem(resp, 422, "comment")
    rep = api_headers(client, mlr.rep)
    assert (
        client.post(
            url, json={"decision": "approved", "password": mlr.password}, headers=rep
        ).status_code
        == 403
    )
    assert count(session, Signature) == 0

    resp = client.post(
        url, json={"decision": "approved", "password": mlr.password}, headers=medical
    )
    assert resp.status_code == 201, resp.text
    sig = resp.json()
    assert (sig["role"], sig["decision"], sig["signer_id"]) == (
        "medical",
        "approved",
        mlr.medical.id,
    )
    assert sig["meaning"] == "Approved as medical reviewer" and sig["valid"] is True
    again = client.post(
        url, json={"decision": "approved", "password": mlr.password}, headers=medical
    )
    assert again.status_code == 409

    for reviewer in (mlr.legal, mlr.regulatory):
        headers = api_headers(client, reviewer)
        resp = client.post(
            url, json={"decision": "approved", "password": mlr.password}, headers=headers
        )
        assert resp.status_code == 201, resp.text
    detail = client.get(f"/api/v1/content-versions/{version.id}", headers=medical).json()
    assert detail["state"] == "approved"
    assert [(s["role"], s["valid"]) for s in detail["signatures"]] == [
        ("medical", True),
        ("legal", True),
        ("regulatory", True),
    ]
    # the file changes on disk: the API shows the signatures as void
    original = storage.original_path(version)
    original.write_bytes(original.read_bytes() + b"\n")
    detail = client.get(f"/api/v1/content-versions/{version.id}", headers=medical).json()
    assert [s["valid"] for s in detail["signatures"]] == [False, False, False]
    status = client.get(f"/api/v1/content-versions/{version.id}/status", headers=rep).json()
    assert status["presentable"] is False


def test_withdraw_through_the_api(session, client, mlr):
    version = approved_version(session, mlr, pages=1)
    url = f"/api/v1/content-versions/{version.id}/withdraw"
    marketing = api_headers(client, mlr.marketing)
    assert client.post(url, json={"reason": "Old"}, headers=marketing).status_code == 403
    admin = api_headers(client, mlr.admin)
    assert_problem(client.post(url, json={}, headers=admin), 422, "reason")
    resp = client.post(url, json={"reason": "Recalled"}, headers=admin)
    assert resp.status_code == 200 and resp.json()["state"] == "withdrawn"
    assert client.post(url, json={"reason": "Again"}, headers=admin).status_code == 409
    rep = api_headers(client, mlr.rep)
    assert client.get("/api/v1/content", headers=rep).json() == []


# ---------------------------------------------------------------- slide events and statistics


def a_call(session, mlr, hcp=None, rep=None):
    rep = rep or mlr.rep
    with acting(session, rep):
        return activities.create_activity(
            session,
            rep,
            account_ids=[(hcp or mlr.hcp).id],
            channel="field_visit",
            start_at=datetime.now(UTC) - timedelta(hours=1),
            status="saved",
        )


def event(call, version, n: int, page: int, duration_ms: int, reaction=None) -> dict:
    return {
        "event_id": f"evt-{call.id}-{version.id}-{n:04d}",
        "activity_id": call.id,
        "version_id": version.id,
        "page": page,
        "seq": n,
        "started_at": (datetime.now(UTC) - timedelta(minutes=2) + timedelta(seconds=n)).isoformat(),
        "duration_ms": duration_ms,
        "reaction": reaction,
    }


def test_slide_events_count_once(session, client, mlr):
    version = approved_version(session, mlr, pages=3)
    call = a_call(session, mlr)
    batch = {"events": [event(call, version, n, n, 5000) for n in (1, 2, 3)]}
    rep = api_headers(client, mlr.rep)

    first = client.post("/api/v1/slide-events", json=batch, headers=rep)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    second = client.post("/api/v1/slide-events", json=batch, headers=rep)
    assert second.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    assert count(session, SlideView) == 3


def test_bad_slide_events(session, client, mlr):
    version = approved_version(session, mlr, pages=2)
    draft = upload_version(session, mlr, pages=2)
    call = a_call(session, mlr)
    other_rep = create_user(session, "rep", territories=[mlr.territory], country="FR")
    others_call = a_call(session, mlr, rep=other_rep)
    rep = api_headers(client, mlr.rep)

    resp = client.post(
        "/api/v1/slide-events",
        json={"events": [{**event(call, version, 1, 1, 1000), "duration_ms": -5}]},
        headers=rep,
    )
    assert_problem(resp, 422, "events.0.duration_ms")
    resp = client.post("/api/v1/slide-events", json={"events": []}, headers=rep)
    assert_problem(resp, 422, "events")

    good = event(call, version, 1, 1, 1000)
    future = {
        **event(call, version, 5, 2, 1000),
        "started_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
    }
    batch = [
        good,
        event(call, version, 2, 99, 1000),
        event(call, draft, 3, 1, 1000),
        event(others_call, version, 4, 1, 1000),
        future,
        {**event(call, version, 6, 1, 1000), "activity_id": 10**9},
    ]
    resp = client.post("/api/v1/slide-events", json={"events": batch}, headers=rep)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert {r["event_id"]: r["field"] for r in body["rejected"]} == {
        batch[1]["event_id"]: "page",
        batch[2]["event_id"]: "version_id",
        batch[3]["event_id"]: "activity_id",
        future["event_id"]: "started_at",
        batch[5]["event_id"]: "activity_id",
    }
    assert session.scalars(select(SlideView.event_id)).all() == [good["event_id"]]

    marketing = api_headers(client, mlr.marketing)
    assert (
        client.post("/api/v1/slide-events", json={"events": [good]}, headers=marketing).status_code
        == 403
    )


def test_stats_count_calls_time_per_slide_and_reactions(session, client, mlr):
    version = approved_version(session, mlr, pages=3)
    monday, tuesday = (
        a_call(session, mlr),
        a_call(session, mlr, hcp=create_hcp(session, mlr.territory)),
    )
    events = [
        event(monday, version, 1, 1, 10_000, "positive"),
        event(monday, version, 2, 2, 20_000, "neutral"),
        event(monday, version, 3, 3, 30_000),
        event(tuesday, version, 1, 1, 20_000, "positive"),
        event(tuesday, version, 2, 2, 45_000, "negative"),
    ]
    rep = api_headers(client, mlr.rep)
    resp = client.post("/api/v1/slide-events", json={"events": events}, headers=rep)
    assert resp.json()["accepted"] == 5

    assert client.get(f"/api/v1/content/{version.content_id}/stats", headers=rep).status_code == 403
    resp = client.get(
        f"/api/v1/content/{version.content_id}/stats", headers=api_headers(client, mlr.marketing)
    )
    assert resp.status_code == 200, resp.text
    [v] = resp.json()["versions"]
    assert (v["version_id"], v["times_shown"], v["slide_views"]) == (version.id, 2, 5)
    assert v["avg_ms_per_slide"] == 25_000  # 125 s over 5 slides
    assert v["reactions"] == {"positive": 2, "neutral": 1, "negative": 1}
    assert v["pages"] == [
        {
            "page": 1,
            "views": 2,
            "avg_ms": 15_000,
            "total_ms": 30_000,
            "reactions": {"positive": 2, "neutral": 0, "negative": 0},
        },
        {
            "page": 2,
            "views": 2,
            "avg_ms": 32_500,
            "total_ms": 65_000,
            "reactions": {"positive": 0, "neutral": 1, "negative": 1},
        },
        {
            "page": 3,
            "views": 1,
            "avg_ms": 30_000,
            "total_ms": 30_000,
            "reactions": {"positive": 0, "neutral": 0, "negative": 0},
        },
    ]


def test_discarding_a_draft_through_the_api(session, client, mlr):
    draft = upload_version(session, mlr, pages=1, title="False start")
    reviewing = submit(session, mlr, upload_version(session, mlr, pages=1, title="Sent"))
    rep = client.delete(
        f"/api/v1/content-versions/{draft.id}", headers=api_headers(client, mlr.rep)
    )
    assert rep.status_code == 403 and rep.headers["content-type"] == PROBLEM
    headers = api_headers(client, mlr.marketing)
    refused = client.delete(f"/api/v1/content-versions/{reviewing.id}", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "state"
    assert client.delete(f"/api/v1/content-versions/{draft.id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/content-versions/{draft.id}", headers=headers).status_code == 404
