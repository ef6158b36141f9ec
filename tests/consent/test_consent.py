"""Consent rules: latest record wins, expiry, double opt-in, capture checks, permissions, API."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from parcours.consent import service
from parcours.consent.models import ConsentRecord
from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import AuditRecord, Job

from factories import api_headers, create_hcp, create_product, create_territory_tree, create_user

TEXT = "I agree to receive scientific and promotional emails from the lab."


@pytest.fixture
def world(session):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    outsider = create_user(session, "rep", territories=[tree["south1"]])
    marketing = create_user(session, "marketing")
    hcp = create_hcp(session, tree["north1"])
    text = service.add_text(session, marketing, "email-optin", "en", TEXT)
    product = create_product(session)

    class W:
        pass

    w = W()
    w.__dict__.update(locals())
    return w


def _capture(session, w, **over):
    args = {"channel": "email", "status": "opted_in", "source": "web_form", "text_id": w.text.id}
    user = over.pop("user", w.rep)
    args.update(over)
    return service.capture(session, user, w.hcp.id, **args)


def _age(session, record, days):
    record.captured_at = record.captured_at - timedelta(days=days)
    session.flush()


def test_latest_record_wins_across_scopes(session, world):
    w = world
    first = _capture(session, w, product_id=w.product.id)
    _age(session, first, 2)
    assert service.consent_for(session, w.hcp.id, "email", w.product.id).allowed
    assert not service.consent_for(session, w.hcp.id, "email").allowed  # scoped, not global
    out = _capture(session, w, status="opted_out", text_id=None)
    _age(session, out, 1)
    refused = service.consent_for(session, w.hcp.id, "email", w.product.id)
    assert (refused.allowed, refused.reason) == (False, "opted_out")
    _capture(session, w, product_id=w.product.id, content_type="medical")
    assert service.consent_for(session, w.hcp.id, "email", w.product.id, "medical").allowed
    assert not service.consent_for(session, w.hcp.id, "email", w.product.id, "promotional").allowed
    assert service.summary(session, w.hcp.id)["email"].reason == "opted_out"
    assert service.summary(session, w.hcp.id)["sms"].reason == "none"
    assert len(service.history(session, w.rep, w.hcp.id)) == 3


def test_expired_consent_is_not_valid(session, world):
    w = world
    rec = _capture(session, w, expires_at=datetime.now(UTC) + timedelta(days=10))
    assert service.consent_for(session, w.hcp.id, "email").allowed
    later = datetime.now(UTC) + timedelta(days=11)
    decision = service.consent_for(session, w.hcp.id, "email", at=later)
    assert (decision.allowed, decision.reason, decision.record.id) == (False, "expired", rec.id)


def test_double_opt_in_is_pending_until_confirmed_once(session, world):
    w = world
    pending = _capture(session, w, double_opt_in=True, email="Dr.Claire@Hopital-Lille.FR")
    assert pending.status == "pending"
    assert pending.email == "Dr.Claire@hopital-lille.fr"
    decision = service.consent_for(session, w.hcp.id, "email")
    assert (decision.allowed, decision.reason) == (False, "pending")
    job = session.scalar(select(Job).where(Job.kind == "consent.confirmation"))
    assert job is not None and job.payload == {"record_id": pending.id}
    token = service.confirm_token(pending.id)
    confirmed = service.confirm(session, token)
    assert (confirmed.status, confirmed.source, confirmed.confirms_id) == (
        "opted_in",
        "email_confirmation",
        pending.id,
    )
    assert service.consent_for(session, w.hcp.id, "email").allowed
    again = service.confirm(session, token)  # a second click changes nothing
    assert again.id == confirmed.id
    count = session.scalar(
        select(ConsentRecord.id).where(ConsentRecord.confirms_id == pending.id).limit(2)
    )
    assert count == confirmed.id


def test_confirm_refused_after_a_newer_opt_out(session, world):
    w = world
    pending = _capture(session, w, double_opt_in=True, email="a@hopital-lille.fr")
    _age(session, pending, 1)
    _capture(session, w, status="opted_out", text_id=None)
    with pytest.raises(Conflict):
        service.confirm(session, service.confirm_token(pending.id))
    assert service.consent_for(session, w.hcp.id, "email").reason == "opted_out"


def test_confirm_refused_after_30_days(session, world):
    w = world
    pending = _capture(session, w, double_opt_in=True, email="a@hopital-lille.fr")
    _age(session, pending, 31)
    with pytest.raises(Conflict):
        service.confirm(session, service.confirm_token(pending.id))
    assert service.consent_for(session, w.hcp.id, "email").reason == "pending"


@pytest.mark.parametrize("token", ["", "abc", "1.deadbeef", "99999999.0000", "1" * 40])
def test_forged_token_is_refused(session, world, token):
    w = world
    pending = _capture(session, w, double_opt_in=True, email="a@hopital-lille.fr")
    forged = token or f"{pending.id}.{'0' * 40}"
    with pytest.raises(NotFound):
        service.confirm(session, forged)
    assert service.consent_for(session, w.hcp.id, "email").reason == "pending"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"status": "maybe"}, "status"),
        ({"source": "email_confirmation"}, "source"),
        ({"text_id": None}, "text_id"),
        ({"text_id": 999999}, "text_id"),
        ({"product_id": 999999}, "product_id"),
        ({"content_type": "training"}, "content_type"),
        ({"expires_at": datetime.now(UTC) - timedelta(days=1)}, "expires_at"),
        ({"source": "signed_in_person"}, "proof"),
        ({"proof": "x" * 2001}, "proof"),
        ({"double_opt_in": True, "status": "opted_out", "email": "a@b.fr"}, "double_opt_in"),
        ({"double_opt_in": True, "channel": "sms", "email": "a@b.fr"}, "double_opt_in"),
        ({"double_opt_in": True, "email": "not an email"}, "email"),
    ],
)
def test_capture_refuses_bad_input_with_its_field(session, world, over, field):
    w = world
    with pytest.raises(Invalid) as exc:
        _capture(session, w, **over)
    assert field in [e["field"] for e in exc.value.errors]
    assert session.scalar(select(ConsentRecord.id)) is None


def test_rep_outside_territory_gets_404_and_reviewer_cannot_capture(session, world):
    w = world
    with pytest.raises(NotFound):
        service.history(session, w.outsider, w.hcp.id)
    with pytest.raises(NotFound):
        _capture(session, w, user=w.outsider)
    reviewer = create_user(session, "reviewer")
    with pytest.raises(Forbidden):
        _capture(session, w, user=reviewer)
    with pytest.raises(Forbidden):
        service.add_text(session, w.rep, "x-text", "en", TEXT)


def test_texts_are_versioned(session, world):
    w = world
    v2 = service.add_text(session, w.marketing, "email-optin", "en", TEXT + " Version two.")
    assert v2.version == 2
    assert [t.id for t in service.texts(session) if t.code == "email-optin"] == [v2.id]


def test_capture_writes_audit_records(session, world):
    w = world
    audit.bind_actor(session, w.rep.id, w.rep.email)
    rec = _capture(session, w)
    session.flush()
    recs = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "consent_records", AuditRecord.entity_id == str(rec.id)
        )
    ).all()
    assert [(r.action, r.actor) for r in recs] == [("create", w.rep.email)]
    assert recs[0].after["status"] == "opted_in"


# ---------------------------------------------------------------- API


def test_api_capture_and_read(session, client, world):
    w = world
    headers = api_headers(client, w.rep)
    body = {"channel": "email", "status": "opted_in", "source": "web_form", "text_id": w.text.id}
    resp = client.post(f"/api/v1/accounts/{w.hcp.id}/consent", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    data = client.get(f"/api/v1/accounts/{w.hcp.id}/consent", headers=headers).json()
    assert data["summary"]["email"] == {"allowed": True, "reason": "opted_in", "record_id": rid}
    assert data["summary"]["phone"]["reason"] == "none"
    assert [r["id"] for r in data["history"]] == [rid]
    audit_row = session.scalar(
        select(AuditRecord).where(
            AuditRecord.entity == "consent_records", AuditRecord.entity_id == str(rid)
        )
    )
    assert audit_row.actor == w.rep.email


def test_api_errors_are_problem_json(session, client, world):
    w = world
    headers = api_headers(client, w.rep)
    url = f"/api/v1/accounts/{w.hcp.id}/consent"
    resp = client.post(url, json={"channel": "email", "status": "opted_in"}, headers=headers)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = {"channel": "email", "status": "opted_in", "source": "web_form", "extra": 1}
    assert client.post(url, json=body, headers=headers).status_code == 422
    body = {"channel": "email", "status": "opted_in", "source": "web_form"}
    resp = client.post(url, json=body, headers=headers)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["text_id"]
    out = api_headers(client, w.outsider)
    assert client.get(url, headers=out).status_code == 404
    assert client.post(url, json=body | {"text_id": w.text.id}, headers=out).status_code == 404
    assert client.get(url).status_code == 401


def test_api_texts(session, client, world):
    w = world
    mk = api_headers(client, w.marketing)
    resp = client.post(
        "/api/v1/consent-texts",
        json={"code": "email-optin", "language": "fr", "body": TEXT + " (FR)"},
        headers=mk,
    )
    assert resp.status_code == 201 and resp.json()["version"] == 2
    rep = api_headers(client, w.rep)
    latest = client.get("/api/v1/consent-texts", headers=rep).json()
    assert [(t["code"], t["version"]) for t in latest] == [("email-optin", 2)]
    every = client.get("/api/v1/consent-texts?all_versions=true", headers=rep).json()
    assert [t["version"] for t in every] == [2, 1]
    resp = client.post(
        "/api/v1/consent-texts",
        json={"code": "x", "language": "en", "body": TEXT},
        headers=rep,
    )
    assert resp.status_code == 403
