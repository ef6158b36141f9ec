"""The insight API: problem details for bad input, access applied to every route."""

from __future__ import annotations

import pytest

from factories import api_headers
from insight_world import build


@pytest.fixture
def world(session, tmp_path):
    return build(session, tmp_path / "docs")


def test_ask_and_read_back(client, world):
    headers = api_headers(client, world.marketing)
    r = client.post(
        "/api/v1/insight/ask",
        json={"question": "How much did GLP-1 receptor agonists grow in 2025?"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "answered" and "24%" in body["answer"]
    assert body["sources"][0]["page"] == 2 and body["sources"][0]["href"].endswith("#p2")
    again = client.get(f"/api/v1/insight/questions/{body['id']}", headers=headers).json()
    assert again["answer"] == body["answer"]
    r = client.post(
        f"/api/v1/insight/questions/{body['id']}/feedback",
        json={"feedback": "sideways"},
        headers=headers,
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "feedback"
    # someone else's question does not exist for a rep
    rep = api_headers(client, world.rep)
    assert client.get(f"/api/v1/insight/questions/{body['id']}", headers=rep).status_code == 404


def test_search_is_scoped(client, world):
    marketing = client.get(
        "/api/v1/insight/search",
        params={"q": "anticoagulants"},
        headers=api_headers(client, world.marketing),
    ).json()
    rep = client.get(
        "/api/v1/insight/search",
        params={"q": "anticoagulants"},
        headers=api_headers(client, world.rep),
    ).json()
    restricted = world.docs["etude-marche-anticoagulants-2026.pdf"].id
    assert restricted in {h["document_id"] for h in marketing}
    assert restricted not in {h["document_id"] for h in rep}
    rep_headers = api_headers(client, world.rep)
    listed = client.get("/api/v1/insight/documents", headers=rep_headers).json()
    assert restricted not in {d["id"] for d in listed}
    r = client.get(
        f"/api/v1/insight/documents/{restricted}", headers=api_headers(client, world.rep)
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "x", "mode": "fuzzy"}, "mode"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "language": "de"}, "language"),
    ],
)
def test_bad_searches(client, world, params, field):
    r = client.get("/api/v1/insight/search", params=params, headers=api_headers(client, world.rep))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field


def test_upload_takes_good_files_and_names_the_bad_ones(client, world, session):
    from parcours.ai.models import InsightDocument

    headers = api_headers(client, world.marketing)
    before = session.query(InsightDocument).count()
    r = client.post(
        "/api/v1/insight/documents",
        data={"acl_roles": "marketing,manager", "category": "report"},
        files=[
            ("file", ("notes.md", b"# Notes\nThe panel meets in May.", "text/markdown")),
            ("file", ("tool.exe", b"MZ", "application/octet-stream")),
        ],
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert [d["filename"] for d in body["added"]] == ["notes.md"]
    assert body["added"][0]["acl"]["roles"] == ["manager", "marketing"]
    assert body["refused"][0]["file"] == "tool.exe"
    assert session.query(InsightDocument).count() == before + 1
    # nothing taken at all: 422 naming each file; bad access: 422 on its field
    r = client.post(
        "/api/v1/insight/documents",
        data={"acl_roles": "marketing"},
        files=[("file", ("tool.exe", b"MZ", "application/octet-stream"))],
        headers=headers,
    )
    assert r.status_code == 422 and "tool.exe" in r.json()["errors"][0]["message"]
    r = client.post(
        "/api/v1/insight/documents",
        data={"acl_roles": "pope"},
        files=[("file", ("a.md", b"# A\nB c d e.", "text/markdown"))],
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "acl_roles"
    # nobody named is refused, unless everyone is meant
    r = client.post(
        "/api/v1/insight/documents",
        files=[("file", ("a.md", b"# A\nB c d e.", "text/markdown"))],
        headers=headers,
    )
    assert r.status_code == 422 and "everyone" in r.json()["errors"][0]["message"]
    assert session.query(InsightDocument).count() == before + 1
    r = client.post(
        "/api/v1/insight/documents",
        data={"everyone": "true"},
        files=[("file", ("a.md", b"# A\nB c d e.", "text/markdown"))],
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["added"][0]["acl"]["roles"] == []
    # reps ask, they do not add
    r = client.post(
        "/api/v1/insight/documents",
        files=[("file", ("a.md", b"# A\nB c d e.", "text/markdown"))],
        headers=api_headers(client, world.rep),
    )
    assert r.status_code == 403
