"""Hostile or malformed input gets a clear 4xx and writes nothing, never a 500."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from parcours.activities.models import Activity, Amendment
from parcours.core.models import ApiToken, AuditRecord, User
from parcours.core.pagination import encode

from factories import (
    PASSWORD,
    api_headers,
    create_hcp,
    create_product,
    create_territory_tree,
    create_user,
    login,
)


@pytest.fixture
def rep_world(session, client):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    hcp = create_hcp(session, tree["north1"])
    product = create_product(session)
    h = api_headers(client, rep)
    body = {
        "account_ids": [hcp.id],
        "channel": "phone",
        "status": "saved",
        "start_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "duration_min": 10,
        "outcome": "neutral",
        "product_ids": [product.id],
    }
    act = client.post("/api/v1/activities", json=body, headers=h).json()
    return {"tree": tree, "rep": rep, "hcp": hcp, "product": product, "h": h, "act": act}


@pytest.mark.parametrize(
    "changes",
    [
        {"product_ids": 5},
        {"product_ids": [[1]]},
        {"key_messages": 5},
        {"key_messages": "hello"},
        {"duration_min": True},
        {"duration_min": -1},
        {"notes": {"x": 1}},
        {"outcome": None},
        {"duration_min": None},
        {},
        {"account_id": 1},
    ],
)
def test_amendments_take_only_typed_known_fields(session, client, rep_world, changes):
    w = rep_world
    client.post(f"/api/v1/activities/{w['act']['id']}/submit", headers=w["h"])
    resp = client.post(
        f"/api/v1/activities/{w['act']['id']}/amendments",
        headers=w["h"],
        json={"reason": "fix", "changes": changes},
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert session.scalar(select(func.count(Amendment.id))) == 0


@pytest.mark.parametrize(
    "patch",
    [
        {"start_at": None},
        {"product_ids": None},
        {"key_messages": None},
        {"channel": None},
        {"status": None},
        {"notes": "a\x00b"},
    ],
)
def test_patch_refuses_nulls_and_nul_characters(session, client, rep_world, patch):
    w = rep_world
    resp = client.patch(f"/api/v1/activities/{w['act']['id']}", json=patch, headers=w["h"])
    assert resp.status_code == 422, resp.text
    session.expire_all()
    assert session.get(Activity, w["act"]["id"]).notes is None


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/accounts/99999999999999999999",
        "/api/v1/activities/99999999999999999999",
        "/api/v1/accounts?territory_id=99999999999999999999",
        "/api/v1/accounts/99999999999/timeline",
    ],
)
def test_out_of_range_ids_are_client_errors(client, rep_world, path):
    resp = client.get(path, headers=rep_world["h"])
    assert 400 <= resp.status_code < 500, resp.text


@pytest.mark.parametrize(
    "cursor",
    [
        encode({"a": 1}, [2]),
        encode("dupont", "x"),
        encode("dupont", 2**70),
        "A" * 5000,
        encode("x", True),
    ],
)
def test_forged_cursors_are_refused(client, rep_world, cursor):
    resp = client.get("/api/v1/accounts", params={"cursor": cursor}, headers=rep_world["h"])
    assert resp.status_code == 422
    resp = client.get(
        f"/api/v1/accounts/{rep_world['hcp'].id}/timeline",
        params={"cursor": cursor},
        headers=rep_world["h"],
    )
    assert resp.status_code == 422


def test_password_reset_revokes_tokens_and_is_audited(session, client, rep_world):
    admin = create_user(session, "admin")
    ha = api_headers(client, admin)
    rep = rep_world["rep"]
    assert client.get("/api/v1/me", headers=rep_world["h"]).status_code == 200
    resp = client.patch(
        f"/api/v1/users/{rep.id}", json={"password": "a-brand-new-password"}, headers=ha
    )
    assert resp.status_code == 200
    assert client.get("/api/v1/me", headers=rep_world["h"]).status_code == 401
    assert (
        session.scalar(
            select(func.count(ApiToken.id)).where(
                ApiToken.user_id == rep.id, ApiToken.revoked.is_(False)
            )
        )
        == 0
    )
    client.patch(f"/api/v1/users/{rep.id}", json={"unlock": True}, headers=ha)
    actions = session.scalars(
        select(AuditRecord.action).where(
            AuditRecord.entity == "users", AuditRecord.entity_id == str(rep.id)
        )
    ).all()
    assert "password" in actions and "unlock" in actions


def test_user_manager_must_exist_and_can_be_cleared(session, client):
    admin = create_user(session, "admin")
    manager = create_user(session, "manager")
    rep = create_user(session, "rep", manager_id=manager.id, country="FR")
    ha = api_headers(client, admin)
    resp = client.patch(f"/api/v1/users/{rep.id}", json={"manager_id": 99999}, headers=ha)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "manager_id"
    resp = client.patch(
        f"/api/v1/users/{rep.id}", json={"manager_id": None, "country": None}, headers=ha
    )
    assert resp.status_code == 200
    assert resp.json()["manager_id"] is None and resp.json()["country"] is None
    bad = client.post(
        "/api/v1/users",
        headers=ha,
        json={
            "email": "x@example.org",
            "full_name": "X",
            "role": "rep",
            "password": "long-password-1",
            "manager_id": 424242,
        },
    )
    assert bad.status_code == 422
    assert session.scalar(select(func.count(User.id)).where(User.email == "x@example.org")) == 0


def test_csrf_field_sent_as_a_file_is_refused_not_a_crash(session, client):
    rep = create_user(session, "rep")
    login(client, rep.email, PASSWORD)
    resp = client.post("/logout", files={"_csrf": ("x.txt", b"abc")})
    assert resp.status_code == 403


def test_non_ascii_digits_in_page_filters(session, client):
    rep = create_user(session, "rep")
    login(client, rep.email, PASSWORD)
    assert client.get("/accounts", params={"territory": "²"}).status_code == 200


def _page_csrf(client, path: str) -> str:
    import re

    return re.search(r'name="_csrf" value="([^"]+)"', client.get(path).text).group(1)


@pytest.mark.parametrize(
    "over, field",
    [({"name": "x" * 300}, "name"), ({"code": "C" * 41}, "code"), ({"country": "FRA"}, "country")],
)
def test_admin_territory_form_refuses_oversized_values(session, client, over, field):
    from parcours.accounts.models import Territory

    admin = create_user(session, "admin")
    login(client, admin.email, PASSWORD)
    token = _page_csrf(client, "/admin/territories")
    data = {
        "code": "NEW1",
        "name": "Somewhere",
        "level": "country",
        "country": "FR",
        "_csrf": token,
        **over,
    }
    before = session.scalar(select(func.count(Territory.id)))
    resp = client.post("/admin/territories", data=data)
    assert resp.status_code == 422
    assert session.scalar(select(func.count(Territory.id))) == before


def test_admin_user_form_refuses_a_bad_country_and_unknown_manager(session, client):
    admin = create_user(session, "admin")
    login(client, admin.email, PASSWORD)
    token = _page_csrf(client, "/admin/users/new")
    base = {
        "email": "page.user@example.org",
        "full_name": "Page User",
        "role": "rep",
        "language": "en",
        "password": "long-enough-pass",
        "_csrf": token,
    }
    for over in ({"country": "FRA"}, {"manager_id": "424242"}):
        resp = client.post("/admin/users", data={**base, **over})
        assert resp.status_code == 422, over
    assert (
        session.scalar(select(func.count(User.id)).where(User.email == "page.user@example.org"))
        == 0
    )
