"""Role × endpoint × own/other territory: each user reaches only what they may."""

from datetime import UTC, datetime, timedelta

import pytest

from parcours.activities.models import Activity, Attendee

from factories import (
    api_headers,
    create_hcp,
    create_product,
    create_territory_tree,
    create_user,
)

# own = an HCP in territory north1; other = an HCP in south1.
# rep is aligned to north1, manager to the north region.
EXPECTED = {
    #             read own, read other, write own, write other, admin-only
    "admin": (200, 200, 201, 201, 200),
    "manager": (200, 404, 201, 404, 403),
    "rep": (200, 404, 201, 404, 403),
    "marketing": (200, 200, 403, 403, 403),
    "reviewer": (404, 404, 403, 403, 403),
}


@pytest.fixture
def world(session):
    tree = create_territory_tree(session)
    product = create_product(session)
    own = create_hcp(session, tree["north1"], last_name="Ownington")
    other = create_hcp(session, tree["south1"], last_name="Otherby")
    owner = create_user(session, "rep", territories=[tree["south1"]])
    # An existing call on each HCP by someone else, to read.
    acts = {}
    for name, hcp in (("own", own), ("other", other)):
        act = Activity(
            channel="phone",
            status="submitted",
            owner_id=owner.id,
            account_id=hcp.id,
            start_at=datetime.now(UTC) - timedelta(days=1),
            duration_min=5,
            outcome="neutral",
            product_ids=[product.id],
            key_messages=[],
        )
        session.add(act)
        session.flush()
        session.add(
            Attendee(activity_id=act.id, account_id=hcp.id, start_at=act.start_at, channel="phone")
        )
        acts[name] = act
    session.flush()
    users = {
        "admin": create_user(session, "admin"),
        "manager": create_user(session, "manager", territories=[tree["north"]]),
        "rep": create_user(session, "rep", territories=[tree["north1"]]),
        "marketing": create_user(session, "marketing"),
        "reviewer": create_user(session, "reviewer"),
    }
    return {
        "tree": tree,
        "product": product,
        "own": own,
        "other": other,
        "acts": acts,
        "users": users,
    }


def _reads(client, h, hcp, act):
    return [
        client.get(f"/api/v1/accounts/{hcp.id}", headers=h).status_code,
        client.get(f"/api/v1/accounts/{hcp.id}/timeline", headers=h).status_code,
        client.get(f"/api/v1/activities/{act.id}", headers=h).status_code,
        client.get("/api/v1/tasks", params={"account_id": hcp.id}, headers=h).status_code,
    ]


def _writes(client, h, hcp, product):
    call = client.post(
        "/api/v1/activities",
        headers=h,
        json={
            "account_ids": [hcp.id],
            "channel": "field_visit",
            "status": "saved",
            "start_at": datetime.now(UTC).isoformat(),
            "product_ids": [product.id],
        },
    )
    task = client.post(
        "/api/v1/tasks",
        headers=h,
        json={"title": "Follow up", "due_date": "2030-01-01", "account_id": hcp.id},
    )
    return [call.status_code, task.status_code]


@pytest.mark.parametrize("role", list(EXPECTED))
def test_permission_matrix(session, client, world, role):
    read_own, read_other, write_own, write_other, admin_only = EXPECTED[role]
    h = api_headers(client, world["users"][role])
    assert _reads(client, h, world["own"], world["acts"]["own"]) == [read_own] * 3 + [
        read_own if read_own == 200 else 404
    ]
    assert _reads(client, h, world["other"], world["acts"]["other"]) == [read_other] * 4
    assert _writes(client, h, world["own"], world["product"]) == [write_own] * 2
    assert _writes(client, h, world["other"], world["product"]) == [write_other] * 2
    admin_calls = [
        client.get("/api/v1/users", headers=h).status_code,
        client.post(
            "/api/v1/territories",
            headers=h,
            json={
                "code": f"X-{role}",
                "name": "New",
                "level": "territory",
                "parent_id": world["tree"]["north"].id,
                "country": "FR",
            },
        ).status_code,
        client.post(
            "/api/v1/alignments/accounts",
            headers=h,
            json={"account_id": world["other"].id, "territory_id": world["tree"]["north2"].id},
        ).status_code,
        client.get(
            f"/api/v1/territories/{world['tree']['north'].id}/alignments", headers=h
        ).status_code,
    ]
    expected_admin = [200, 201, 201, 200] if admin_only == 200 else [403] * 4
    assert admin_calls == expected_admin


@pytest.mark.parametrize("role", list(EXPECTED))
def test_search_returns_only_readable_accounts(session, client, world, role):
    h = api_headers(client, world["users"][role])
    names = set()
    for q in ("ownington", "otherby"):
        resp = client.get("/api/v1/accounts", params={"q": q}, headers=h)
        assert resp.status_code == 200
        names |= {a["last_name"] for a in resp.json()["items"]}
    read_own, read_other, *_ = EXPECTED[role]
    expected = {n for n, code in (("Ownington", read_own), ("Otherby", read_other)) if code == 200}
    assert names == expected


