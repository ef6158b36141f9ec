"""A rep in headless Chromium: log in, find an HCP, submit a call, see it on the timeline."""

import re

import pytest
from playwright.sync_api import expect

from factories import PASSWORD

pytestmark = pytest.mark.browser


def test_rep_logs_and_submits_a_call(live_server, page):
    base = live_server["base"]
    page.goto(f"{base}/accounts/{live_server['hcp_id']}")
    # Not logged in: sent to the login page, and back to the HCP afterwards.
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(live_server["rep_email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/accounts/{live_server['hcp_id']}$"))

    # Find the HCP from the top bar like a rep would.
    page.goto(base + "/")
    search = page.get_by_role("searchbox").first
    search.fill("dup")
    search.press("Enter")
    page.get_by_role("link", name=re.compile("Marie Dupont")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dupont")

    page.get_by_role("link", name="Log a call").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("New call report")
    page.get_by_label("Duration (minutes)").fill("15")
    page.get_by_role("checkbox", name=live_server["product"]).check()
    page.get_by_role("radio", name="Positive").check()
    page.get_by_label("Notes").fill("Asked for the 12-month data.")
    page.get_by_role("button", name="Submit", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Submit and lock").click()
    expect(page.get_by_text(re.compile("Submitted on .* and locked"))).to_be_visible()

    page.goto(f"{base}/accounts/{live_server['hcp_id']}")
    timeline = page.locator("#timeline, [data-timeline], section:has-text('Timeline')").first
    expect(timeline).to_contain_text("Field visit")
    expect(timeline).to_contain_text("Submitted")


def test_rep_cannot_open_an_hcp_of_another_territory(live_server, page):
    base = live_server["base"]
    page.goto(base + "/login")
    page.get_by_label("Email").fill(live_server["rep_email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(base + "/")
    page.goto(base + "/accounts?q=lointain")
    expect(page.get_by_text("Lointain")).to_have_count(0)
    # Straight to its address: a designed 404 that still knows who is asking.
    resp = page.goto(f"{base}/accounts/{live_server['outsider_id']}")
    assert resp.status == 404
    expect(page.get_by_text("Lointain")).to_have_count(0)
    expect(page.locator(".user-name")).to_have_text("Camille Rep")
    expect(page.get_by_role("link", name="Accounts").first).to_be_visible()
