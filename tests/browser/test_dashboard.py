"""The rep's dashboard in headless Chromium on a tablet: a call submitted a moment ago shows in
the figures once the worker has refreshed the snapshot, every chart is drawn, the page has no
serious accessibility problem and no sideways scroll, and a figure opens the list behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_clm import serious_axe_violations, signed_in

from parcours.activities.models import Activity, Attendee
from parcours.core.db import make_engine
from parcours.core.models import User

pytestmark = pytest.mark.browser


def _submitted_call(url: str, rep_email: str, hcp_id: int) -> None:
    engine = make_engine(url)
    with Session(engine) as s:
        rep = s.scalar(select(User).where(User.email == rep_email))
        at = datetime.now(UTC) - timedelta(days=2)
        act = Activity(
            channel="remote_detailing",
            kind="detail",
            status="submitted",
            owner_id=rep.id,
            account_id=hcp_id,
            start_at=at,
            duration_min=15,
            outcome="positive",
            product_ids=[],
            key_messages=[],
            submitted_at=at,
        )
        s.add(act)
        s.flush()
        s.add(
            Attendee(activity_id=act.id, account_id=hcp_id, start_at=at, channel="remote_detailing")
        )
        s.commit()
    engine.dispose()


def test_the_rep_reads_their_dashboard_on_a_tablet(browser, live_server):
    _submitted_call(live_server["url"], live_server["rep_email"], live_server["hcp_id"])
    ctx, page = signed_in(browser, live_server["base"], live_server["rep_email"])
    try:
        page.get_by_role("link", name="Dashboard").first.click()
        expect(page).to_have_url(f"{live_server['base']}/analytics")
        # the worker refreshes every 2 s here: reload until the call is in the figures
        for _ in range(30):
            remote = page.locator('[data-kpi="adoption"] .kpi-value').inner_text()
            if remote.startswith("100"):
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator('[data-kpi="adoption"] .kpi-value')).to_have_text("100.0 %")
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas[data-chart]')]"
            ".map(c => [c.dataset.chart, !!Chart.getChart(c)])"
        )
        assert drawn and all(ok for _name, ok in drawn), drawn
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert serious_axe_violations(page) == []
        # a figure leads to the HCPs behind it
        page.locator("#ch-eng").scroll_into_view_if_needed()
        page.get_by_role("link", name="1", exact=True).first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("HCPs")
        expect(page.get_by_role("link", name="Marie Dupont")).to_be_visible()
    finally:
        ctx.close()
