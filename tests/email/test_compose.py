"""Composing approved email: only the template's tokens, filled by the server; the gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parcours.consent import service as consent
from parcours.content import review as content_review
from parcours.core.errors import Conflict, Invalid
from parcours.core.settings import get_settings
from parcours.email import service, templating

from content_factories import acting, approved_version, build_mlr, upload_version
from email_factories import PHRASES, TEMPLATE, approved_email_template, make_template


@pytest.fixture
def world(session):
    mlr = build_mlr(session)
    mlr.hcp.emails = ["anne.martin@chu-lille.fr"]
    text = consent.add_text(
        session, mlr.marketing, "email-optin", "en", "I agree to receive emails from the lab."
    )
    return mlr, text


def opt(session, mlr, text, status="opted_in", **scope):
    with acting(session, mlr.rep):
        return consent.capture(
            session,
            mlr.rep,
            mlr.hcp.id,
            channel="email",
            status=status,
            source="web_form",
            text_id=text.id if status == "opted_in" else None,
            **scope,
        )


def values(deck=None, **over):
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    out = {"phrase": PHRASES[0], "date": day}
    if deck is not None:
        out["content_version_id"] = deck.id
    return {**out, **over}


def test_the_rep_fills_only_the_tokens_and_the_server_fills_the_rest(session, world):
    mlr, text = world
    opt(session, mlr, text)
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)
    with acting(session, mlr.rep):
        message = service.send(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
    assert message.state == "queued" and message.to_address == "anne.martin@chu-lille.fr"
    assert PHRASES[0] in message.html and "{{" not in message.html
    assert mlr.rep.full_name in message.html and mlr.hcp.last_name in message.html
    assert "/u/" in message.text and "/t/c/" in message.text  # plain-text alternative
    assert "/t/o/" in message.html  # open pixel


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"body": "Hello, free text"}, "body"),
        ({"subject": "Buy now"}, "subject"),
        ({"phrase": "A claim nobody approved"}, "phrase"),
        ({"date": "2001-01-01"}, "date"),
        ({"date": "soon"}, "date"),
    ],
)
def test_anything_else_is_refused_whatever_the_browser_sends(session, world, raw, field):
    mlr, text = world
    opt(session, mlr, text)
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)
    with pytest.raises(Invalid) as exc, acting(session, mlr.rep):
        service.send(session, mlr.rep, mlr.hcp.id, template.id, {**values(deck), **raw})
    assert exc.value.errors[0]["field"] == field


def test_a_link_only_to_approved_content(session, world):
    mlr, text = world
    opt(session, mlr, text)
    template = approved_email_template(session, mlr)
    draft = upload_version(session, mlr, pages=1)
    with pytest.raises(Invalid) as exc, acting(session, mlr.rep):
        service.send(session, mlr.rep, mlr.hcp.id, template.id, values(draft))
    assert exc.value.errors[0]["field"] == "content_version_id"


def test_each_gate_names_its_rule(session, world, monkeypatch):
    mlr, text = world
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)

    def refused():
        with pytest.raises(Conflict) as exc, acting(session, mlr.rep):
            service.send(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
        return exc.value.errors[0]["field"], exc.value.detail

    assert refused() == ("consent", "No consent recorded for this channel.")
    opt(session, mlr, text)
    monkeypatch.setattr(get_settings(), "email_cap_count", 1)
    with acting(session, mlr.rep):
        service.send(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
    assert refused()[0] == "frequency"
    monkeypatch.setattr(get_settings(), "email_cap_count", 10)
    opt(session, mlr, text, status="opted_out")
    assert refused() == ("consent", "The HCP opted out of this channel.")
    opt(session, mlr, text)
    with acting(session, mlr.admin):
        content_review.withdraw(session, mlr.admin, template.id, "Outdated claim")
    # a withdrawn template is not even offered any more
    assert template not in service.templates_for(session, mlr.rep)
    account = session.get(type(mlr.hcp), mlr.hcp.id)
    assert [r.rule for r in service.gates(session, account, template)] == ["template"]


def test_quiet_hours_delay_to_eight_in_the_hcps_time_zone(session, world):
    mlr, _ = world
    mlr.hcp.country = "FR"
    late = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # 22:30 in Paris
    at = service.next_send_time(mlr.hcp, late)
    assert at == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    day = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert service.next_send_time(mlr.hcp, day) == day


@pytest.mark.parametrize(
    "html, message",
    [
        (TEMPLATE.replace("{{ phrase }}", "{{ free_text }}"), "not a token"),
        (TEMPLATE.replace("{{ unsubscribe_link }}", "#"), "unsubscribe"),
        (TEMPLATE.replace("</body>", "<script>x()</script></body>"), "scripts"),
        (TEMPLATE.replace("{{ phrase }}", "{% if x %}"), "braces"),
    ],
)
def test_a_template_with_free_text_tokens_or_scripts_is_refused_at_upload(
    session, world, tmp_path, html, message
):
    mlr, _ = world
    path = make_template(tmp_path / "bad.html", html)
    with pytest.raises(Invalid, match=message):
        upload_version(session, mlr, file=path, filename="bad.html")


def test_tokens_are_escaped():
    html = templating.fill("<p>{{ recipient_name }}</p>", {"recipient_name": "<b>Dr X</b>"})
    assert html == "<p>&lt;b&gt;Dr X&lt;/b&gt;</p>"


def test_a_preview_is_the_message_without_its_open_pixel(session, world):
    mlr, text = world
    opt(session, mlr, text)
    template = approved_email_template(session, mlr)
    deck = approved_version(session, mlr, pages=1)
    shown = service.preview(session, mlr.rep, mlr.hcp.id, template.id, values(deck))
    assert "/t/o/" not in shown["html"] and PHRASES[0] in shown["html"]
    assert shown["refusals"] == []
