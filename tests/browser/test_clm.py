"""The CLM story end to end in headless Chromium: a deck is uploaded, rendered, signed by MLR,
presented in a call on a tablet (keys, a swipe, a reaction, a slide while offline), the call is
prefilled and submitted, and marketing sees the statistics."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.content.models import SlideView
from parcours.content.service import today
from parcours.core.db import make_engine

from factories import PASSWORD, ROOT

pytestmark = pytest.mark.browser

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
TABLET = {"width": 1024, "height": 768}


def make_deck(path: Path, pages: int = 4) -> Path:
    """A real landscape PDF, one coloured slide per page."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L")
    colours = [(79, 70, 229), (6, 118, 71), (180, 35, 24), (164, 75, 5)]
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.set_fill_color(*colours[(n - 1) % len(colours)])
        pdf.rect(0, 0, 297, 40, style="F")
        pdf.set_font("Helvetica", size=40)
        pdf.set_xy(20, 80)
        pdf.cell(text=f"Cardiozen - slide {n}")
    pdf.output(str(path))
    return path


def signed_in(browser, base: str, email: str, **context):
    ctx = browser.new_context(viewport=TABLET, locale="en-GB", **context)
    page = ctx.new_page()
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile("/login"))
    return ctx, page


def serious_axe_violations(page) -> list[str]:
    if not AXE.exists():
        return []
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        "async () => (await axe.run(document)).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )


def swipe_left(ctx, page) -> None:
    """A real touch swipe (touchstart, moves, touchend) across the slide, right to left."""
    box = page.locator("#stage").bounding_box()
    y = box["y"] + box["height"] / 2
    x0, x1 = box["x"] + box["width"] * 0.8, box["x"] + box["width"] * 0.2
    cdp = ctx.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y}]})
    for i in range(1, 9):
        x = x0 + (x1 - x0) * i / 8
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def slide_views(url: str, call_id: int) -> list[SlideView]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = list(
            s.scalars(
                select(SlideView).where(SlideView.activity_id == call_id).order_by(SlideView.seq)
            )
        )
    engine.dispose()
    return rows


