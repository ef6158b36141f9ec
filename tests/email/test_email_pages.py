"""Approved Email in the browser and the API: the rep's compose page, and the HCP's public
links (open pixel, click, shared content, one-click unsubscribe)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from parcours.activities.models import Activity
from parcours.consent import service as consent
from parcours.consent.models import ConsentRecord
from parcours.content import review as content_review
from parcours.content import service as content
from parcours.core.errors import Conflict
from parcours.core.i18n import translate
from parcours.email import service
from parcours.email.models import EmailMessage
from parcours.email.pages import PIXEL

from content_factories import acting, approved_version
from email_factories import PHRASES, approved_email_template
from factories import api_headers, login


class World:
    pass


@pytest.fixture
def world(session, mlr):
    mlr.hcp.emails = ["anne.martin@chu-lille.fr"]
    w = World()
    w.mlr, w.rep, w.hcp = mlr, mlr.rep, mlr.hcp
    w.text = consent.add_text(
        session, mlr.marketing, "email-optin", "en", "I agree to receive emails from the lab."
    )
    w.deck = approved_version(session, mlr, pages=2, title="Renal protection deck")
    w.template = approved_email_template(session, mlr)
    session.flush()
    return w


def opt(session, w, status="opted_in"):
    with acting(session, w.rep):
        consent.capture(
            session,
            w.rep,
            w.hcp.id,
            channel="email",
            status=status,
            source="web_form",
            text_id=w.text.id if status == "opted_in" else None,
        )


def csrf_of(html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', html).group(1)


def compose_url(w) -> str:
    return f"/accounts/{w.hcp.id}/email"


def form(w, token: str, **over) -> dict:
    data = {
        "_csrf": token,
        "template_id": str(w.template.id),
        "phrase": PHRASES[1],
        "date": (content.today() + timedelta(days=5)).isoformat(),
        "content_version_id": str(w.deck.id),
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def messages(session) -> int:
    return session.scalar(select(func.count()).select_from(EmailMessage))


def kinds(session, w, kind: str) -> int:
    return session.scalar(
        select(func.count()).where(Activity.account_id == w.hcp.id, Activity.kind == kind)
    )


def public_client(app) -> TestClient:
    """A client with no cookies at all, as a mail client or an HCP's browser."""
    return TestClient(app, base_url="http://testserver")


def sent_message(session, w) -> EmailMessage:
    """A message queued through the service and marked sent, as the worker would."""
    with acting(session, w.rep):
        message = service.send(
            session,
            w.rep,
            w.hcp.id,
            w.template.id,
            {
                "phrase": PHRASES[0],
                "date": content.today().isoformat(),
                "content_version_id": w.deck.id,
            },
        )
    message.state = "sent"
    session.flush()
    return message


# --- the rep's page ----------------------------------------------------------------------------


def test_hcp_360_offers_the_action_and_the_page_fills_and_previews(client, session, world):
    w = world
    opt(session, w)
    login(client, w.rep.email)
    assert f'href="/accounts/{w.hcp.id}/email"' in client.get(f"/accounts/{w.hcp.id}").text
    page = client.get(compose_url(w))
    assert page.status_code == 200
    html = page.text
    # the only template is chosen; only its tokens are asked for, from closed lists
    assert w.template.title in html
    assert all(f'<option value="{p}"' in unescape(html) for p in PHRASES)
    assert 'type="date"' in html and 'name="content_version_id"' in html
    assert f'<option value="{w.deck.id}"' in html and "Renal protection deck" in html
    assert "<textarea" not in html
    assert not re.search(r'<input[^>]+type="text"', html)  # no free text anywhere
    # the preview, desktop and mobile, and the plain text
    assert html.count("<iframe sandbox") == 2
    assert "frame-desktop" in html and "frame-mobile" in html
    assert 'class="plain-text"' in html and PHRASES[0] in unescape(html)
    assert 'id="refusals"' not in html
    assert re.search(r'<button type="submit" class="btn btn-primary send-btn"\s*>', html)
    # the live preview follows the rep's choice
    frag = client.post(
        f"{compose_url(w)}/preview",
        data=form(w, csrf_of(html)),
        headers={"HX-Request": "true"},
    )
    assert frag.status_code == 200
    assert PHRASES[1] in unescape(frag.text) and 'hx-swap-oob="innerHTML"' in frag.text
    assert "<html" not in frag.text[:200]


