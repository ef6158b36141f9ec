"""Approved Email end to end (issue 4's "done when"): a rep in Chromium sends an approved
invitation to an HCP who opted in; the worker sends it to a real SMTP server, signed and with
one-click unsubscribe; its open and click show on the timeline; the HCP unsubscribes with one
click and the rep's next send is refused with the reason shown."""

from __future__ import annotations

import os
import re
import time
from email import message_from_bytes, policy

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session
from test_clm import serious_axe_violations, signed_in

from parcours.accounts.models import Account, Territory
from parcours.consent import service as consent
from parcours.core import audit
from parcours.core.db import make_engine
from parcours.core.models import User
from parcours.core.settings import get_settings

from content_factories import _LIGHT_HASH, MLR, acting, approved_version
from email_factories import PHRASES, approved_email_template
from factories import create_product, create_user

pytestmark = pytest.mark.browser

HCP_EMAIL = "marie.dupont@chu-lille.fr"


@pytest.fixture(scope="module")
def email_world(live_server):
    """In the live database, through the services: an MLR team, an approved deck and an
    approved invitation template for France, and Dr Dupont opted in to email."""
    db_file = live_server["url"].split("///")[1]
    saved = os.environ.get("PARCOURS_CONTENT_DIR")
    os.environ["PARCOURS_CONTENT_DIR"] = str(os.path.join(os.path.dirname(db_file), "content"))
    get_settings.cache_clear()
    engine = make_engine(live_server["url"])
    try:
        with Session(engine, expire_on_commit=False) as s:
            audit.bind_actor(s, None, "test")
            rep = s.query(User).filter_by(email=live_server["rep_email"]).one()
            rep.country = "FR"  # content and templates are offered by market
            hcp = s.get(Account, live_server["hcp_id"])
            hcp.emails = [HCP_EMAIL]
            hcp.preferred_language = "en"

            def member(role, **over):
                user = create_user(s, role, language="en", **over)
                user.password_hash = _LIGHT_HASH
                return user

            team = MLR(
                marketing=member("marketing", full_name="Mia Marketing"),
                admin=member("admin", full_name="Ada Admin"),
                medical=member("reviewer", review_role="medical"),
                legal=member("reviewer", review_role="legal"),
                regulatory=member("reviewer", review_role="regulatory"),
                rep=rep,
                territory=s.query(Territory).first(),
                hcp=hcp,
                product=create_product(s, "Nephrolia"),
            )
            s.flush()
            deck = approved_version(s, team, pages=2, title="Nephrolia renal data")
            template = approved_email_template(s, team, title="Invitation to a meeting")
            text = consent.add_text(
                s, team.marketing, "email-live", "en", "I agree to receive emails from the lab."
            )
            with acting(s, rep):
                consent.capture(
                    s,
                    rep,
                    hcp.id,
                    channel="email",
                    status="opted_in",
                    source="web_form",
                    text_id=text.id,
                )
            s.commit()
            world = {"deck": deck.title, "template": template.title, "hcp_id": hcp.id}
    finally:
        engine.dispose()
        if saved is None:
            os.environ.pop("PARCOURS_CONTENT_DIR", None)
        else:
            os.environ["PARCOURS_CONTENT_DIR"] = saved
        get_settings.cache_clear()
    return world


def wait_for_mail(mailbox, address: str, count: int = 1, timeout: float = 30) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = mailbox.raw_to(address)
        if len(raw) >= count:
            return raw
        time.sleep(0.2)
    pytest.fail(f"the worker did not send the email to {address} in {timeout} s")


def test_rep_sends_an_approved_invitation_tracked_until_the_hcp_unsubscribes(
    browser, live_server, live_smtp, live_dkim, email_world
):
    base, hcp_id = live_server["base"], email_world["hcp_id"]
    ctx, page = signed_in(browser, base, live_server["rep_email"])
    try:
        # HCP 360 → the approved email page: choose the template, fill only its tokens
        page.goto(f"{base}/accounts/{hcp_id}")
        page.get_by_role("link", name="Send approved email").click()
        expect(page).to_have_url(re.compile(rf"/accounts/{hcp_id}/email"))
        page.get_by_role("link", name=re.compile(email_world["template"])).click()
        expect(page.get_by_label("Approved phrase")).to_be_visible()
        assert page.locator("textarea, input[type=text]").count() == 0  # no free text
        page.get_by_label("Approved phrase").select_option(PHRASES[1])
        page.get_by_label("Approved content to link").select_option(label=email_world["deck"])
        desktop = page.frame_locator("iframe[title^='Desktop']")
        expect(desktop.get_by_text(PHRASES[1])).to_be_visible()  # live preview (HTMX)
        expect(page.locator("iframe[title^='Mobile']")).to_have_attribute("sandbox", "")
        expect(page.locator(".plain-text")).to_contain_text(PHRASES[1])
        assert serious_axe_violations(page) == []
        page.get_by_role("button", name="Send").click()
        expect(page).to_have_url(re.compile(rf"/accounts/{hcp_id}$"))
        expect(page.locator(".toast")).to_contain_text("Email queued")

        # the worker sends it to the SMTP server: signed, with one-click unsubscribe
        raw = wait_for_mail(live_smtp, HCP_EMAIL)[0]
        mail = message_from_bytes(raw, policy=policy.default)
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = re.fullmatch(r"<(.+)>", mail["List-Unsubscribe"].strip()).group(1)
        assert unsubscribe.startswith(f"{base}/u/")
        if live_dkim:
            import dkim

            def dns(name, timeout=5):
                wanted = f"{live_dkim['selector']}._domainkey.{live_dkim['domain']}"
                if name.decode().rstrip(".") == wanted:
                    return f"v=DKIM1; k=rsa; p={live_dkim['public_b64']}".encode()
                return b""

            assert mail["DKIM-Signature"] and dkim.verify(raw, dnsfunc=dns)
        html = mail.get_body(("html",)).get_content()
        assert PHRASES[1] in html

        # the HCP's mail client loads the pixel; the HCP follows the link in their browser
        pixel = re.search(r'src="([^"]+/t/o/[^"]+\.gif)"', html).group(1)
        assert httpx.get(pixel).headers["content-type"] == "image/gif"
        click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
        hcp_ctx = browser.new_context(locale="en-GB")
        hcp_page = hcp_ctx.new_page()
        hcp_page.goto(click)
        expect(hcp_page).to_have_url(re.compile(r"/shared/"))
        expect(hcp_page.get_by_role("heading", name=email_world["deck"])).to_be_visible()
        expect(hcp_page.get_by_role("img", name="Page 1")).to_be_visible()
        hcp_ctx.close()

        # the rep sees sent, opened and clicked on the HCP's timeline
        page.goto(f"{base}/accounts/{hcp_id}?channel=email")
        timeline = page.locator("#timeline")
        for kind in ("Sent", "Opened", "Clicked"):
            expect(timeline.get_by_text(kind, exact=True).first).to_be_visible()

        # one click (RFC 8058): what a mail client posts, with no cookie and no CSRF token
        resp = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert resp.status_code == 200

        # the rep's next send is refused, with the reason shown and Send disabled
        page.goto(f"{base}/accounts/{hcp_id}/email")
        page.get_by_role("link", name=re.compile(email_world["template"])).click()
        expect(page.locator("#refusals")).to_contain_text("The HCP opted out of this channel.")
        expect(page.get_by_role("button", name="Send")).to_be_disabled()
        page.goto(f"{base}/accounts/{hcp_id}?channel=email")
        expect(page.locator("#timeline").get_by_text("Unsubscribed").first).to_be_visible()
    finally:
        ctx.close()