def test_a_deck_goes_from_upload_to_a_prefilled_call_and_its_statistics(
    live_server, clm_world, browser, tmp_path
):
    base = live_server["base"]
    call_id = clm_world["call_id"]

    # --- marketing uploads a 4-page deck; the worker renders it --------------------------------
    mctx, mk = signed_in(browser, base, clm_world["marketing_email"])
    mk.goto(base + "/content/new")
    mk.get_by_label("File").set_input_files(str(make_deck(tmp_path / "cardiozen.pdf")))
    mk.get_by_label("Title").fill("Cardiozen launch deck")
    mk.get_by_role("radio", name="Promotional").check()
    mk.locator("select#language").select_option("en")
    mk.get_by_role("checkbox", name="FR", exact=True).check()
    mk.get_by_role("checkbox", name=clm_world["product"]).check()
    mk.get_by_label("Key messages").fill("Efficacy\nSafety")
    mk.get_by_label("Valid until").fill((today() + timedelta(days=365)).isoformat())
    mk.get_by_role("button", name="Upload").click()
    expect(mk).to_have_url(re.compile(r"/content/versions/\d+$"))
    version_id = int(mk.url.rsplit("/", 1)[1])
    send = mk.get_by_role("button", name="Send to review")
    expect(send).to_be_enabled(timeout=60_000)  # the page follows the worker's progress
    send.click()
    expect(mk.get_by_text("In review").first).to_be_visible()

    # --- medical, legal and regulatory each sign with their password ---------------------------
    for email in clm_world["reviewer_emails"]:
        rctx, rv = signed_in(browser, base, email)
        rv.goto(f"{base}/content/versions/{version_id}/review")
        rv.get_by_role("radio", name="Approve").check()
        rv.get_by_label("Password").fill(PASSWORD)
        rv.get_by_role("button", name="Sign", exact=True).click()
        expect(rv.get_by_text(re.compile("Signed by"))).to_be_visible()
        rctx.close()
    mk.goto(f"{base}/content/versions/{version_id}")
    expect(mk.get_by_text("Approved").first).to_be_visible()

    # --- the rep opens the planned call and presents on a tablet -------------------------------
    ctx, rep = signed_in(browser, base, live_server["rep_email"], has_touch=True)
    rep.goto(f"{base}/calls/{call_id}")
    rep.get_by_role("link", name="Present", exact=True).click()
    expect(rep).to_have_url(f"{base}/calls/{call_id}/present")
    assert serious_axe_violations(rep) == []
    rep.get_by_role("link", name=re.compile("Cardiozen launch deck")).click()
    expect(rep).to_have_url(f"{base}/present/{call_id}/{version_id}")
    player = rep.locator("#player")
    counter = rep.locator("#slide-n")
    expect(counter).to_have_text("1")
    expect(rep.locator("#slide")).to_have_attribute("src", re.compile(r"/pages/1\.jpg$"))
    assert rep.locator("#slide").evaluate("img => img.complete && img.naturalWidth > 0")
    assert serious_axe_violations(rep) == []

    rep.keyboard.press("ArrowRight")
    expect(counter).to_have_text("2")
    positive = rep.get_by_role("button", name="Positive", exact=True)
    positive.click()
    expect(positive).to_have_attribute("aria-pressed", "true")
    swipe_left(ctx, rep)
    expect(counter).to_have_text("3")
    expect(player).to_have_attribute("data-pending", "0")
    assert len(slide_views(live_server["url"], call_id)) == 2

    # one slide while the Wi-Fi is gone: kept on the tablet, and said so
    ctx.set_offline(True)
    rep.keyboard.press("PageDown")
    expect(counter).to_have_text("4")
    expect(rep.get_by_role("status").filter(has_text="Offline")).to_contain_text("1 slide kept")
    assert len(slide_views(live_server["url"], call_id)) == 2

    # back online, the first answer is lost on the way: the server has the slide, the tablet
    # does not know it, sends it again, and it still counts once
    lost = []

    def lose_answer(route):
        if lost:
            return route.continue_()
        route.fetch()
        lost.append(True)
        route.abort()

    rep.route("**/present/*/events", lose_answer)
    ctx.set_offline(False)
    expect(player).to_have_attribute("data-pending", "0", timeout=15_000)
    assert lost
    expect(rep.get_by_role("status").filter(has_text="Offline")).to_be_hidden()
    rep.unroute("**/present/*/events")
    assert len(slide_views(live_server["url"], call_id)) == 3

    # --- end of the presentation: the call report comes back prefilled -------------------------
    rep.get_by_role("button", name="End presentation").click()
    expect(rep).to_have_url(f"{base}/calls/{call_id}")
    expect(rep.get_by_text("Call report prefilled from the presentation")).to_be_visible()
    views = slide_views(live_server["url"], call_id)
    assert [v.page for v in views] == [1, 2, 3, 4]
    assert len({v.event_id for v in views}) == 4
    assert [v.reaction for v in views] == [None, "positive", None, None]
    assert all(v.duration_ms > 0 for v in views)

    expect(rep.get_by_role("checkbox", name=clm_world["product"])).to_be_checked()
    expect(rep.get_by_role("checkbox", name="Efficacy")).to_be_checked()
    expect(rep.get_by_role("checkbox", name="Safety")).to_be_checked()
    expect(rep.get_by_label("Duration (minutes)")).to_have_value("1")
    shown = rep.locator("[data-content-shown]")
    expect(shown).to_contain_text("Cardiozen launch deck")
    expect(shown).to_contain_text("4 slide(s)")
    rep.get_by_role("radio", name="Positive").check()
    rep.get_by_role("button", name="Submit", exact=True).click()
    rep.get_by_role("dialog").get_by_role("button", name="Submit and lock").click()
    expect(rep.get_by_text(re.compile("Submitted on .* and locked"))).to_be_visible()
    expect(rep.locator("[data-content-shown]")).to_contain_text("Cardiozen launch deck")
    ctx.close()

    # --- marketing sees the statistics on the version page -------------------------------------
    mk.goto(f"{base}/content/versions/{version_id}")
    stats = mk.get_by_role("region", name="In calls")
    expect(stats.locator(".c-kpi").first).to_have_text("1")  # times shown
    rows = stats.locator("tbody tr")
    expect(rows).to_have_count(4)
    for n in range(4):
        expect(rows.nth(n).locator("td").nth(0)).to_have_text(str(n + 1))
        expect(rows.nth(n).locator("td").nth(1)).to_have_text("1")
        expect(rows.nth(n).locator("td").nth(2)).to_have_text(re.compile(r"^\d+(\.\d)? s$"))
    expect(rows.nth(1).locator("td").nth(3)).to_have_text("1")  # the positive reaction
    mctx.close()