def test_send_from_the_page_queues_and_returns_to_hcp_360(client, session, world):
    w = world
    opt(session, w)
    login(client, w.rep.email)
    token = csrf_of(client.get(compose_url(w)).text)
    resp = client.post(compose_url(w), data=form(w, token), follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"/accounts/{w.hcp.id}"
    message = session.scalar(select(EmailMessage))
    assert message.state == "queued" and PHRASES[1] in message.html
    page = client.get(f"/accounts/{w.hcp.id}").text
    queued = translate(w.rep.language, "email.flash.queued")
    assert queued in page or "Email queued for" in page


@pytest.mark.parametrize("field", ["subject", "html", "body"])
def test_injected_fields_are_refused(client, session, world, field):
    w = world
    opt(session, w)
    login(client, w.rep.email)
    token = csrf_of(client.get(compose_url(w)).text)
    resp = client.post(compose_url(w), data=form(w, token, **{field: "Buy now!"}))
    assert resp.status_code == 422
    assert f"“{field}” is not something a rep fills" in resp.text
    assert messages(session) == 0


def test_a_phrase_not_in_the_list_is_refused_next_to_the_field(client, session, world):
    w = world
    opt(session, w)
    login(client, w.rep.email)
    token = csrf_of(client.get(compose_url(w)).text)
    resp = client.post(compose_url(w), data=form(w, token, phrase="Our drug cures everything."))
    assert resp.status_code == 422
    assert 'id="phrase-error"' in resp.text
    assert "Choose one of the template&#39;s approved phrases." in resp.text
    assert messages(session) == 0


def _disabled_send(html: str) -> bool:
    return bool(re.search(r'send-btn"\s*disabled aria-disabled="true"', html))


def test_no_consent_and_opt_out_are_shown_with_send_disabled(client, session, world):
    w = world
    login(client, w.rep.email)
    page = client.get(compose_url(w)).text
    assert "No consent recorded for this channel." in page and _disabled_send(page)
    resp = client.post(compose_url(w), data=form(w, csrf_of(page)))
    assert resp.status_code == 409 and "No consent recorded for this channel." in resp.text
    opt(session, w, "opted_out")
    page = client.get(compose_url(w)).text
    assert "The HCP opted out of this channel." in page and _disabled_send(page)
    assert messages(session) == 0


def test_a_withdrawn_template_says_so(client, session, world):
    w = world
    opt(session, w)
    login(client, w.rep.email)
    token = csrf_of(client.get(compose_url(w)).text)
    with acting(session, w.mlr.admin):
        content_review.withdraw(session, w.mlr.admin, w.template.id, "Outdated claim")
    resp = client.post(compose_url(w), data=form(w, token))
    assert resp.status_code == 404
    assert "This template is no longer approved and valid." in resp.text
    assert messages(session) == 0


def test_a_french_rep_reads_the_page_in_french(client, session, world):
    w = world
    w.rep.language = "fr"
    session.flush()
    login(client, w.rep.email)
    page = client.get(compose_url(w)).text
    assert "Envoyer un email approuvé" in page
    assert "Aucun consentement enregistré pour ce canal." in page


# --- the HCP's links ---------------------------------------------------------------------------


def test_open_and_click_record_once_and_show_on_the_timeline(app, client, session, world):
    w = world
    opt(session, w)
    message = sent_message(session, w)
    hcp_side = public_client(app)
    pixel = service.link("open", message.key).split("/t/o/")[1]
    for _ in range(2):
        resp = hcp_side.get(f"/t/o/{pixel}")
        assert resp.status_code == 200 and resp.content == PIXEL
        assert resp.headers["content-type"] == "image/gif"
        assert resp.headers["cache-control"] == "no-store"
    assert kinds(session, w, "opened") == 1
    bad = hcp_side.get(f"/t/o/{message.key}.0000.gif")
    assert bad.status_code == 200 and bad.content == PIXEL  # never tells a bad token apart

    click = service.link("click", message.key).split("/t/c/")[1]
    for _ in range(2):
        resp = hcp_side.get(f"/t/c/{click}", follow_redirects=False)
        assert resp.status_code == 303
        assert resp.headers["location"] == f"/shared/{service.sign('share', message.key)}"
    assert kinds(session, w, "clicked") == 1

    login(client, w.rep.email)
    timeline = client.get(f"/accounts/{w.hcp.id}").text
    for kind in ("opened", "clicked"):
        assert translate(w.rep.language, f"activity_kind.{kind}") in timeline


def test_a_tampered_click_link_is_a_404(app, session, world):
    w = world
    opt(session, w)
    message = sent_message(session, w)
    click = service.link("click", message.key).split("/t/c/")[1]
    tampered = click[:-1] + ("0" if click[-1] != "0" else "1")
    resp = public_client(app).get(f"/t/c/{tampered}", follow_redirects=False)
    assert resp.status_code == 404
    assert kinds(session, w, "clicked") == 0


def test_shared_content_is_public_read_only_and_stops_when_withdrawn(app, session, world):
    w = world
    opt(session, w)
    message = sent_message(session, w)
    hcp_side = public_client(app)
    share = service.sign("share", message.key)
    page = hcp_side.get(f"/shared/{share}")
    assert page.status_code == 200 and "Renal protection deck" in page.text
    assert f'src="/shared/{share}/pages/1.jpg"' in page.text and "<form" not in page.text
    image = hcp_side.get(f"/shared/{share}/pages/1.jpg")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert hcp_side.get(f"/shared/{share[:-1]}x").status_code == 404
    assert hcp_side.get(f"/shared/{share[:-1]}x/pages/1.jpg").status_code == 404
    with acting(session, w.mlr.admin):
        content_review.withdraw(session, w.mlr.admin, w.deck.id, "Outdated claim")
    gone = hcp_side.get(f"/shared/{share}", headers={"Accept-Language": "en"})
    assert gone.status_code == 410 and "no longer available" in gone.text
    assert hcp_side.get(f"/shared/{share}/pages/1.jpg").status_code == 404


def test_one_click_unsubscribe_without_cookies_then_sending_is_refused(app, client, session, world):
    w = world
    opt(session, w)
    w.hcp.preferred_language = "fr"
    message = sent_message(session, w)
    token = service.link("unsubscribe", message.key).split("/u/")[1]
    hcp_side = public_client(app)
    ask = hcp_side.get(f"/u/{token}")
    assert ask.status_code == 200 and "Se désinscrire des emails de parcours" in ask.text
    for _ in range(2):  # RFC 8058: what a mail client posts, no cookie, no CSRF; idempotent
        hcp_side.cookies.clear()
        resp = hcp_side.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert resp.status_code == 200 and "Vous êtes désinscrit" in resp.text
        assert "cookie" not in {k.lower() for k in resp.request.headers}
    outs = session.scalars(
        select(ConsentRecord).where(
            ConsentRecord.account_id == w.hcp.id, ConsentRecord.source == "unsubscribe"
        )
    ).all()
    assert len(outs) == 1 and outs[0].status == "opted_out"
    assert kinds(session, w, "unsubscribed") == 1
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")
    assert hcp_side.post(f"/u/{tampered}").status_code == 404
    with pytest.raises(Conflict) as refused:
        service.send(session, w.rep, w.hcp.id, w.template.id, {"phrase": PHRASES[0]})
    assert {"field": "consent", "message": "The HCP opted out of this channel."} in (
        refused.value.errors
    )
    login(client, w.rep.email)
    page = client.get(compose_url(w)).text
    assert "The HCP opted out of this channel." in page and _disabled_send(page)


# --- the API -----------------------------------------------------------------------------------


def api_body(w, **over) -> dict:
    body = {
        "template_id": w.template.id,
        "phrase": PHRASES[0],
        "date": content.today().isoformat(),
        "content_version_id": w.deck.id,
    }
    body.update(over)
    return body


def test_api_lists_previews_and_sends(client, session, world):
    w = world
    opt(session, w)
    headers = api_headers(client, w.rep)
    base = f"/api/v1/accounts/{w.hcp.id}"
    listed = client.get(f"{base}/email-templates", headers=headers).json()
    assert [t["id"] for t in listed] == [w.template.id]
    assert listed[0]["phrases"] == PHRASES and "content_link" in listed[0]["tokens"]
    preview = client.post(f"{base}/emails/preview", json=api_body(w), headers=headers)
    assert preview.status_code == 200
    assert PHRASES[0] in preview.json()["html"] and preview.json()["refusals"] == []
    sent = client.post(f"{base}/emails", json=api_body(w), headers=headers)
    assert sent.status_code == 201 and sent.json()["state"] == "queued"
    assert session.get(EmailMessage, sent.json()["id"]) is not None


@pytest.mark.parametrize("extra", [{"body": "x"}, {"subject": "x"}, {"html": "<p>x</p>"}])
def test_api_refuses_unknown_keys_and_bad_values(client, session, world, extra):
    w = world
    opt(session, w)
    headers = api_headers(client, w.rep)
    url = f"/api/v1/accounts/{w.hcp.id}/emails"
    resp = client.post(url, json=api_body(w, **extra), headers=headers)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0]["field"] == next(iter(extra))
    bad = client.post(url, json=api_body(w, phrase="Anything I like"), headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "phrase"
    assert messages(session) == 0


def test_api_refusal_is_409_naming_the_rule(client, session, world):
    w = world
    opt(session, w, "opted_out")
    headers = api_headers(client, w.rep)
    resp = client.post(f"/api/v1/accounts/{w.hcp.id}/emails", json=api_body(w), headers=headers)
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0] == {
        "field": "consent",
        "message": "The HCP opted out of this channel.",
    }
