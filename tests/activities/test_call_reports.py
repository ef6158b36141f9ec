"""Call reports through the API: plan, save, submit, locked, amendments."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from parcours.activities.models import Activity, Amendment, Attendee
from parcours.core.models import AuditRecord

from factories import api_headers, create_hcp, create_product, create_territory_tree, create_user


def _setup(session, client):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    hcp = create_hcp(session, tree["north1"])
    product = create_product(session)
    return rep, hcp, product, api_headers(client, rep)


def _call(client, headers, hcp, product, **over):
    body = {
        "account_ids": [hcp.id],
        "channel": "field_visit",
        "start_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "status": "saved",
        "duration_min": 20,
        "outcome": "positive",
        "product_ids": [product.id],
        "key_messages": ["Efficacy"],
        **over,
    }
    return client.post("/api/v1/activities", json=body, headers=headers)


def test_submit_locks_the_call_and_edit_answers_409(session, client):
    rep, hcp, product, headers = _setup(session, client)
    resp = _call(client, headers, hcp, product)
    assert resp.status_code == 201, resp.text
    act_id = resp.json()["id"]
    resp = client.post(f"/api/v1/activities/{act_id}/submit", headers=headers)
    assert resp.status_code == 200 and resp.json()["status"] == "submitted"
    assert resp.json()["locked"] is True
    resp = client.patch(f"/api/v1/activities/{act_id}", json={"notes": "changed"}, headers=headers)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert session.get(Activity, act_id).notes is None
    # every write is on the audit trail under the rep's name
    recs = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity == "activities", AuditRecord.entity_id == str(act_id))
        .order_by(AuditRecord.seq)
    ).all()
    assert [(r.action, r.actor) for r in recs] == [("create", rep.email), ("update", rep.email)]
    assert recs[1].before["status"] == "saved" and recs[1].after["status"] == "submitted"


def test_amendment_keeps_the_original(session, client):
    rep, hcp, product, headers = _setup(session, client)
    act_id = _call(client, headers, hcp, product).json()["id"]
    client.post(f"/api/v1/activities/{act_id}/submit", headers=headers)
    resp = client.post(
        f"/api/v1/activities/{act_id}/amendments",
        json={"reason": "Wrong duration", "changes": {"duration_min": 35}},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    detail = client.get(f"/api/v1/activities/{act_id}", headers=headers).json()
    assert detail["duration_min"] == 20
    assert detail["effective"]["duration_min"] == 35
    assert [a["reason"] for a in detail["amendments"]] == ["Wrong duration"]


def test_amendment_cannot_touch_locked_fields(session, client):
    rep, hcp, product, headers = _setup(session, client)
    act_id = _call(client, headers, hcp, product).json()["id"]
    client.post(f"/api/v1/activities/{act_id}/submit", headers=headers)
    resp = client.post(
        f"/api/v1/activities/{act_id}/amendments",
        json={"reason": "x", "changes": {"account_id": 1}},
        headers=headers,
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "changes.account_id"
    assert session.scalar(select(func.count(Amendment.id))) == 0


def test_submit_names_every_missing_field(session, client):
    rep, hcp, product, headers = _setup(session, client)
    act_id = _call(
        client, headers, hcp, product, duration_min=None, outcome=None, product_ids=[]
    ).json()["id"]
    resp = client.post(f"/api/v1/activities/{act_id}/submit", headers=headers)
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json()["errors"]}
    assert fields == {"duration_min", "outcome", "product_ids"}
    assert session.get(Activity, act_id).status == "saved"


def test_future_call_cannot_be_submitted(session, client):
    rep, hcp, product, headers = _setup(session, client)
    act_id = _call(
        client, headers, hcp, product, start_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()
    ).json()["id"]
    resp = client.post(f"/api/v1/activities/{act_id}/submit", headers=headers)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "start_at"


def test_group_call_appears_on_each_attendee_timeline(session, client):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    hcps = [create_hcp(session, tree["north1"]) for _ in range(3)]
    product = create_product(session)
    headers = api_headers(client, rep)
    resp = _call(client, headers, hcps[0], product, account_ids=[h.id for h in hcps])
    assert resp.status_code == 201
    assert resp.json()["attendee_ids"] == [h.id for h in hcps]
    for h in hcps:
        items = client.get(f"/api/v1/accounts/{h.id}/timeline", headers=headers).json()["items"]
        assert [i["id"] for i in items] == [resp.json()["id"]]


def test_failed_group_call_leaves_no_partial_rows(session, client):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    mine = create_hcp(session, tree["north1"])
    other = create_hcp(session, tree["south1"])
    product = create_product(session)
    headers = api_headers(client, rep)
    before = (
        session.scalar(select(func.count(Activity.id))),
        session.scalar(select(func.count(Attendee.id))),
        session.scalar(select(func.count(AuditRecord.id))),
    )
    resp = _call(client, headers, mine, product, account_ids=[mine.id, other.id])
    assert resp.status_code == 404
    after = (
        session.scalar(select(func.count(Activity.id))),
        session.scalar(select(func.count(Attendee.id))),
        session.scalar(select(func.count(AuditRecord.id))),
    )
    assert after == before


def test_bad_inputs_get_problem_details_with_the_field(session, client):
    rep, hcp, product, headers = _setup(session, client)
    cases = [
        ({"channel": "carrier_pigeon"}, "channel"),
        ({"duration_min": -5}, "duration_min"),
        ({"product_ids": [999999]}, "product_ids"),
        ({"start_at": "not a date"}, "start_at"),
        ({"outcome": "ecstatic"}, "outcome"),
        ({"account_ids": []}, "account_ids"),
        ({"surprise": 1}, "surprise"),
    ]
    count = session.scalar(select(func.count(Activity.id)))
    for over, field in cases:
        resp = _call(client, headers, hcp, product, **over)
        assert resp.status_code == 422, (over, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in resp.json()["errors"]}, (over, resp.json())
    assert session.scalar(select(func.count(Activity.id))) == count


def test_oversized_body_is_refused(session, client):
    rep, hcp, product, headers = _setup(session, client)
    resp = _call(client, headers, hcp, product, notes="x" * 2_000_000)
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["field"] == "body"


def test_malformed_json_is_a_422(session, client):
    rep, hcp, product, headers = _setup(session, client)
    resp = client.post(
        "/api/v1/activities",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_tasks_follow_up(session, client):
    rep, hcp, product, headers = _setup(session, client)
    due = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    resp = client.post(
        "/api/v1/tasks",
        json={"title": "Send study", "due_date": due, "account_id": hcp.id},
        headers=headers,
    )
    assert resp.status_code == 201
    task_id = resp.json()["id"]
    assert [t["id"] for t in client.get("/api/v1/tasks", headers=headers).json()] == [task_id]
    resp = client.patch(f"/api/v1/tasks/{task_id}", json={"status": "done"}, headers=headers)
    assert resp.json()["status"] == "done"
    assert client.get("/api/v1/tasks", headers=headers).json() == []
    resp = client.post("/api/v1/tasks", json={"title": " ", "due_date": due}, headers=headers)
    assert resp.status_code == 422
