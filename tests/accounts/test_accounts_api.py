"""Account search, HCP detail and timeline through the API."""

from datetime import UTC, datetime, timedelta

from parcours.accounts.models import Affiliation
from parcours.activities.models import Activity, Attendee

from factories import api_headers, create_hco, create_hcp, create_territory_tree, create_user


def _world(session):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    return tree, rep


def test_search_by_prefix_specialty_city_and_cursor(session, client):
    tree, rep = _world(session)
    for i, (name, spec, city) in enumerate(
        [
            ("Dupont", "Cardiology", "Lille"),
            ("Dupond", "Cardiology", "Lille"),
            ("Dupuis", "Oncology", "Lille"),
            ("Dürer", "Cardiology", "Roubaix"),
            ("Martin", "Cardiology", "Lille"),
        ]
    ):
        create_hcp(
            session, tree["north1"], last_name=name, first_name=f"A{i}", specialty=spec, city=city
        )
    h = api_headers(client, rep)
    resp = client.get(
        "/api/v1/accounts",
        params={"q": "dup", "specialty": "Cardiology", "city": "lille"},
        headers=h,
    ).json()
    assert [a["last_name"] for a in resp["items"]] == ["Dupond", "Dupont"]
    # accents and case do not matter
    resp = client.get("/api/v1/accounts", params={"q": "DUR"}, headers=h).json()
    assert [a["last_name"] for a in resp["items"]] == ["Dürer"]
    # cursor pagination walks every match exactly once
    seen, cursor = [], None
    while True:
        params = {"q": "d", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/accounts", params=params, headers=h).json()
        seen += [a["last_name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["Dupond", "Dupont", "Dupuis", "Dürer"]


def test_bad_search_parameters(session, client):
    tree, rep = _world(session)
    h = api_headers(client, rep)
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"kind": "robot"}, "kind"),
        ({"territory_id": 999999}, "territory_id"),
    ):
        resp = client.get("/api/v1/accounts", params=params, headers=h)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.json()["errors"][0]["field"] == field


def test_detail_with_affiliations_and_timeline_newest_first(session, client):
    tree, rep = _world(session)
    hcp = create_hcp(session, tree["north1"])
    hco = create_hco(session, tree["north1"])
    session.add(
        Affiliation(hcp_id=hcp.id, hco_id=hco.id, role="Head of cardiology", is_primary=True)
    )
    now = datetime.now(UTC)
    ids = []
    for days, channel in ((5, "email"), (1, "phone"), (3, "field_visit")):
        act = Activity(
            channel=channel,
            status="submitted",
            owner_id=rep.id,
            account_id=hcp.id,
            start_at=now - timedelta(days=days),
            product_ids=[],
            key_messages=[],
        )
        session.add(act)
        session.flush()
        session.add(
            Attendee(activity_id=act.id, account_id=hcp.id, start_at=act.start_at, channel=channel)
        )
        ids.append((days, act.id))
    session.flush()
    h = api_headers(client, rep)
    detail = client.get(f"/api/v1/accounts/{hcp.id}", headers=h).json()
    assert detail["affiliations"][0]["display_name"] == "CHU Lille"
    assert detail["addresses"][0]["is_primary"] is True
    items = client.get(f"/api/v1/accounts/{hcp.id}/timeline", headers=h).json()["items"]
    assert [i["channel"] for i in items] == ["phone", "field_visit", "email"]
    page1 = client.get(f"/api/v1/accounts/{hcp.id}/timeline", params={"limit": 2}, headers=h).json()
    page2 = client.get(
        f"/api/v1/accounts/{hcp.id}/timeline",
        params={"limit": 2, "cursor": page1["next_cursor"]},
        headers=h,
    ).json()
    assert [i["channel"] for i in page1["items"] + page2["items"]] == [
        "phone",
        "field_visit",
        "email",
    ]
    assert page2["next_cursor"] is None
    only = client.get(
        f"/api/v1/accounts/{hcp.id}/timeline", params={"channel": "email"}, headers=h
    ).json()["items"]
    assert [i["channel"] for i in only] == ["email"]
    bad = client.get(f"/api/v1/accounts/{hcp.id}/timeline", params={"channel": "fax"}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "channel"


def test_territory_tree_rules(session, client):
    tree, _ = _world(session)
    admin = create_user(session, "admin")
    h = api_headers(client, admin)
    resp = client.post(
        "/api/v1/territories",
        headers=h,
        json={"code": "T-X", "name": "Orphan", "level": "territory", "country": "FR"},
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "parent_id"
    resp = client.post(
        "/api/v1/territories",
        headers=h,
        json={
            "code": "T-Y",
            "name": "Upside",
            "level": "region",
            "parent_id": tree["north1"].id,
            "country": "FR",
        },
    )
    assert resp.status_code == 422
    resp = client.post(
        "/api/v1/territories",
        headers=h,
        json={
            "code": "T-Z",
            "name": "Douai",
            "level": "territory",
            "parent_id": tree["north"].id,
            "country": "FR",
        },
    )
    assert resp.status_code == 201
    dup = client.post(
        "/api/v1/territories",
        headers=h,
        json={
            "code": "T-Z",
            "name": "Douai 2",
            "level": "territory",
            "parent_id": tree["north"].id,
            "country": "FR",
        },
    )
    assert dup.status_code == 409


def test_alignment_grants_and_removal_revokes_access(session, client):
    tree, rep = _world(session)
    admin = create_user(session, "admin")
    far = create_hcp(session, tree["south2"], last_name="Lointain")
    ha, hr = api_headers(client, admin), api_headers(client, rep)
    assert client.get(f"/api/v1/accounts/{far.id}", headers=hr).status_code == 404
    resp = client.post(
        "/api/v1/alignments/users",
        headers=ha,
        json={"user_id": rep.id, "territory_id": tree["south2"].id},
    )
    assert resp.status_code == 201
    assert client.get(f"/api/v1/accounts/{far.id}", headers=hr).status_code == 200
    again = client.post(
        "/api/v1/alignments/users",
        headers=ha,
        json={"user_id": rep.id, "territory_id": tree["south2"].id},
    )
    assert again.status_code == 409
    assert (
        client.delete(f"/api/v1/alignments/users/{resp.json()['id']}", headers=ha).status_code
        == 204
    )
    assert client.get(f"/api/v1/accounts/{far.id}", headers=hr).status_code == 404
