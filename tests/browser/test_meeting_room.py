"""Remote detailing in two browsers (issue 5's test): a rep and an HCP connect peer to peer,
the HCP waits until admitted, the slide the rep shows appears on the HCP's page, a locked
meeting refuses a third person, wrong passcodes are refused then rate-limited, a removed
person cannot come back, forged and ended links are refused, and the call report is
prefilled with the real duration and slides. No request of the room leaves 127.0.0.1."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session
from test_clm import signed_in

from parcours.accounts.models import Territory
from parcours.core import audit
from parcours.core.db import make_engine
from parcours.core.models import User
from parcours.meetings import service

from content_factories import _LIGHT_HASH, MLR, approved_version
from factories import consent_to_remote_meetings, create_hcp, create_product, create_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def meeting_world(live_server):
    """Two HCPs of the live rep's territory who agreed to remote meetings, an approved
    two-page deck for France, and a meeting with both, starting now."""
    import os

    from parcours.core.settings import get_settings

    db_file = live_server["url"].split("///")[1]
    saved = {k: os.environ.get(k) for k in ("PARCOURS_CONTENT_DIR", "PARCOURS_SECRET_KEY")}
    os.environ["PARCOURS_CONTENT_DIR"] = os.path.join(os.path.dirname(db_file), "content")
    os.environ["PARCOURS_SECRET_KEY"] = "browser-test-secret"  # as the live server's
    get_settings.cache_clear()
    engine = make_engine(live_server["url"])
    try:
        with Session(engine, expire_on_commit=False) as s:
            audit.bind_actor(s, None, "test")
            rep = s.query(User).filter_by(email=live_server["rep_email"]).one()
            rep.country = "FR"
            territory = s.query(Territory).filter_by(name="Lille").one()

            def member(role, **over):
                user = create_user(s, role, language="en", **over)
                user.password_hash = _LIGHT_HASH
                return user

            guests = [
                create_hcp(s, territory, last_name=name, first_name="Hélène")
                for name in ("Visio", "Tiers")
            ]
            team = MLR(
                marketing=member("marketing"),
                admin=member("admin"),
                medical=member("reviewer", review_role="medical"),
                legal=member("reviewer", review_role="legal"),
                regulatory=member("reviewer", review_role="regulatory"),
                rep=rep,
                territory=territory,
                hcp=guests[0],
                product=create_product(s, "Remotix"),
            )
            s.flush()
            deck = approved_version(s, team, pages=2, title="Remotix remote deck")
            consent_to_remote_meetings(s, *(h.id for h in guests))
            meeting, codes = service.schedule(
                s,
                rep,
                account_ids=[h.id for h in guests],
                starts_at=datetime.now(UTC),
                duration_min=15,
                title="Remotix update",
            )
            people = service.attendees(s, meeting.id)
            links = [service.link_token(a) for a in people]
            world = {
                "meeting_id": meeting.id,
                "activity_id": meeting.activity_id,
                "deck_id": deck.id,
                "deck": deck.title,
                "links": links,
                "codes": [codes[a.id] for a in people],
                "names": [a.display_name for a in people],
            }
            s.commit()
    finally:
        engine.dispose()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
    return world


def _guest(browser, base: str, token: str, code: str, requests: list[str]):
    ctx = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/m/{token}")
    if code:
        page.get_by_label("Passcode").fill(code)
        page.get_by_role("button", name="Join the meeting").click()
    return ctx, page


def test_a_remote_detailing_call_between_two_browsers(browser, live_server, meeting_world):
    base, w = live_server["base"], meeting_world
    requests: list[str] = []
    host_ctx, host = signed_in(browser, base, live_server["rep_email"])
    guest_ctx = third_ctx = None
    try:
        host.on("request", lambda r: requests.append(r.url))
        host.goto(f"{base}/meetings/{w['meeting_id']}/room")
        expect(host.locator("#roster")).to_contain_text("Nobody is waiting")

        # the HCP opens the personal link: a wrong passcode is refused with its reason
        guest_ctx, guest = _guest(browser, base, w["links"][0], "000000", requests)
        if w["codes"][0] == "000000":
            pytest.skip("the drawn passcode is the wrong one tried here")
        expect(guest.locator("#passcode-error")).to_contain_text("not the one")
        expect(guest.get_by_text("Camera and microphone work")).to_be_visible()
        guest.get_by_label("Passcode").fill(w["codes"][0])
        guest.get_by_role("button", name="Join the meeting").click()
        expect(guest.locator("#room")).to_have_attribute("data-state", "waiting")

        # the host admits them: the browsers connect to each other
        waiting = host.locator("#roster li[data-state=waiting]")
        expect(waiting).to_contain_text(w["names"][0])
        waiting.get_by_role("button", name="Admit").click()
        expect(guest.locator("#room")).to_have_attribute("data-peers", re.compile("host:connected"))
        expect(host.locator("#room")).to_have_attribute("data-peers", re.compile(r"a\d+:connected"))

        # the slide the host shows appears on the HCP's page, then the next one
        host.get_by_label("Approved content").select_option(label=w["deck"])
        host.get_by_role("button", name="Show").click()
        expect(guest.locator("#room")).to_have_attribute("data-slide", f"{w['deck_id']}:1")
        expect(guest.locator("#slide")).to_be_visible()
        assert guest.evaluate("document.getElementById('slide').naturalWidth") > 0
        host.get_by_role("button", name="Next slide").click()
        expect(guest.locator("#room")).to_have_attribute("data-slide", f"{w['deck_id']}:2")

        # locked: the second invited HCP gets in nowhere, even with the right passcode
        host.get_by_role("button", name="Lock").click()
        expect(host.locator("#room")).to_have_attribute("data-locked", "true")
        third_ctx, third = _guest(browser, base, w["links"][1], w["codes"][1], requests)
        expect(third.locator("#room")).to_have_attribute("data-state", "locked")

        # wrong passcodes on that link: refused, then limited
        for _ in range(service.PASSCODE_TRIES):
            third.goto(f"{base}/m/{w['links'][1]}")
            third.get_by_label("Passcode").fill("99999" if w["codes"][1] != "999999" else "1")
            third.get_by_role("button", name="Join the meeting").click()
        third.get_by_label("Passcode").fill(w["codes"][1])
        third.get_by_role("button", name="Join the meeting").click()
        expect(third.get_by_text("Too many wrong passcodes for this link")).to_be_visible()

        # removed: the HCP is out, and the same link does not let them back in
        host.locator("#roster li[data-state=admitted]").get_by_role("button", name="Remove").click()
        expect(guest.locator("#room")).to_have_attribute("data-state", "removed")
        guest.goto(f"{base}/m/{w['links'][0]}")
        guest.get_by_label("Passcode").fill(w["codes"][0])
        guest.get_by_role("button", name="Join the meeting").click()
        expect(guest.get_by_text("has not let you in")).to_be_visible()

        # a forged link is refused
        forged = re.sub(r"\.[0-9a-f]{32}$", "." + "0" * 32, w["links"][0])
        assert guest.goto(f"{base}/m/{forged}").status == 404

        # the host ends the meeting: the call report has the real duration and the slides
        host.get_by_role("button", name="End for all").click()
        expect(host).to_have_url(re.compile(rf"/calls/{w['activity_id']}$"))
        expect(host.locator("body")).to_contain_text(w["deck"])
        people = host.locator("#meeting-people")
        expect(people).to_contain_text(w["names"][0])
        expect(people).to_contain_text("joined")
        assert host.get_by_label("Duration").input_value() not in ("", "0")
        # and the ended meeting's links no longer open it
        assert guest.goto(f"{base}/m/{w['links'][0]}").status == 404
    finally:
        for ctx in (host_ctx, guest_ctx, third_ctx):
            if ctx is not None:
                ctx.close()

    outside = [u for u in requests if not u.startswith((base, "data:", "blob:"))]
    assert outside == []  # nothing left 127.0.0.1
