"""Consent pages: HCP 360 badges, the consent page and its form, texts, the public confirm link."""

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from parcours.consent import service
from parcours.consent.models import ConsentRecord
from parcours.core.models import Job

from factories import create_hcp, create_territory_tree, create_user, login

TEXT = "I agree to receive scientific and promotional emails from the lab."


@pytest.fixture
def world(session):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]])
    marketing = create_user(session, "marketing")
    hcp = create_hcp(session, tree["north1"])
    hcp.emails = ["claire.martin@hopital-lille.fr"]
    session.flush()
    text = service.add_text(session, marketing, "email-optin", "en", TEXT)

    class W:
        pass

    w = W()
    w.__dict__.update(locals())
    return w


def csrf_of(client, url):
    return re.search(r'name="_csrf" value="([^"]+)"', client.get(url).text).group(1)


def form(w, token, **over):
    data = {
        "_csrf": token,
        "channel": "email",
        "status": "opted_in",
        "source": "web_form",
        "text_id": str(w.text.id),
        "email": "claire.martin@hopital-lille.fr",
    }
    data.update(over)
    return data


def test_hcp_360_shows_consent_badges_linking_to_the_consent_page(client, session, world):
    w = world
    service.capture(
        session, w.rep, w.hcp.id, channel="phone", status="opted_out", source="web_form"
    )
    login(client, w.rep.email)
    page = client.get(f"/accounts/{w.hcp.id}").text
    assert page.count(f'href="/accounts/{w.hcp.id}/consent"') >= 6
    assert "consent-badge is-opted_out" in page and "consent-badge is-none" in page
    assert "not yet recorded" not in page


def test_capture_form_keeps_values_and_shows_errors_then_records(client, session, world):
    w = world
    login(client, w.rep.email)
    url = f"/accounts/{w.hcp.id}/consent"
    token = csrf_of(client, url)
    page = client.get(url).text
    assert 'value="claire.martin@hopital-lille.fr"' in page  # prefilled from the HCP
    resp = client.post(url, data=form(w, token, text_id="", proof="REF-42"))
    assert resp.status_code == 422
    assert 'id="text_id-error"' in resp.text and "consent text the HCP was shown" in resp.text
    assert 'value="REF-42"' in resp.text
    resp = client.post(url, data=form(w, token, expires_at="31/12/2099"))
    assert resp.status_code == 422 and 'id="expires_at-error"' in resp.text
    resp = client.post(url, data=form(w, token, proof="REF-42"), follow_redirects=False)
    assert resp.status_code == 303
    page = client.get(url).text
    assert "REF-42" in page and "email-optin v1" in page and TEXT in page
    assert w.rep.full_name in page
    assert service.consent_for(session, w.hcp.id, "email").allowed


def test_double_opt_in_from_the_form_queues_the_email(client, session, world):
    w = world
    login(client, w.rep.email)
    url = f"/accounts/{w.hcp.id}/consent"
    token = csrf_of(client, url)
    resp = client.post(url, data=form(w, token, double_opt_in="1"), follow_redirects=False)
    assert resp.status_code == 303
    record = session.scalar(select(ConsentRecord).where(ConsentRecord.account_id == w.hcp.id))
    assert record.status == "pending"
    assert session.scalar(select(Job).where(Job.kind == "consent.confirmation")) is not None
    assert "Pending confirmation" in client.get(url).text


def test_french_user_sees_french_errors(client, session, world):
    w = world
    fr_rep = create_user(session, "rep", language="fr", territories=[w.tree["north1"]])
    login(client, fr_rep.email)
    url = f"/accounts/{w.hcp.id}/consent"
    resp = client.post(url, data=form(w, csrf_of(client, url), source="import"))
    assert resp.status_code == 422 and "Indiquez où se trouve la preuve" in resp.text


def test_reviewer_cannot_capture_and_rep_cannot_write_texts(client, session, world):
    w = world
    reviewer = create_user(session, "reviewer")
    login(client, reviewer.email)
    token = csrf_of(client, "/")
    resp = client.post(f"/accounts/{w.hcp.id}/consent", data=form(w, token))
    assert resp.status_code in (403, 404)
    assert session.scalar(select(ConsentRecord.id)) is None
    client.post("/logout", data={"_csrf": token})
    login(client, w.rep.email)
    assert client.get("/consent/texts").status_code == 403


def test_marketing_adds_a_new_text_version(client, session, world):
    w = world
    login(client, w.marketing.email)
    token = csrf_of(client, "/consent/texts")
    resp = client.post(
        "/consent/texts",
        data={"_csrf": token, "code": "email-optin", "language": "en", "body": "short"},
    )
    assert resp.status_code == 422 and 'id="body-error"' in resp.text
    data = {"_csrf": token, "code": "email-optin", "language": "fr", "body": TEXT + " (v2)"}
    resp = client.post("/consent/texts", data=data, follow_redirects=False)
    assert resp.status_code == 303
    page = client.get("/consent/texts").text
    assert "v2" in page and "v1" in page


def test_public_confirmation_link_in_the_hcps_language(app, session, world):
    w = world
    pending = service.capture(
        session,
        w.rep,
        w.hcp.id,
        channel="email",
        status="opted_in",
        source="web_form",
        text_id=w.text.id,
        email="claire.martin@hopital-lille.fr",
        double_opt_in=True,
    )
    url = f"/consent/confirm/{service.confirm_token(pending.id)}"
    with TestClient(app) as stranger:  # no session, no CSRF token
        fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
        page = stranger.get(url, headers=fr)
        assert page.status_code == 200 and "Je confirme" in page.text
        resp = stranger.post(url, headers=fr)
        assert resp.status_code == 200 and "Votre consentement est confirmé" in resp.text
        assert service.consent_for(session, w.hcp.id, "email").allowed
        again = stranger.post(url, headers={"Accept-Language": "en"})
        assert again.status_code == 200 and "Your consent is confirmed" in again.text
        bad = stranger.post(url + "0", headers={"Accept-Language": "en"})
        assert bad.status_code == 404 and "not valid" in bad.text
        assert stranger.get("/consent/confirm/nonsense").status_code == 404


def test_confirmation_link_refused_after_opt_out_or_30_days(app, session, world):
    w = world
    args = dict(
        channel="email",
        status="opted_in",
        source="web_form",
        text_id=w.text.id,
        email="claire.martin@hopital-lille.fr",
        double_opt_in=True,
    )
    old = service.capture(session, w.rep, w.hcp.id, **args)
    old.captured_at -= timedelta(days=31)
    session.flush()
    with TestClient(app) as stranger:
        resp = stranger.get(
            f"/consent/confirm/{service.confirm_token(old.id)}", headers={"Accept-Language": "en"}
        )
        assert resp.status_code == 409 and "expired" in resp.text
        resp = stranger.post(
            f"/consent/confirm/{service.confirm_token(old.id)}", headers={"Accept-Language": "en"}
        )
        assert resp.status_code == 409 and "expired" in resp.text
        recent = service.capture(session, w.rep, w.hcp.id, **args)
        recent.captured_at -= timedelta(minutes=5)
        session.flush()
        service.capture(
            session, w.rep, w.hcp.id, channel="email", status="opted_out", source="web_form"
        )
        resp = stranger.post(
            f"/consent/confirm/{service.confirm_token(recent.id)}",
            headers={"Accept-Language": "en"},
        )
        assert resp.status_code == 409 and "newer choice" in resp.text
    assert service.consent_for(session, w.hcp.id, "email").reason == "opted_out"
