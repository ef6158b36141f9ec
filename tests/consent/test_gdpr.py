"""GDPR: export all held on one HCP, erase them, and keep the audit chain verifiable."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from parcours.accounts import service as accounts
from parcours.accounts.models import Account, Address, Identifier
from parcours.activities.models import Activity, Attendee
from parcours.consent import gdpr, service
from parcours.consent.models import ConsentRecord
from parcours.core import audit
from parcours.core.errors import Forbidden, Invalid
from parcours.core.models import AuditRecord

from factories import create_hcp, create_territory_tree, create_user

BODY = "I agree to receive scientific information from the lab by email."


def _call(session, owner, hcp, notes: str, status: str = "submitted") -> Activity:
    act = Activity(
        channel="field",
        status=status,
        owner_id=owner.id,
        account_id=hcp.id,
        start_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
        notes=notes,
        submitted_at=datetime(2026, 3, 2, 10, tzinfo=UTC) if status == "submitted" else None,
    )
    session.add(act)
    session.flush()
    session.add(
        Attendee(activity_id=act.id, account_id=hcp.id, start_at=act.start_at, channel="field")
    )
    session.flush()
    return act


@pytest.fixture
def world(session):
    tree = create_territory_tree(session)
    admin = create_user(session, "admin")
    rep = create_user(session, "rep", territories=[tree["north1"]])
    marketing = create_user(session, "marketing")
    hcp = create_hcp(session, tree["north1"], last_name="Zorglubeau", first_name="Anne")
    other = create_hcp(session, tree["north1"], last_name="Quintavalle", first_name="Paul")
    for acc, value in ((hcp, "10101010101"), (other, "20202020202")):
        session.add(Identifier(account_id=acc.id, system="rpps", value=value))
    consent_text = service.add_text(session, marketing, "email-optin", "en", BODY)
    for acc, email in ((hcp, "anne.zorglubeau@chu-lille.fr"), (other, "paul@chu-lille.fr")):
        service.capture(
            session,
            rep,
            acc.id,
            channel="email",
            status="opted_in",
            source="web_form",
            text_id=consent_text.id,
            email=email,
            double_opt_in=True,
        )
    service.capture(session, rep, hcp.id, channel="phone", status="opted_out", source="web_form")
    call = _call(session, rep, hcp, "Dr Zorglubeau asked about dosing in renal failure.")
    other_call = _call(session, rep, other, "Dr Quintavalle prefers mornings.")
    session.flush()
    return {
        "admin": admin,
        "rep": rep,
        "hcp": hcp,
        "other": other,
        "call": call,
        "other_call": other_call,
    }


def test_the_export_holds_the_hcps_data_and_nothing_of_another(session, world):
    hcp = world["hcp"]
    data = gdpr.export_hcp(session, world["admin"], hcp.id)
    dumped = json.dumps(data)  # JSON-ready as it is
    assert data["account"]["last_name"] == "Zorglubeau"
    assert [i["value"] for i in data["identifiers"]] == ["10101010101"]
    assert len(data["addresses"]) == 1 and len(data["territories"]) == 1
    assert {c["channel"] for c in data["consent_records"]} == {"email", "phone"}
    assert [t["body"] for t in data["consent_texts"]] == [BODY]
    assert [a["id"] for a in data["activities"]] == [world["call"].id]
    assert data["activities"][0]["amendments"] == []
    assert {r["entity"] for r in data["audit_records"]} >= {
        "accounts",
        "account_identifiers",
        "addresses",
        "consent_records",
    }
    for foreign in ("Quintavalle", "20202020202", "paul@chu-lille.fr", "mornings"):
        assert foreign not in dumped
    note = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert (note.entity, note.entity_id, note.note) == ("accounts", str(hcp.id), "gdpr export")


def test_erasure_pseudonymises_and_leaves_no_personal_data_in_the_trail(session, world):
    hcp, admin = world["hcp"], world["admin"]
    gdpr.export_hcp(session, admin, hcp.id)  # the export's own record is about them too
    gdpr.erase_hcp(session, admin, hcp.id, "Request #2026-41 received by post")
    session.expire_all()

    erased = session.get(Account, hcp.id)
    assert erased.last_name == f"Erased HCP {hcp.id}" and erased.first_name is None
    assert erased.emails == [] and erased.phones == [] and erased.status == "erased"
    assert "zorglubeau" not in erased.search_name
    assert (
        session.scalar(
            select(Account.id).where(Account.id == hcp.id, accounts.readable(session, admin))
        )
        is None
    )
    for model in (Identifier, Address):
        assert session.scalars(select(model).where(model.account_id == hcp.id)).all() == []
    records = session.scalars(select(ConsentRecord).where(ConsentRecord.account_id == hcp.id)).all()
    assert len(records) == 2 and {r.email for r in records} == {None}
    # the opt-out history still speaks: the HCP stays out of reach
    assert service.consent_for(session, hcp.id, "phone").reason == "opted_out"
    assert session.get(Activity, world["call"].id).notes is None
    assert session.get(Activity, world["other_call"].id).notes is not None

    trail = session.execute(
        text("SELECT before, after, note FROM audit_records ORDER BY seq")
    ).all()
    dumped = json.dumps([[str(v) for v in row] for row in trail])
    for personal in ("Zorglubeau", "zorglubeau", "10101010101", "anne.zorglubeau@chu-lille.fr"):
        assert personal not in dumped
    assert "Quintavalle" in dumped  # another HCP's trail is untouched

    result = audit.verify(session)
    count, problems = result
    assert problems == [] and count > 10
    assert result.redacted > 5
    erasure = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert erasure.action == "erase" and "Request #2026-41" in erasure.note
    assert len(erasure.after["redacted_seqs"]) == result.redacted


def test_verify_still_catches_tampering_after_an_erasure(session, world):
    gdpr.erase_hcp(session, world["admin"], world["hcp"].id, "Request #7")
    victim = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "accounts",
            AuditRecord.entity_id == str(world["other"].id),
        )
    ).first()
    # an unredacted record whose payload is changed, and one marked redacted without an erasure
    session.execute(
        text("UPDATE audit_records SET after = :a WHERE id = :id"),
        {"a": json.dumps({"last_name": "Forged"}), "id": victim.id},
    )
    other_victim = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "account_identifiers", AuditRecord.redacted.is_(False)
        )
    ).first()
    session.execute(
        text("UPDATE audit_records SET redacted = :t WHERE id = :id"),
        {"t": True, "id": other_victim.id},
    )
    session.expire_all()
    _, problems = audit.verify(session)
    reasons = {p.seq: p.reason for p in problems}
    assert "altered" in reasons[victim.seq]
    assert "without an erasure" in reasons[other_victim.seq]


def test_only_admins_export_or_erase(session, world):
    for user in (world["rep"], create_user(session, "manager"), create_user(session, "marketing")):
        with pytest.raises(Forbidden):
            gdpr.export_hcp(session, user, world["hcp"].id)
        with pytest.raises(Forbidden):
            gdpr.erase_hcp(session, user, world["hcp"].id, "Request #1")
    assert session.get(Account, world["hcp"].id).status == "active"


def test_an_erasure_needs_a_reason(session, world):
    for reason in ("", "   ", None):
        with pytest.raises(Invalid):
            gdpr.erase_hcp(session, world["admin"], world["hcp"].id, reason)
    assert session.get(Account, world["hcp"].id).last_name == "Zorglubeau"


def test_gdpr_through_the_api(session, client, world):
    from factories import api_headers

    hcp = world["hcp"]
    rep_headers = api_headers(client, world["rep"])
    assert (
        client.get(f"/api/v1/accounts/{hcp.id}/gdpr-export", headers=rep_headers).status_code == 403
    )
    admin_headers = api_headers(client, world["admin"])
    export = client.get(f"/api/v1/accounts/{hcp.id}/gdpr-export", headers=admin_headers)
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment")
    assert "Zorglubeau" in export.text and "Quintavalle" not in export.text
    no_reason = client.post(
        f"/api/v1/accounts/{hcp.id}/gdpr-erase", headers=admin_headers, json={"reason": ""}
    )
    assert no_reason.status_code == 422
    erased = client.post(
        f"/api/v1/accounts/{hcp.id}/gdpr-erase", headers=admin_headers, json={"reason": "REQ-42"}
    )
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert client.get(f"/api/v1/accounts/{hcp.id}", headers=rep_headers).status_code == 404
    count, problems = audit.verify(session)
    assert problems == []