def test_rep_cannot_edit_a_colleagues_call(session, client, world):
    # A saved call on "own" that belongs to another rep: readable, but not theirs to change.
    act = Activity(
        channel="phone",
        status="saved",
        owner_id=world["users"]["admin"].id,
        account_id=world["own"].id,
        start_at=datetime.now(UTC),
        product_ids=[],
        key_messages=[],
    )
    session.add(act)
    session.flush()
    h = api_headers(client, world["users"]["rep"])
    resp = client.patch(f"/api/v1/activities/{act.id}", json={"notes": "mine now"}, headers=h)
    assert resp.status_code == 403
    assert client.post(f"/api/v1/activities/{act.id}/submit", headers=h).status_code == 403


def test_submitted_call_cannot_be_changed_by_any_path(session, world):
    """Invariant 3 below the services: a flush that touches a submitted call fails."""
    from parcours.core.errors import Conflict

    act_id = world["acts"]["own"].id
    with pytest.raises(Conflict), session.begin_nested():
        session.get(Activity, act_id).notes = "rewritten"
        session.flush()
    with pytest.raises(Conflict), session.begin_nested():
        session.delete(session.get(Activity, act_id))
        session.flush()
    session.expire_all()
    assert session.get(Activity, act_id).notes is None


def test_no_token_and_bad_token_are_401(session, client, world):
    assert client.get("/api/v1/accounts").status_code == 401
    resp = client.get("/api/v1/accounts", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", list(EXPECTED))
def test_csv_export_holds_only_readable_accounts_and_is_audited(session, client, world, role):
    import csv
    import io

    from sqlalchemy import select

    from parcours.core.models import AuditRecord

    h = api_headers(client, world["users"][role])
    resp = client.get("/api/v1/accounts/export.csv", headers=h)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    read_own, read_other, *_ = EXPECTED[role]
    expected = {n for n, code in (("Ownington", read_own), ("Otherby", read_other)) if code == 200}
    assert {r["last_name"] for r in rows} == expected
    note = session.scalars(
        select(AuditRecord).where(AuditRecord.action == "export").order_by(AuditRecord.seq.desc())
    ).first()
    assert note.actor == world["users"][role].email
    assert note.note == f"{len(rows)} accounts exported as CSV"


def test_page_export_is_scoped_like_the_list(session, client, world):
    from factories import login

    login(client, world["users"]["rep"].email)
    resp = client.get("/accounts/export.csv", params={"q": "o"})
    assert resp.status_code == 200
    assert "Ownington" in resp.text and "Otherby" not in resp.text


def test_hcp_360_hides_affiliations_and_territories_outside_scope(session, client, world):
    from parcours.accounts.models import AccountTerritory, Affiliation

    from factories import create_hco

    hco = create_hco(session, world["tree"]["north1"], name="CHU Nord")
    session.add(Affiliation(hcp_id=world["other"].id, hco_id=hco.id, role="Consultant"))
    session.add(Affiliation(hcp_id=world["own"].id, hco_id=hco.id, role="Head"))
    session.add(AccountTerritory(account_id=hco.id, territory_id=world["tree"]["south1"].id))
    session.flush()
    h = api_headers(client, world["users"]["rep"])
    detail = client.get(f"/api/v1/accounts/{hco.id}", headers=h).json()
    assert [a["display_name"] for a in detail["affiliations"]] == ["Dr Claire Ownington"]
    assert detail["territory_ids"] == [world["tree"]["north1"].id]


def test_group_call_led_from_another_territory_stays_out_of_the_timeline(session, client, world):
    from parcours.accounts.models import AccountTerritory

    # "own" is also aligned to south1; a south rep's group call led on "other" includes it.
    session.add(
        AccountTerritory(account_id=world["own"].id, territory_id=world["tree"]["south1"].id)
    )
    act = Activity(
        channel="field_visit",
        status="saved",
        owner_id=world["users"]["admin"].id,
        account_id=world["other"].id,
        start_at=datetime.now(UTC),
        product_ids=[],
        key_messages=[],
        notes="south-only notes",
    )
    session.add(act)
    session.flush()
    for hcp in (world["other"], world["own"]):
        session.add(
            Attendee(
                activity_id=act.id, account_id=hcp.id, start_at=act.start_at, channel="field_visit"
            )
        )
    session.flush()
    h = api_headers(client, world["users"]["rep"])
    items = client.get(f"/api/v1/accounts/{world['own'].id}/timeline", headers=h).json()["items"]
    assert act.id not in [i["id"] for i in items]
    assert client.get(f"/api/v1/activities/{act.id}", headers=h).status_code == 404
    ha = api_headers(client, world["users"]["admin"])
    items = client.get(f"/api/v1/accounts/{world['own'].id}/timeline", headers=ha).json()["items"]
    assert act.id in [i["id"] for i in items]
